"""The runs of one or more sweep directories (scripts/sweep.py) as the report
sees them: status, steps/samples/seconds to the target, throughput and
time split; and the tables drawn from them (best rate per B, rank scaling)."""

import math
import os
import re

from .metrics import is_deterministic, num, read_json, read_metrics, read_summary, target_crossing

STATUS_REACHED = "reached"
STATUS_MISSED = "not reached"
STATUS_DIVERGED = "diverged"
STATUS_UNFINISHED = "unfinished"
STATUS_NOT_RUN = "not run"


def load_run(path, planned=None):
    metrics = read_metrics(path)
    header = metrics.header or {}
    config = header.get("config", {})
    summary = read_summary(path)
    planned = planned or {}
    run = dict(name=os.path.basename(os.path.normpath(path)), dir=path, summary=summary,
               epochs=metrics.epochs, steps=metrics.steps, evals=metrics.evals,
               steps_per_epoch=header.get("steps_per_epoch"), train_rows=header.get("train_rows"))
    src = summary or {}
    run["B"] = int(src.get("global_batch") or num(config.get("global-batch")) or planned.get("global_batch") or 0)
    run["P"] = int(src.get("ranks") or header.get("ranks") or planned.get("ranks") or 0)
    # The configured rate (a run that diverged during warmup reports the rate
    # in force then in its summary).
    run["lr"] = planned.get("lr") or num(header.get("effective_lr")) or num(src.get("lr"))
    run["multiplier"] = planned.get("lr_multiplier")
    run["target"] = src.get("target") or config.get("target") or ""
    # The seed (the header's config; else the sweep's plan); None: not recorded.
    seed = num(config.get("seed"))
    if seed is None:
        seed = num(planned.get("seed"))
    run["seed"] = int(seed) if seed is not None else None
    # Where the target was checked: at --eval-every-steps evaluations (and
    # epoch ends) when the run wrote eval lines, else at epoch ends only.
    every = num(config.get("eval-every-steps"))
    run["eval_every_steps"] = int(every) if every else (None if not metrics.evals else 0)
    run["counted_at"] = "eval" if metrics.evals or (every and every > 0) else "epoch"
    if summary is None:
        run["status"] = STATUS_UNFINISHED
    elif summary["stop_reason"] == "diverged":
        run["status"] = STATUS_DIVERGED
    elif summary.get("target_reached"):
        run["status"] = STATUS_REACHED
    else:
        run["status"] = STATUS_MISSED
    run["noise_ema_decay"] = num(config.get("noise-ema-decay"))
    run["noise_window_samples"] = num(config.get("noise-window-samples"))  # > 0: an EMA over samples
    # --deterministic, as the metrics header says (missing: not deterministic).
    run["deterministic"] = is_deterministic(metrics.header)
    run["deterministic_unit"] = header.get("deterministic_unit") if run["deterministic"] else 0
    run["S_interp"] = None
    # sweep.py --target-hold K > 1: reached where the target held for K
    # consecutive evaluations (the first of them), not at mpitrain's first crossing.
    run["target_hold"] = int(num(planned.get("target_hold")) or 1)
    held = None
    if run["target_hold"] > 1 and run["status"] in (STATUS_REACHED, STATUS_MISSED):
        held = target_crossing(metrics, run["target"], run["target_hold"])
        run["status"] = STATUS_REACHED if held else STATUS_MISSED
    if held:
        run["S"], run["E"], run["T"] = int(held["step"]), int(held["samples"]), float(held["time_s"])
        run["target_epoch"] = int(held.get("epoch") or 0)
    if run["status"] == STATUS_REACHED:
        if not held:
            run["S"] = int(summary["target_step"])
            run["E"] = int(summary["target_samples"])
            run["T"] = float(summary["target_time_s"])
            run["target_epoch"] = int(summary.get("target_epoch") or 0)
        crossing = interpolate_crossing(run)
        if crossing:
            run["S_interp"], run["E_interp"], run["T_interp"] = crossing
    else:
        run["S"] = run["E"] = run["T"] = run["target_epoch"] = None
    # Steps trained (a lower bound on steps-to-target for a missed target).
    run["steps_run"] = int(src.get("steps") or (run["epochs"][-1]["step"] if run["epochs"] else 0))
    run["epochs_run"] = int(src.get("epochs") or len(run["epochs"]))
    run["test_acc"] = src.get("test_acc", run["epochs"][-1].get("test_acc") if run["epochs"] else None)
    run["noise_final"] = num(src.get("noise_scale")) or (
        num(run["epochs"][-1].get("noise_scale")) if run["epochs"] else None)
    run["noise_at_target"] = None
    if run["status"] == STATUS_REACHED:
        # The last step line at or before the target's step, else the target epoch's line.
        before = [d for d in run["steps"] if d.get("step") is not None and d["step"] <= run["S"]
                  and num(d.get("noise_scale")) is not None]
        at = before[-1:] or [e for e in run["epochs"] if e.get("epoch") == summary.get("target_epoch")]
        if at:
            run["noise_at_target"] = num(at[0].get("noise_scale"))
    run.update(time_split(run["epochs"]))
    return run


