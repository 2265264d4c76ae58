"""The training time an evaluation costs besides its own (the planner's
evaluation term, issue 16).

A run's time to the target without evaluation (`target_train_time_s`)
excludes the evaluations themselves, but not what they leave behind: the
prefetched batch is dropped (HDF5 reads stop while the evaluated splits are
read), and the next steps start with caches full of those splits. On the
emulated hosts at P = 1, B = 64 an evaluation every 10 steps made each step
12-18 % slower (0.90 -> 1.02-1.07 ms; AMD EPYC), which the performance
model, timed without evaluation, does not see.

It is measured as the difference of two short runs that differ only in
evaluation, at the same P and B (--eval-runs takes both): one with the job's
evaluation (its splits and --eval-every-steps), one with --eval-split none:

    cost per evaluation = (step_with - step_without) x steps_with / evaluations

over the steady epochs (the first one is left out, as everywhere in the
performance model), clamped at 0: on the emulated hosts at P = 2 and 4 the
runs with evaluations stepped faster (7.1 against 8.3 ms at P = 2), since a
pause refills the token bucket of the tbf-shaped links and the next
all-reduces go out unshaped; a real link has no such credit. Evaluations in
those epochs: the eval lines plus the evaluation at the end of each epoch
before one.

The cost is measured at one B per P (the runs' rows per rank) and applied
at every B of that P; the part of it that grows with the rows per rank (the
dropped batch read again) is not scaled.
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


def eval_costs(paths):
    """{P: (seconds per evaluation, note)} from --eval-runs: at each (P, B)
    one run with evaluations and one without, otherwise alike."""
    groups = {}
    for path in paths:
        run = load_measured(path, "--eval-runs")
        run["evaluations"] = evaluations_in(run)
        groups.setdefault((run["P"], run["B"]), []).append(run)
    out = {}
    for (P, B), runs in sorted(groups.items()):
        with_eval = [r for r in runs if r["evaluations"] > 0]
        without = [r for r in runs if r["evaluations"] == 0]
        if len(with_eval) != 1 or len(without) != 1:
            die(f"--eval-runs at P = {P}, B = {B}: {len(with_eval)} run(s) with evaluations and {len(without)} "
                "without; give one of each (the job's evaluation, and --eval-split none), otherwise alike")
        a, q = with_eval[0], without[0]
        if a["prefetch"] != q["prefetch"]:
            die(f"--eval-runs {a['path']} and {q['path']} differ in --prefetch: run them alike but for evaluation")
        n = a["evaluations"]
        extra = (a["step_s"] - q["step_s"]) * a["steps"] / n
        cost = max(0.0, extra)
        shown = f"{cost * 1e3:.3g} ms" if extra >= 0 else f"0 ms (measured {extra * 1e3:.3g} ms, counted as 0)"
        out[P] = (cost, f"P = {P}: {shown} per evaluation ({a['name']}: {a['step_s'] * 1e3:.3g} ms per step with "
                        f"{n} evaluations in {a['steps']:.0f} steps; {q['name']}: {q['step_s'] * 1e3:.3g} ms per "
                        f"step without)")
    return out


def evaluations_before(steps, every, steps_per_epoch):
    """Evaluations a run does before its step `steps` (the one at that step
    finds the target; what it leaves behind comes after): every `every`
    global steps (0 or None: none mid-epoch) and at each epoch end, an epoch
    end taking the place of a mid-epoch evaluation at the same step."""
    last = max(0, math.ceil(steps) - 1)
    mid = last // every if every else 0
    ends = last // steps_per_epoch if steps_per_epoch else 0
    both = last // math.lcm(every, steps_per_epoch) if every and steps_per_epoch else 0
    return mid + ends - both
