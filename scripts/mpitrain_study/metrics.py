"""Readers of what `mpitrain train` writes into a run directory.

metrics.jsonl holds one JSON object per line, told apart by "type": a header,
then step, eval, epoch (and checkpoint) lines, and at the end either a
summary line or, if the run diverged, a diverged line and no summary line.
summary.json is written when the run ends, diverged or not: the summary line
again, or for a diverged run a short summary (stop_reason "diverged") that
only summary.json holds. The format's home is
include/mpitrain/train/run_log.hpp (src/train/run_log.cpp writes it).
Every reader here tolerates a run killed mid-write (a partial last line).
"""

import json
import math
import os

LINE_TYPES = ("header", "step", "eval", "epoch", "checkpoint", "summary", "diverged")


def num(value):
    """float(value), or None when it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def finite_num(value):
    """Like num, but None for inf and nan too."""
    v = num(value)
    return v if v is not None and math.isfinite(v) else None


def parse_json_text(text):
    """The JSON value of a whole text, else of its last non-empty line (the
    last line of a JSON-lines file); None when neither parses."""
    lines = [line for line in text.splitlines() if line.strip()]
    for candidate in [text] + lines[-1:]:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def read_json(path):
    """parse_json_text of a file; None when it cannot be read or parsed."""
    try:
        with open(path, errors="replace") as f:
            return parse_json_text(f.read())
    except OSError:
        return None


def read_json_lines(path):
    """The JSON objects of a JSON-lines file, in order. Lines that do not
    parse (a run killed mid-write) or are not objects are left out; a file
    that cannot be read gives []."""
    lines = []
    try:
        with open(path, errors="replace") as f:
            for text in f:
                try:
                    d = json.loads(text)
                except ValueError:
                    continue
                if isinstance(d, dict):
                    lines.append(d)
    except OSError:
        pass
    return lines


class RunMetrics:
    """The lines of one metrics.jsonl, by type."""

    def __init__(self, lines):
        self.lines = lines

    def of_type(self, kind):
        return [d for d in self.lines if d.get("type") == kind]

    @property
    def header(self):
        """The header line, or None."""
        return next((d for d in self.lines if d.get("type") == "header"), None)

    @property
    def steps(self):
        return self.of_type("step")

    @property
    def evals(self):
        return self.of_type("eval")

    @property
    def epochs(self):
        return self.of_type("epoch")

    @property
    def summary(self):
        """The last summary line, or None: an unfinished run, or a diverged
        one (its last line is the diverged line; read_summary gives its
        summary, from summary.json)."""
        found = self.of_type("summary")
        return found[-1] if found else None

    @property
    def diverged(self):
        """The diverged line, or None."""
        return next((d for d in self.lines if d.get("type") == "diverged"), None)


def metrics_path(path):
    """A run directory's metrics.jsonl; any other path as it is."""
    return os.path.join(path, "metrics.jsonl") if os.path.isdir(path) else path


def read_metrics(path):
    """RunMetrics of a run directory or a metrics.jsonl file."""
    return RunMetrics(read_json_lines(metrics_path(path)))


def read_header(path):
    """The header line of a run directory's (or a file's) metrics.jsonl, or
    None. It is the first line, so only the lines up to it are read."""
    try:
        with open(metrics_path(path), errors="replace") as f:
            for text in f:
                try:
                    d = json.loads(text)
                except ValueError:
                    continue
                if isinstance(d, dict) and d.get("type") == "header":
                    return d
    except OSError:
        pass
    return None


def is_deterministic(header):
    """Was the run whose header this is trained with --deterministic? False
    when the header is missing, lacks "deterministic" (a trainer from before
    the option) or has it false."""
    return isinstance(header, dict) and header.get("deterministic") is True


def read_summary(run_dir):
    """The run's summary.json when the run finished (it parses and has a
    stop_reason, whatever it is, also "diverged"), else None."""
    summary = read_json(os.path.join(run_dir, "summary.json"))
    return summary if isinstance(summary, dict) and summary.get("stop_reason") else None


# --- Target crossings from eval and epoch lines (the sweep's --target-hold) ---

_TARGET_OPS = {">=": lambda v, t: v >= t, "<=": lambda v, t: v <= t,
               ">": lambda v, t: v > t, "<": lambda v, t: v < t}


def parse_target_condition(text):
    """'test_acc>=0.85' -> ('test_acc', '>=', 0.85), or None (mpitrain's
    --target syntax: a metric, one of >= <= > <, a number)."""
    import re
    m = re.match(r"^\s*(\w+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$", text or "")
    if not m:
        return None
    try:
        return m.group(1), m.group(2), float(m.group(3))
    except ValueError:
        return None


def evaluation_points(metrics):
    """The evaluations of a run in step order: its eval lines
    (--eval-every-steps) and epoch lines. When both are at one step (a run
    stopped at the target mid-epoch ends that epoch there) the epoch line
    stands for it."""
    by_step = {}
    for d in metrics.lines:
        kind = d.get("type")
        step = num(d.get("step"))
        if kind not in ("eval", "epoch") or step is None:
            continue
        if kind == "epoch" or step not in by_step:
            by_step[step] = d
    return [by_step[s] for s in sorted(by_step)]


def target_crossing(metrics, target, hold=1):
    """The evaluation (an eval or epoch line, see evaluation_points) at which
    `target` ('test_acc>=0.85', or parse_target_condition's tuple) is reached
    and then holds for `hold` consecutive evaluations: the first of those.
    Evaluations without the metric are passed over. None when it never does
    (or the target does not parse)."""
    cond = parse_target_condition(target) if isinstance(target, str) else target
    if not cond:
        return None
    metric, op, threshold = cond
    run_start, run_len = None, 0
    for point in evaluation_points(metrics):
        value = finite_num(point.get(metric))
        if value is None:
            continue
        if _TARGET_OPS[op](value, threshold):
            if run_len == 0:
                run_start = point
            run_len += 1
            if run_len >= max(1, int(hold)):
                return run_start
        else:
            run_start, run_len = None, 0
    return None