def parse_target(text):
    """'test_acc>=0.85' -> ('test_acc', 0.85), or None."""
    t = parse_target_op(text)
    return (t[0], t[2]) if t else None


def parse_target_op(text):
    """'test_acc>=0.85' -> ('test_acc', '>=', 0.85), or None."""
    m = re.match(r"^\s*(\w+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$", text or "")
    return (m.group(1), m.group(2), float(m.group(3))) if m else None


def evaluations(run):
    """The run's evaluations in step order: its eval lines (--eval-every-steps)
    and epoch lines, one per step (an epoch line wins over an eval line at
    the same step)."""
    by_step = {}
    for line in list(run.get("evals") or []) + list(run.get("epochs") or []):
        if line.get("step") is not None:
            by_step[line["step"]] = line
    return [by_step[k] for k in sorted(by_step)]


def holds(value, op, threshold):
    return dict([(">=", value >= threshold), ("<=", value <= threshold), (">", value > threshold),
                 ("<", value < threshold)])[op]


def interpolate_crossing(run):
    """(steps, samples, seconds) at which the target metric crossed its
    threshold, linear between the evaluation at which the target first held
    and the evaluation before it, whether an eval line (--eval-every-steps)
    or an epoch line. The recorded steps are those of that first evaluation;
    this estimates the crossing between the two. None when the target held
    at the first evaluation (nothing to interpolate from) or the metric is
    missing.

    The evaluation at the target is the one at the recorded target step
    (run["S"]) if given, else the epoch line of run["target_epoch"]."""
    target = parse_target_op(run.get("target"))
    if target is None:
        return None
    metric, op, threshold = target
    points = evaluations(run)
    at = None
    if run.get("S") is not None:
        at = next((i for i, p in enumerate(points) if p["step"] == run["S"]), None)
    if at is None and run.get("target_epoch"):
        at = next((i for i, p in enumerate(points) if p.get("epoch") == run["target_epoch"]
                   and p.get("type", "epoch") == "epoch"), None)
        if at is not None:  # an eval line of that epoch may have reached it first
            first = next((i for i, p in enumerate(points[:at + 1]) if num(p.get(metric)) is not None
                          and holds(num(p.get(metric)), op, threshold)), at)
            at = first
    if not at:  # None, or the first evaluation
        return None
    e0, e1 = points[at - 1], points[at]
    v0, v1 = num(e0.get(metric)), num(e1.get(metric))
    if v0 is None or v1 is None or v1 == v0:
        return None
    frac = min(1.0, max(0.0, (threshold - v0) / (v1 - v0)))
    return tuple(e0[key] + frac * (e1[key] - e0[key]) for key in ("step", "samples", "time_s"))


def use_interpolated(runs):
    """Steps, samples and seconds to the target become the interpolated ones
    where they exist (--interpolate)."""
    for r in runs:
        if r.get("S_interp") is not None:
            r["S_epoch_end"] = r["S"]
            r["S"], r["E"], r["T"] = r["S_interp"], r["E_interp"], r["T_interp"]


def time_split(epochs):
    """Training throughput and the mean time split per step over the epoch lines.

    epoch_time_s excludes the evaluation; the three parts are each the
    maximum over ranks, so they need not add up to the step time ("other"
    is what is left, never below 0)."""
    if not epochs:
        return dict(samples_per_s=None, step_ms=None, split_ms=None)
    samples = epochs[-1]["samples"]
    steps = epochs[-1]["step"]
    train_s = sum(e.get("epoch_time_s") or 0.0 for e in epochs)
    parts = {k: sum(e.get(f"time_{k}_s") or 0.0 for e in epochs) for k in ("compute", "allreduce", "data")}
    if train_s <= 0 or steps <= 0:
        return dict(samples_per_s=None, step_ms=None, split_ms=None)
    split = {k: 1000.0 * v / steps for k, v in parts.items()}
    step_ms = 1000.0 * train_s / steps
    split["other"] = max(0.0, step_ms - sum(split.values()))
    return dict(samples_per_s=samples / train_s, step_ms=step_ms, split_ms=split)


