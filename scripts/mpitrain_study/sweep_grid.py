"""Adaptive learning-rate grids of a sweep (--max-grid-extensions) and the
runs' outcomes as the sweep reads them (--target-hold, eval lines).

For each global batch B, once every run of its grid (all rank counts and
seeds) has finished, the rates are ranked by mean steps to the target over
their runs, a run that missed the target or diverged counting as worst (the
rate with fewer such runs ranks first, then the lower mean). If the best
rate is at an edge of the grid, one more rate beyond that edge (the same
multiplicative step as between the edge and its neighbour) is added, up to
--max-grid-extensions added rates per B. A top rate that diverged stops the
extension upward. The decision is made again from the finished runs at
every invocation, so it is the same locally and with --slurm, where a re-run
after the arrays finish submits the added rates (Shallue et al. 2018 tune
every batch size until the optimum is inside its grid).
"""

import math

from .formatting import lr_text
from .metrics import read_metrics, target_crossing
from .sweep_plan import finished, make_runs, run_dir


def run_outcome(path, target, hold=1):
    """How a run directory ended, as the sweep ranks rates: dict(status=
    'reached' | 'missed' | 'diverged' | 'unfinished', steps, samples,
    time_s, epoch). The crossing is the first evaluation (eval line or epoch
    line) of `hold` consecutive ones at which the target holds; a run that
    diverged after such a crossing still reached it."""
    summary = finished(path)
    out = dict(status="unfinished", steps=None, samples=None, time_s=None, epoch=None)
    if summary is None:
        return out
    point = target_crossing(read_metrics(path), target, hold)
    if point is not None:
        out.update(status="reached", steps=int(point["step"]), samples=point.get("samples"),
                   time_s=point.get("time_s"), epoch=point.get("epoch"))
    elif summary.get("stop_reason") == "diverged":
        out["status"] = "diverged"
    else:
        out["status"] = "missed"
    return out


def rate_scores(args, runs):
    """{multiplier: dict(failures, mean_steps, diverged, unfinished, n)} over
    the runs given (one B: every rank count and seed)."""
    scores = {}
    for r in runs:
        o = run_outcome(run_dir(args, r), args.target, args.target_hold)
        s = scores.setdefault(r["lr_multiplier"], dict(failures=0, steps=[], diverged=False, unfinished=0, n=0,
                                                       lr=r["lr"]))
        s["n"] += 1
        if o["status"] == "unfinished":
            s["unfinished"] += 1
        elif o["status"] == "reached":
            s["steps"].append(o["steps"])
        else:
            s["failures"] += 1
            s["diverged"] |= o["status"] == "diverged"
    for s in scores.values():
        s["mean_steps"] = sum(s["steps"]) / len(s["steps"]) if s["steps"] else math.inf
    return scores


def rank_key(score):
    """Sort key of a rate: fewer missed or diverged runs first, then fewer mean steps."""
    return (score["failures"], score["mean_steps"])


def decide(multipliers, initial, scores, max_extensions):
    """The next multiplier to try at one B, and why: (multiplier or None, note).
    multipliers: the B's grid so far; initial: its initial multipliers."""
    ms = sorted(multipliers)
    if any(scores[m]["unfinished"] for m in ms):
        return None, "waiting for unfinished runs"
    added = len([m for m in ms if not any(math.isclose(m, i, rel_tol=1e-9) for i in initial)])
    lo, hi = ms[0], ms[-1]
    up = hi / ms[-2] if len(ms) > 1 else 2.0
    down = ms[1] / lo if len(ms) > 1 else 2.0
    if all(scores[m]["steps"] == [] for m in ms):
        if all(scores[m]["diverged"] for m in ms):
            direction = "down"  # every rate diverged: smaller ones may not
            why = "every rate diverged"
        else:
            return None, "no rate reached the target: not extended"
    else:
        # The best rate. Rates tied with it that are inside the grid, or at
        # its other edge, put the optimum inside: no extension.
        best = min(ms, key=lambda m: (rank_key(scores[m]), m in (lo, hi)))
        tied = [m for m in ms if rank_key(scores[m]) == rank_key(scores[best])]
        if best not in (lo, hi) or (len(ms) > 1 and len(tied) > 1 and (lo in tied) == (hi in tied)) \
                or any(m not in (lo, hi) for m in tied):
            return None, f"best rate x{best:g} is inside the grid" + (
                f" (tied with {', '.join(f'x{m:g}' for m in tied if m != best)})" if len(tied) > 1 else "")
        if best == hi and (len(ms) == 1 or best != lo):
            direction, why = "up", f"best rate x{best:g} is at the top edge"
        else:
            direction, why = "down", f"best rate x{best:g} is at the bottom edge"
        if direction == "up" and scores[hi]["diverged"]:
            return None, f"{why}, but it diverged in a run: not extended upward"
    if added >= max_extensions:
        return None, f"{why}; the budget of {max_extensions} added rate(s) is spent"
    if direction == "up":
        return hi * up, f"{why}: adding x{hi * up:g}"
    return lo / down, f"{why}: adding x{lo / down:g}"


def extend(args, runs):
    """One round of grid extension over every B of the sweep: (the new runs,
    {B: note}). runs: every run planned so far (the initial grid and the
    rates added before)."""
    new, notes = [], {}
    if args.max_grid_extensions <= 0:
        return new, notes
    for b in args.grid_batches:
        at_b = [r for r in runs if r["global_batch"] == b]
        multipliers = sorted(set(r["lr_multiplier"] for r in at_b))
        scores = rate_scores(args, at_b)
        m, note = decide(multipliers, args.grid_multipliers[b], scores, args.max_grid_extensions)
        notes[b] = note
        if m is None:
            continue
        added = make_runs(args, b, m, args.grid_ranks, args.seed_list, grid="extension")
        rates = set(lr_text(r["lr"]) for r in at_b)
        if lr_text(added[0]["lr"]) in rates:
            notes[b] = note + f" (it rounds to a rate already in the grid, {lr_text(added[0]['lr'])}: not extended)"
            continue
        new += added
    return new, notes


def extend_all(args, runs):
    """Rounds of extend() until no B adds a rate: a B whose added rate has
    to run first waits, one whose added runs finished in an earlier
    invocation decides again. The runs to add now and the note per B (the
    decision, not the wait for its own added runs)."""
    added, notes = [], {}
    while True:
        new, round_notes = extend(args, runs + added)
        for b, note in round_notes.items():
            if not (note.startswith("waiting") and b in notes):
                notes[b] = note
        if not new:
            return added, notes
        added += new


def print_notes(notes, prefix="grid"):
    for b in sorted(notes):
        print(f"{prefix} B={b}: {notes[b]}", flush=True)
