"""What the comparison tools (adascale_compare, goodput_compare,
plan_validate) share: one training run in its own directory, skipped when
that directory already holds a finished run, and mean +- sd over seeds."""
import math
import os
import subprocess

from .metrics import read_summary as finished


def train_once(path, cmd, name):
    """Runs `cmd` (an `mpitrain train` whose run directory is `path`, its
    output in path/log.txt) unless `path` holds a finished run. Returns
    (summary, exit code), the code None when the run was skipped."""
    summary = finished(path)
    if summary is not None:
        print(f"{name}: skip (finished)")
        return summary, None
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "log.txt"), "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
    return finished(path) or {}, rc


def mean_sd(values):
    """(mean, sample sd) of the values that are not None; (None, None) for none, sd None for one."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    m = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else None
    return m, sd
