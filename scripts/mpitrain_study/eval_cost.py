"""The training time an evaluation costs besides its own (the planner's
evaluation term, issue 16).

A run's time to the target without evaluation (`target_train_time_s`)
excludes the evaluations themselves, but not what they leave behind: the
prefetched batch is dropped (HDF5 reads stop while the test split is read),
and the next steps start with caches full of the test split. On the emulated
hosts at P = 1, B = 64 an evaluation every 10 steps made each step 12-18 %
slower (0.90 -> 1.02-1.07 ms; AMD EPYC), which the performance model, timed
without evaluation, does not see.

It is measured as the difference of two short runs at the same P and B: one
with the job's evaluation cadence (--eval-runs), one without evaluation (the
--calibration run, whose reads are timed whole since it runs without
prefetch):

    cost per evaluation = (step_A - (step_C - reads_C)) x steps_A / evaluations_A

over the steady epochs (the first one is left out, as everywhere in the
performance model), clamped at 0: on the emulated hosts at P = 2 and 4 the
runs with evaluations stepped faster (7.1 against 8.3 ms at P = 2), since a
pause refills the token bucket of the tbf-shaped links and the next
all-reduces go out unshaped; a real link has no such credit. Evaluations in those epochs: the eval lines
(--eval-every-steps) plus the evaluation at the end of each epoch before one.
"""
import math

from .metrics import read_metrics
from .perf_inputs import die, load_measured


def evaluations_in(run):
    """Evaluations whose aftermath falls in the run's steady epochs: those
    during them, and the end-of-epoch evaluation before each of them."""
    steady = set(run["epochs_used"])
    metrics = read_metrics(run["path"])
    mid = sum(1 for e in metrics.evals if e.get("epoch") in steady)
    evaluated = {e.get("epoch") for e in metrics.epochs
                 if any(e.get(k) is not None for k in ("test_acc", "test_loss", "val_acc", "val_loss"))}
    return mid + sum(1 for e in steady if e - 1 in evaluated)


def eval_costs(eval_paths, calibration):
    """{P: (seconds per evaluation, note)} from --eval-runs, each paired with
    the --calibration run (already loaded) at its P and B."""
    out = {}
    for path in eval_paths:
        a = load_measured(path, "--eval-runs")
        pair = [c for c in calibration if c["P"] == a["P"] and c["B"] == a["B"]]
        if not pair:
            die(f"--eval-runs {path} is at P = {a['P']}, B = {a['B']}, and no --calibration run is: give a "
                "calibration run (no evaluation, no prefetch) at the same P and B")
        c = pair[0]
        if c["data_s"] is None or c["prefetch"]:
            die(f"--calibration {c['path']} ran with prefetch, so its reads are not timed whole: run it with "
                "--prefetch false")
        n = evaluations_in(a)
        if n == 0:
            die(f"--eval-runs {path} evaluated nowhere in its epochs after the first: run it with the job's "
                "--eval-every-steps and an --eval-split")
        extra = (a["step_s"] - (c["step_s"] - c["data_s"])) * a["steps"] / n
        cost = max(0.0, extra)
        shown = f"{cost * 1e3:.3g} ms" if extra >= 0 else f"0 ms (measured {extra * 1e3:.3g} ms, counted as 0)"
        note = (f"P = {a['P']}: {shown} per evaluation ({a['name']}: {a['step_s'] * 1e3:.3g} ms per step "
                f"with {n} evaluations in {a['steps']:.0f} steps; {c['name']}: {c['step_s'] * 1e3:.3g} ms per step, "
                f"{c['data_s'] * 1e3:.3g} ms of it reads)")
        out.setdefault(a["P"], []).append((cost, note))
    return {p: (sum(c for c, _ in v) / len(v), "; ".join(n for _, n in v)) for p, v in out.items()}


def evaluations_before(steps, every, steps_per_epoch):
    """Evaluations a run does in its first `steps` steps: every `every` steps
    (0 or None: none mid-epoch) and at each epoch end."""
    mid = math.floor(steps / every) if every else 0
    ends = math.floor(steps / steps_per_epoch) if steps_per_epoch else 0
    return mid + ends