def load_sweeps(dirs):
    runs = []
    for sweep in dirs:
        if not os.path.isdir(sweep):
            raise SystemExit(f"report: error: {sweep} is not a directory")
        plan = read_json(os.path.join(sweep, "sweep.json"))
        plan = plan if isinstance(plan, dict) else {}
        planned = {r["name"]: r for r in plan.get("runs", []) if isinstance(r, dict) and "name" in r}
        seen = set()
        for entry in sorted(os.listdir(sweep)):
            path = os.path.join(sweep, entry)
            if not os.path.isdir(path):
                continue
            if not any(os.path.exists(os.path.join(path, f)) for f in ("summary.json", "metrics.jsonl", "config.ini")):
                continue  # logs/, report/ and other non-run directories
            run = load_run(path, planned.get(entry))
            if len(dirs) > 1:  # the same grid point may be in two sweeps
                run["name"] = f"{os.path.basename(os.path.normpath(sweep))}/{entry}"
            runs.append(run)
            seen.add(entry)
        for name, p in planned.items():
            if name not in seen:
                seed = num(p.get("seed"))
                runs.append(dict(name=name if len(dirs) == 1 else f"{os.path.basename(os.path.normpath(sweep))}/{name}", dir=os.path.join(sweep, name), summary=None, epochs=[], steps=[],
                                 evals=[], seed=int(seed) if seed is not None else None, counted_at="epoch",
                                 eval_every_steps=None,
                                 B=p.get("global_batch", 0), P=p.get("ranks", 0), lr=p.get("lr"),
                                 multiplier=p.get("lr_multiplier"), target=plan.get("target", ""),
                                 status=STATUS_NOT_RUN, S=None, E=None, T=None, steps_run=0, epochs_run=0,
                                 test_acc=None, noise_final=None, noise_at_target=None,
                                 samples_per_s=None, step_ms=None, split_ms=None,
                                 deterministic=None, deterministic_unit=None))
    runs.sort(key=lambda r: (r["B"], r["lr"] or 0, r["P"], r["seed"] if r["seed"] is not None else -1, r["name"]))
    return runs


def not_deterministic(runs):
    """The names of the runs read from a run directory (every run but the
    planned ones never started) that were not trained with --deterministic."""
    return [r["name"] for r in runs if r["status"] != STATUS_NOT_RUN and not r["deterministic"]]


def seed_key(run):
    """A run's seed; runs without a recorded seed count as one seed."""
    return run["seed"] if run.get("seed") is not None else "default"


def seed_text(seed):
    return "-" if seed == "default" else str(seed)


def aggregate_seeds(group):
    """The runs of one (B, lr) (any rank count, any seed) as one measurement:
    steps, samples and seconds to the target as the mean (and sd) over the
    seeds that reached it. Runs of the same seed on several rank counts are
    one seed (the steps depend on B, not on P): the first that reached counts.

    Returns a dict with B, lr, multiplier, seeds (every seed with a finished
    or planned run), n_seeds, n_reached, seed_S / seed_E / seed_T (per seed
    that reached), S, E, T (means), S_sd, E_sd, T_sd (None with one seed),
    missed ([(seed, run name, status)] of the seeds that did not reach it,
    with their steps run), and run: the reached run closest to the mean."""
    by_seed = {}
    for r in group:
        by_seed.setdefault(seed_key(r), []).append(r)
    reached, missed = {}, []
    for seed, rs in sorted(by_seed.items(), key=lambda kv: str(kv[0])):
        hit = [r for r in rs if r["status"] == STATUS_REACHED]
        if hit:
            reached[seed] = hit[0]
        else:
            r = max(rs, key=lambda x: x["steps_run"] or 0)
            missed.append(dict(seed=seed, name=r["name"], status=r["status"], steps_run=r["steps_run"]))
    first = group[0]
    agg = dict(B=first["B"], lr=first["lr"], multiplier=first["multiplier"], seeds=sorted(by_seed, key=str),
               n_seeds=len(by_seed), n_reached=len(reached), missed=missed, run=None)
    for key in ("S", "E", "T"):
        vals = [float(r[key]) for r in reached.values()]
        agg[f"seed_{key}"] = vals
        agg[key] = sum(vals) / len(vals) if vals else None
        agg[f"{key}_sd"] = (math.sqrt(sum((v - agg[key]) ** 2 for v in vals) / (len(vals) - 1))
                            if len(vals) >= 2 else None)
    # The steps as recorded (at the evaluation where the target held, before
    # --interpolate): the sweep ranks rates by these, and so does best_per_batch.
    recorded = [float(r.get("S_epoch_end", r["S"])) for r in reached.values()]
    agg["S_recorded"] = sum(recorded) / len(recorded) if recorded else None
    agg["reached_seeds"] = list(reached)
    if reached:
        agg["run"] = min(reached.values(), key=lambda r: (abs(r["S"] - agg["S"]), r["name"]))
    return agg


def seed_groups(runs):
    """{(B, lr): aggregate_seeds of its runs} over the runs that were read (not the planned ones never run)."""
    groups = {}
    for r in runs:
        if r["status"] != STATUS_NOT_RUN:
            groups.setdefault((r["B"], r["lr"]), []).append(r)
    return {k: aggregate_seeds(v) for k, v in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0))}


def best_per_batch(runs):
    """{B: the best rate's seed aggregate}: among the rates at B where at
    least one seed reached the target, those with fewer seeds that did not
    come first, then the fewest mean steps over the seeds as recorded (not
    interpolated, so the report picks the rate the sweep's grid extension
    picked; ties: fewer mean seconds).

    The aggregate (aggregate_seeds) also carries the fields of its
    representative run (the reached seed closest to the mean: name, P,
    summary, noise, ...), with S, E and T the seed means. Steps do not depend
    on the rank count, so runs of every P count."""
    best = {}
    for (b, _), agg in seed_groups(runs).items():
        if agg["n_reached"] == 0:
            continue
        key = (agg["n_seeds"] - agg["n_reached"], agg["S_recorded"], agg["T"])
        cur = best.get(b)
        if cur is None or key < cur[0]:
            best[b] = (key, agg)
    out = {}
    for b, (_, agg) in sorted(best.items()):
        merged = dict(agg["run"])
        merged.update(agg)
        merged["S_run"] = agg["run"]["S"]
        out[b] = merged
    return out


def seed_steps(best):
    """{B: [steps of each seed]} of the best rates, for the bootstrap."""
    return {b: list(a["seed_S"]) for b, a in best.items() if a.get("seed_S")}


def noise_series(run):
    """[(samples, B_simple)] over training: the step lines, else the epoch lines."""
    lines = run["steps"] or run["epochs"]
    pts = [(d["samples"], num(d.get("noise_scale"))) for d in lines if d.get("samples") is not None]
    return [(s, v) for s, v in pts if v is not None and v > 0 and math.isfinite(v)]


def representative(runs):
    """{(B, P): the run with the most steps at that (B, P)}: the most timing data."""
    rep = {}
    for r in runs:
        if r.get("split_ms") is None:
            continue
        key = (r["B"], r["P"])
        if key not in rep or r["steps_run"] > rep[key]["steps_run"]:
            rep[key] = r
    return dict(sorted(rep.items()))


def same_config_over_ranks(runs, b, lr=None):
    """{P: [runs]} of the one rate at B measured at the most rank counts (the
    given rate if any), so that only P differs between the points."""
    groups = {}
    for r in runs:
        if r["B"] == b and r.get("samples_per_s") and (lr is None or r["lr"] == lr):
            groups.setdefault(r["lr"], {}).setdefault(r["P"], []).append(r)
    if not groups:
        return {}
    return max(groups.values(), key=lambda g: (len(g), sum(x["steps_run"] for xs in g.values() for x in xs)))


def rank_scaling(runs):
    """{B: [(P, samples/s, efficiency)]} for every B measured at >= 2 rank
    counts with the same rate. A repeated (B, P, lr) counts its fastest run:
    other work on the machine only ever slows a run down."""
    table = {}
    for b in sorted({r["B"] for r in runs}):
        by_p = same_config_over_ranks(runs, b)
        if len(by_p) < 2:
            continue
        pts = sorted((p, max(x["samples_per_s"] for x in xs)) for p, xs in by_p.items())
        p0, t0 = pts[0]
        table[b] = [(p, t, (t / t0) / (p / p0)) for p, t in pts]
    return table


def time_to_target_by_ranks(runs, best):
    """{B: [(P, seconds)]}: at each B the best rate's runs, per rank count
    (the fastest of repeated runs)."""
    table = {}
    for b, r in best.items():
        by_p = same_config_over_ranks([x for x in runs if x["status"] == STATUS_REACHED], b, r["lr"])
        if len(by_p) >= 2:
            table[b] = sorted((p, min(x["T"] for x in xs)) for p, xs in by_p.items())
    return table


def ema_settled(run):
    """Did the run train for 3 EMA windows before the target: 3 W samples with
    --noise-window-samples W > 0, else 3/(1-decay) steps? Before that the
    bias-corrected EMA still weighs the first steps' estimates."""
    window = run.get("noise_window_samples")
    if window and window > 0:
        return run.get("E") is None or run["E"] >= 3 * window
    decay = run.get("noise_ema_decay")
    if not decay or not 0 < decay < 1 or run["S"] is None:
        return True
    return run["S"] >= 3 / (1 - decay)
