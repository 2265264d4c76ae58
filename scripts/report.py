#!/usr/bin/env python3
"""The report of a global-batch sweep (DESIGN.md, "Scaling study").

  python3 scripts/report.py runs/sweep-NAME [more sweep dirs] [--out DIR]

Reads every run directory of the sweep(s) (summary.json, metrics.jsonl, and
the plan in sweep.json written by scripts/sweep.py) and writes into --out
(default: the first sweep dir's report/):

  summary.md              the fit, the regimes, noise scale vs B_crit, the best
                          rate per B, every run (diverged, missed and unfinished
                          runs included), the rank scaling
  report.json             the same numbers, for scripts
  steps_to_target.png     steps to the target vs global batch B (log-log): every
                          run, the best rate per B, the fit S(B) = S_min + E_min/B
                          (McCandlish et al. 2018, arXiv:1812.06162), the
                          perfect-scaling slope -1 (Shallue et al. 2018,
                          arXiv:1811.03600) and the three regimes
  samples_to_target.png   E(B) = B * S(B) with the fit E_min + S_min * B
  noise_scale.png         the online noise scale B_simple over training, per B,
                          against the fitted B_crit
  time_split.png          compute / all-reduce wait / data wait per step, per (B, P)
  ranks.png               throughput and scaling efficiency vs ranks at fixed B
  time_to_target_vs_ranks.png
                          (these two only when the sweep has several rank counts)

Needs numpy and matplotlib (Debian: python3-numpy python3-matplotlib).
"""

import argparse
import json
import math
import os
import re
import sys


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from system_python import require_numpy_matplotlib
    require_numpy_matplotlib("report", "MPITRAIN_REPORT_REEXEC")

import numpy as np  # noqa: E402

STATUS_REACHED = "reached"
STATUS_MISSED = "not reached"
STATUS_DIVERGED = "diverged"
STATUS_UNFINISHED = "unfinished"
STATUS_NOT_RUN = "not run"


# ---------------------------------------------------------------- the fit

def fit_steps_to_target(batches, steps, relative=False):
    """Least squares of S = S_min + E_min * (1/B) over the points (B, S).

    relative=True weights each residual by 1/S (relative errors), so every B
    counts the same on the log-log plot instead of the small batches, with
    their thousands of steps, deciding the fit.

    McCandlish et al. (2018), eq. 2.11: (S/S_min - 1)(E/E_min - 1) = 1 with
    E = B*S is S = S_min + E_min/B, a straight line in 1/B. Returns a dict
    with s_min, e_min, b_crit = E_min/S_min, r2 and n, and `problem` (None, or
    why the fit is not meaningful); None when there are fewer than 3 distinct
    B (two points always fit exactly and say nothing).
    """
    b = np.asarray(batches, dtype=float)
    s = np.asarray(steps, dtype=float)
    if len(set(b.tolist())) < 3:
        return None
    design = np.column_stack([np.ones_like(b), 1.0 / b])
    w = 1.0 / s if relative else np.ones_like(s)
    (s_min, e_min), *_ = np.linalg.lstsq(design * w[:, None], s * w, rcond=None)
    predicted = design @ np.array([s_min, e_min])
    ss_res = float(np.sum((s - predicted) ** 2))
    ss_tot = float(np.sum((s - s.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    problem = None
    if e_min <= 0:
        problem = "E_min <= 0: steps to the target do not fall with B, so there is no perfect-scaling regime"
    elif s_min <= 0:
        problem = ("S_min <= 0: the largest batches still scale perfectly, so the sweep has not reached "
                   "B_crit; extend it to larger B")
    b_crit = float(e_min / s_min) if s_min > 0 and e_min > 0 else float("nan")
    return dict(s_min=float(s_min), e_min=float(e_min), b_crit=b_crit, r2=r2, n=int(len(b)), problem=problem)


# ---------------------------------------------------------------- reading runs

def read_json_lines(path):
    lines = []
    try:
        with open(path, errors="replace") as f:
            for text in f:
                try:
                    lines.append(json.loads(text))
                except ValueError:
                    pass  # a run killed mid-write leaves a partial last line
    except OSError:
        pass
    return lines


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _num(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def load_run(path, planned=None):
    metrics = read_json_lines(os.path.join(path, "metrics.jsonl"))
    header = next((d for d in metrics if d.get("type") == "header"), {})
    config = header.get("config", {})
    summary = read_json(os.path.join(path, "summary.json"))
    if summary is not None and not summary.get("stop_reason"):
        summary = None
    planned = planned or {}
    run = dict(name=os.path.basename(os.path.normpath(path)), dir=path, summary=summary,
               epochs=[d for d in metrics if d.get("type") == "epoch"],
               steps=[d for d in metrics if d.get("type") == "step"],
               steps_per_epoch=header.get("steps_per_epoch"), train_rows=header.get("train_rows"))
    src = summary or {}
    run["B"] = int(src.get("global_batch") or _num(config.get("global-batch")) or planned.get("global_batch") or 0)
    run["P"] = int(src.get("ranks") or header.get("ranks") or planned.get("ranks") or 0)
    # The configured rate (a run that diverged during warmup reports the rate
    # in force then in its summary).
    run["lr"] = planned.get("lr") or _num(header.get("effective_lr")) or _num(src.get("lr"))
    run["multiplier"] = planned.get("lr_multiplier")
    run["target"] = src.get("target") or config.get("target") or ""
    if summary is None:
        run["status"] = STATUS_UNFINISHED
    elif summary["stop_reason"] == "diverged":
        run["status"] = STATUS_DIVERGED
    elif summary.get("target_reached"):
        run["status"] = STATUS_REACHED
    else:
        run["status"] = STATUS_MISSED
    run["noise_ema_decay"] = _num(config.get("noise-ema-decay"))
    run["S_interp"] = None
    if run["status"] == STATUS_REACHED:
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
    run["noise_final"] = _num(src.get("noise_scale")) or (
        _num(run["epochs"][-1].get("noise_scale")) if run["epochs"] else None)
    run["noise_at_target"] = None
    if run["status"] == STATUS_REACHED:
        at = [e for e in run["epochs"] if e.get("epoch") == summary.get("target_epoch")]
        if at:
            run["noise_at_target"] = _num(at[0].get("noise_scale"))
    run.update(time_split(run["epochs"]))
    return run


def parse_target(text):
    """'test_acc>=0.85' -> ('test_acc', 0.85), or None."""
    m = re.match(r"^\s*(\w+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$", text or "")
    return (m.group(1), float(m.group(3))) if m else None


def interpolate_crossing(run):
    """(steps, samples, seconds) at which the target metric crossed its
    threshold, linear between the last epoch where the target did not hold
    and the first where it did. mpitrain evaluates once per epoch, so the
    recorded steps are the end of that epoch; this estimates the crossing
    inside it. None when the target held after the first epoch (no earlier
    evaluation to interpolate from) or the metric is missing."""
    target = parse_target(run["target"])
    k = run.get("target_epoch") or 0
    if target is None or k < 2:
        return None
    by_epoch = {e.get("epoch"): e for e in run["epochs"]}
    e0, e1 = by_epoch.get(k - 1), by_epoch.get(k)
    if not e0 or not e1:
        return None
    metric, threshold = target
    v0, v1 = _num(e0.get(metric)), _num(e1.get(metric))
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
        plan = read_json(os.path.join(sweep, "sweep.json")) or {}
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
                runs.append(dict(name=name if len(dirs) == 1 else f"{os.path.basename(os.path.normpath(sweep))}/{name}", dir=os.path.join(sweep, name), summary=None, epochs=[], steps=[],
                                 B=p.get("global_batch", 0), P=p.get("ranks", 0), lr=p.get("lr"),
                                 multiplier=p.get("lr_multiplier"), target=plan.get("target", ""),
                                 status=STATUS_NOT_RUN, S=None, E=None, T=None, steps_run=0, epochs_run=0,
                                 test_acc=None, noise_final=None, noise_at_target=None,
                                 samples_per_s=None, step_ms=None, split_ms=None))
    runs.sort(key=lambda r: (r["B"], r["lr"] or 0, r["P"], r["name"]))
    return runs


def best_per_batch(runs):
    """{B: the reached run with the fewest steps (ties: fewer seconds)}.

    Steps do not depend on the rank count (the math depends on B only), so
    runs of every P count."""
    best = {}
    for r in runs:
        if r["status"] != STATUS_REACHED:
            continue
        cur = best.get(r["B"])
        if cur is None or (r["S"], r["T"]) < (cur["S"], cur["T"]):
            best[r["B"]] = r
    return dict(sorted(best.items()))


def regime_of(b, b_crit, factor):
    if not (b_crit and math.isfinite(b_crit)):
        return ""
    if b <= b_crit / factor:
        return "perfect scaling"
    if b >= b_crit * factor:
        return "maximal data parallelism"
    return "diminishing returns"


# ---------------------------------------------------------------- plots

MARK = {STATUS_MISSED: dict(marker="^", color="tab:orange", label="target not reached (steps run: a lower bound)"),
        STATUS_DIVERGED: dict(marker="x", color="tab:red", label="diverged (at the top)"),
        STATUS_UNFINISHED: dict(marker="s", color="0.6", label="unfinished (at the top)")}


def plain_ticks():
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _: f"{v:g}")


def plot_steps(plt, runs, best, fit, factor, path, key, ylabel, title):
    """Steps (key 'S') or samples (key 'E') to the target vs B, log-log."""
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    reached = [r for r in runs if r["status"] == STATUS_REACHED]
    if reached:
        ax.scatter([r["B"] for r in reached], [r[key] for r in reached], s=18, color="0.55", zorder=2,
                   label="reached the target (every rate)")
    bs = np.array(list(best), dtype=float)
    ys = np.array([best[b][key] for b in best], dtype=float)
    if len(bs):
        ax.plot(bs, ys, "o-", color="tab:blue", ms=8, zorder=4, label="best rate per B")
    all_y = list(ys) + [r[key] for r in reached]
    missed = [r for r in runs if r["status"] == STATUS_MISSED]
    if missed:
        vals = [r["steps_run"] if key == "S" else r["steps_run"] * r["B"] for r in missed]
        ax.scatter([r["B"] for r in missed], vals, zorder=3, **MARK[STATUS_MISSED])
        all_y += vals
    bmin = min([r["B"] for r in runs if r["B"]] or [1])
    bmax = max([r["B"] for r in runs if r["B"]] or [2])
    xlo, xhi = bmin / 1.5, bmax * 1.5
    if fit and not fit["problem"]:  # show B_crit too, unless it is far outside the sweep
        xlo = max(min(xlo, fit["b_crit"] / 1.5), bmin / 64)
        xhi = min(max(xhi, fit["b_crit"] * 1.5), bmax * 64)
    grid = np.geomspace(xlo, xhi, 200)
    if len(bs):
        # The perfect-scaling line through the smallest B's best point: steps
        # halve when B doubles (slope -1), samples stay the same (slope 0).
        b0, y0 = bs[0], ys[0]
        perfect = y0 * b0 / grid if key == "S" else np.full_like(grid, y0)
        ax.plot(grid, perfect, ":", color="k", lw=1.2, label="perfect scaling (slope -1)" if key == "S"
                else "perfect scaling (constant samples)")
    if fit and not fit["problem"]:
        s_min, e_min, b_crit = fit["s_min"], fit["e_min"], fit["b_crit"]
        curve = s_min + e_min / grid if key == "S" else s_min * grid + e_min
        ax.plot(grid, curve, "--", color="tab:green", lw=1.5,
                label=f"fit S = {s_min:.4g} + {e_min:.4g}/B" if key == "S" else f"fit E = {e_min:.4g} + {s_min:.4g} B")
        ax.axhline(s_min if key == "S" else e_min, color="tab:green", lw=0.8, alpha=0.5)
        ax.axvline(b_crit, color="tab:purple", lw=1.0, ls="-.", label=f"B_crit = E_min/S_min = {b_crit:.4g}")
        lo, hi = b_crit / factor, b_crit * factor
        spans = [(grid[0], lo, "#d8f0d8", "perfect\nscaling"), (lo, hi, "#fff2cc", "diminishing\nreturns"),
                 (hi, grid[-1], "#f8d8d8", "maximal data\nparallelism")]
        for a, b, color, text in spans:
            if b > a:
                ax.axvspan(max(a, grid[0]), min(b, grid[-1]), color=color, alpha=0.6, zorder=0)
                if min(b, grid[-1]) > max(a, grid[0]):
                    mid = math.sqrt(max(a, grid[0]) * min(b, grid[-1]))
                    ax.text(mid, 0.02, text, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                            fontsize=8, color="0.3")
        all_y += [float(c) for c in curve[[0, -1]]]
    ax.set_xscale("log", base=2)
    ax.set_xlim(xlo, xhi)
    ax.xaxis.set_major_formatter(plain_ticks())
    ax.set_yscale("log")
    positive = [y for y in all_y if y and y > 0]
    if positive:
        ylo, yhi = min(positive) / 2.0, max(positive) * 3.0
        ax.set_ylim(ylo, yhi * 1.6)
        top = yhi * 1.2
        for status in (STATUS_DIVERGED, STATUS_UNFINISHED):
            these = [r for r in runs if r["status"] == status]
            if these:
                ax.scatter([r["B"] for r in these], [top] * len(these), zorder=3, **MARK[status])
    else:
        ax.text(0.5, 0.5, "no run reached the target", transform=ax.transAxes, ha="center")
    ax.set_xlabel("global batch B")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def noise_series(run):
    lines = run["steps"] or run["epochs"]
    pts = [(d["step"], _num(d.get("noise_scale"))) for d in lines]
    return [(s, v) for s, v in pts if v is not None and v > 0 and math.isfinite(v)]


def plot_noise(plt, runs, best, fit, path):
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    chosen = {}
    for b in sorted({r["B"] for r in runs}):
        if b in best:
            chosen[b] = best[b]
        else:  # no rate reached the target: the one closest to multiplier 1 that trained
            cands = [r for r in runs if r["B"] == b and noise_series(r)]
            if cands:
                chosen[b] = min(cands, key=lambda r: abs(math.log(r["multiplier"] or 1.0)))
    cmap = plt.get_cmap("viridis")
    drawn = 0
    for i, (b, r) in enumerate(chosen.items()):
        pts = noise_series(r)
        if not pts:
            continue
        color = cmap(i / max(1, len(chosen) - 1))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", marker="." if len(pts) < 40 else None,
                color=color, label=f"B={b} (lr {r['lr']:.4g}{'' if r['status'] == STATUS_REACHED else ', ' + r['status']})")
        if r["status"] == STATUS_REACHED and r["noise_at_target"]:
            ax.plot([r["S"]], [r["noise_at_target"]], "*", color=color, ms=11)
        drawn += 1
    if fit and not fit["problem"]:
        ax.axhline(fit["b_crit"], color="tab:purple", ls="-.", lw=1.5, label=f"fitted B_crit = {fit['b_crit']:.4g}")
    if drawn == 0:
        ax.text(0.5, 0.5, "no noise-scale estimates in the metrics", transform=ax.transAxes, ha="center")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("noise scale B_simple = tr(S) / |G|^2  (EMA)")
    ax.set_title("online gradient noise scale over training (star: target reached)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


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


def plot_time_split(plt, rep, path):
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(rep) + 2), 4.8))
    keys = list(rep)
    x = np.arange(len(keys))
    bottom = np.zeros(len(keys))
    colors = dict(compute="tab:blue", allreduce="tab:orange", data="tab:green", other="0.75")
    names = dict(compute="compute", allreduce="all-reduce wait", data="data wait", other="other")
    for part in ("compute", "allreduce", "data", "other"):
        frac = np.array([100.0 * rep[k]["split_ms"][part] / rep[k]["step_ms"] for k in keys])
        ax.bar(x, frac, bottom=bottom, color=colors[part], label=names[part], width=0.7)
        bottom += frac
    for i, k in enumerate(keys):
        ax.text(i, min(bottom[i], 100) + 1.5, f"{rep[k]['step_ms']:.3g} ms", ha="center", fontsize=7, rotation=90)
    ax.set_xticks(x)
    ax.set_xticklabels([f"B={b}\nP={p}" for b, p in keys], fontsize=7)
    ax.set_ylim(0, 125)
    ax.set_ylabel("% of the training time per step")
    ax.set_title("time split per step (each part the max over ranks; ms per step on top)", fontsize=10)
    ax.legend(fontsize=7, ncol=4, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


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


def plot_ranks(plt, table, path):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.4))
    cmap = plt.get_cmap("viridis")
    for i, (b, pts) in enumerate(table.items()):
        color = cmap(i / max(1, len(table) - 1))
        ps = [p[0] for p in pts]
        a1.plot(ps, [p[1] for p in pts], "o-", color=color, label=f"B={b}")
        a2.plot(ps, [p[2] for p in pts], "o-", color=color, label=f"B={b}")
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.xaxis.set_major_formatter(plain_ticks())
        a.set_xlabel("ranks P")
        a.grid(True, alpha=0.3)
        a.legend(fontsize=7)
    a1.set_yscale("log")
    a1.set_ylabel("training samples/s")
    a1.set_title("throughput vs ranks at fixed B", fontsize=10)
    a2.axhline(1.0, color="k", ls=":", lw=1)
    a2.set_ylabel("scaling efficiency (speed-up / rank ratio)")
    a2.set_title("efficiency vs the smallest P measured", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def time_to_target_by_ranks(runs, best):
    """{B: [(P, seconds)]}: at each B the best rate's runs, per rank count
    (the fastest of repeated runs)."""
    table = {}
    for b, r in best.items():
        by_p = same_config_over_ranks([x for x in runs if x["status"] == STATUS_REACHED], b, r["lr"])
        if len(by_p) >= 2:
            table[b] = sorted((p, min(x["T"] for x in xs)) for p, xs in by_p.items())
    return table


def plot_time_to_target(plt, table, path):
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    cmap = plt.get_cmap("viridis")
    for i, (b, pts) in enumerate(table.items()):
        ax.plot([p for p, _ in pts], [t for _, t in pts], "o-", color=cmap(i / max(1, len(table) - 1)), label=f"B={b}")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(plain_ticks())
    ax.set_yscale("log")
    ax.set_xlabel("ranks P")
    ax.set_ylabel("seconds to the target (training time)")
    ax.set_title("time to target vs ranks (best rate at each B)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------- summary.md

def fmt(v, spec="{:.4g}", none="-"):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return none
    if spec == "{:.4g}" and abs(v) >= 1e4:
        return f"{v:.0f}"  # 12800, not 1.28e+04
    return spec.format(v)


def ema_settled(run):
    """Did the run train for 3 EMA windows (1/(1-decay) steps) before the target?
    Before that the bias-corrected EMA still weighs the first steps' estimates."""
    decay = run.get("noise_ema_decay")
    if not decay or not 0 < decay < 1 or run["S"] is None:
        return True
    return run["S"] >= 3 / (1 - decay)


def disagreement_notes(runs, best, fit):
    """Reasons why the online B_simple and the fitted B_crit differ, with this sweep's numbers."""
    notes = ["B_simple = tr(S)/|G|^2 leaves out the Hessian: the critical batch tracks B_noise = "
             "tr(HS)/(G^T H G), which B_simple equals only for a well-conditioned Hessian (McCandlish et al. "
             "2018, section 2.2). They report B_simple within an order of magnitude of B_crit, not closer."]
    grows = [r for r in best.values() if len(noise_series(r)) >= 2 and noise_series(r)[-1][1] > 1.5 * noise_series(r)[0][1]]
    if grows:
        notes.append(f"B_simple grows as training proceeds ({len(grows)} of {len(best)} best runs end at more than "
                     "1.5x their first estimate, noise_scale.png), so its value depends on when it is read; "
                     "B_crit summarises whole runs to one target.")
    short = [f"B={b} ({r['S']:.0f} steps)" for b, r in best.items()
             if r.get("noise_ema_decay") and not ema_settled(r)]
    if short and len(short) == len(best):  # else they are left out of the median
        window = 1 / (1 - next(r["noise_ema_decay"] for r in best.values() if r.get("noise_ema_decay")))
        notes.append(f"{', '.join(short)} reached the target within 3 EMA windows ({window:.0f} steps, "
                     "--noise-ema-decay) of the start, so their B_simple still averages the small "
                     "early-training estimates.")
    ends = [(b, r.get("target_epoch")) for b, r in best.items() if r.get("S_epoch_end") is None]
    small = []
    for b, k in ends:
        if k != ends[0][1]:
            break
        small.append(b)
    if len(small) >= 2:
        notes.append(f"B = {', '.join(map(str, small))} all reached the target after epoch {ends[0][1]}; counted at "
                     f"epoch ends their steps are exactly {ends[0][1]} x ceil(N/B), perfect scaling by "
                     "construction, which pulls E_min (and so B_crit) towards that many epochs of samples "
                     "(`--interpolate` estimates the crossing inside the epoch).")
    return notes


def write_summary(path, sweeps, runs, best, fit, fit_note, factor, rep, ranks_table, ttt_table, pngs, interpolated):
    targets = sorted({r["target"] for r in runs if r["target"]})
    count = {s: sum(1 for r in runs if r["status"] == s)
             for s in (STATUS_REACHED, STATUS_MISSED, STATUS_DIVERGED, STATUS_UNFINISHED, STATUS_NOT_RUN)}
    out = []
    w = out.append
    w("# Batch-size scaling report\n")
    w(f"Sweep: {', '.join('`' + s + '`' for s in sweeps)}. Target: {', '.join('`' + t + '`' for t in targets) or '(none)'}.")
    w(f"Runs: {len(runs)}: {count[STATUS_REACHED]} reached the target, {count[STATUS_MISSED]} did not, "
      f"{count[STATUS_DIVERGED]} diverged, {count[STATUS_UNFINISHED]} unfinished, {count[STATUS_NOT_RUN]} not run.\n")
    if interpolated:
        w("Steps, samples and seconds to the target are **interpolated** (`--interpolate`): mpitrain checks the "
          "target once per epoch, and the crossing is placed linearly between the last epoch where the target "
          "did not hold and the first where it did. A target reached after the first epoch keeps the "
          "end-of-epoch count. The recorded counts are in the table of every run.\n")
    else:
        w("Steps to the target are counted at the end of the epoch in which the target first held (mpitrain checks "
          "the target once per epoch), so they are upper bounds, in whole epochs of ceil(N/B) steps; "
          "`--interpolate` estimates the crossing inside the epoch (column *interpolated* below).\n")

    w("## Fit: S(B) = S_min + E_min / B\n")
    if fit is None:
        w(f"No fit: {fit_note}\n")
    else:
        w("Least squares on the best rate's steps at each B, linear in 1/B (McCandlish et al. 2018, eq. 2.11); "
          "samples to the target follow as E(B) = B * S(B) = E_min + S_min * B.\n")
        w("| quantity | value |\n|---|---|")
        w(f"| S_min (fewest steps, B -> inf) | {fmt(fit['s_min'])} |")
        w(f"| E_min (fewest samples, B -> 0) | {fmt(fit['e_min'])} |")
        w(f"| B_crit = E_min / S_min | {fmt(fit['b_crit'])} |")
        w(f"| R^2 | {fit['r2']:.4f} |")
        w(f"| points (B values) | {fit['n']} |\n")
        rel = fit.get("relative")
        if rel and not rel["problem"]:
            w(f"Weighted by 1/S instead (relative residuals, every B counting the same on the log-log plot): "
              f"S_min {fmt(rel['s_min'])}, E_min {fmt(rel['e_min'])}, B_crit {fmt(rel['b_crit'])}.\n")
        if fit["problem"]:
            w(f"The fit is not meaningful: {fit['problem']}.\n")
        else:
            b_crit = fit["b_crit"]
            w(f"Regimes (factor {factor:g} around B_crit): **perfect scaling** for B <= {fmt(b_crit / factor)} "
              f"(steps within {1 + 1 / factor:.2f}x of E_min/B), **diminishing returns** between, "
              f"**maximal data parallelism** for B >= {fmt(b_crit * factor)} (steps within "
              f"{1 + 1 / factor:.2f}x of S_min).\n")

    w("## Best rate per global batch\n")
    w("| B | best lr | multiplier | steps S | samples E | fit S(B) | seconds | epochs | regime |")
    w("|---|---|---|---|---|---|---|---|---|")
    for b in sorted({r["B"] for r in runs}):
        r = best.get(b)
        if r is None:
            states = sorted({x["status"] for x in runs if x["B"] == b})
            w(f"| {b} | - | - | - | - | {fmt(fit['s_min'] + fit['e_min'] / b) if fit and not fit['problem'] else '-'} "
              f"| - | - | no rate reached the target ({', '.join(states)}) |")
            continue
        sfit = fmt(fit["s_min"] + fit["e_min"] / b) if fit and not fit["problem"] else "-"
        reg = regime_of(b, fit["b_crit"], factor) if fit and not fit["problem"] else "-"
        epochs = r["summary"].get("target_epoch") if r["summary"] else None
        w(f"| {b} | {fmt(r['lr'], '{:.6g}')} | {fmt(r['multiplier'], '{:g}')} | {fmt(r['S'], '{:.0f}')} "
          f"| {fmt(r['E'], '{:.0f}')} | {sfit} "
          f"| {fmt(r['T'], '{:.2f}')} | {fmt(epochs, '{}')} | {reg} |")
    w("")

    w("## Noise scale vs the fitted B_crit\n")
    w("B_simple = tr(S)/|G|^2 is the online estimate (McCandlish et al. 2018, appendix A.1) from the metrics; "
      "shown for the best rate at each B, at the end of the run and at the epoch the target was reached.\n")
    w("| B | lr | B_simple at target | B_simple final | >= 3 EMA windows |")
    w("|---|---|---|---|---|")
    at_target, settled = [], []
    for b in sorted({r["B"] for r in runs}):
        r = best.get(b)
        if r is None:
            continue
        if r["noise_at_target"]:
            at_target.append(r["noise_at_target"])
            if ema_settled(r):
                settled.append(r["noise_at_target"])
        w(f"| {b} | {fmt(r['lr'], '{:.6g}')} | {fmt(r['noise_at_target'], '{:.4g}')} "
          f"| {fmt(r['noise_final'], '{:.4g}')} | {'yes' if ema_settled(r) else 'no'} |")
    w("")
    if at_target:
        med_all = float(np.median(at_target))
        med = float(np.median(settled)) if settled else med_all
        if settled and len(settled) < len(at_target):
            w(f"Median B_simple at the target: **{med:.4g}** over the {len(settled)} runs that trained for at "
              f"least 3 EMA windows before it ({med_all:.4g} over all {len(at_target)}: the short runs' EMA "
              "still averages the small early-training estimates).")
        else:
            w(f"Median B_simple at the target over the B values: **{med:.4g}**.")
        if fit and not fit["problem"]:
            ratio = max(med, fit["b_crit"]) / min(med, fit["b_crit"])
            w(f"Fitted B_crit: **{fit['b_crit']:.4g}**; they differ by a factor of {ratio:.2f}"
              + (" (more than 3x: see the note below)." if ratio > 3 else " (within 3x).") + "\n")
            if ratio > 3:
                w("Why they differ:\n")
                for line in disagreement_notes(runs, best, fit):
                    w(f"- {line}")
                w("")
        else:
            w("")

    w("## Every run\n")
    w("| run | B | P | lr | x | status | epochs | steps to target (or run) | interpolated | samples to target | "
      "seconds to target | final test_acc | B_simple final | samples/s |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        recorded = r.get("S_epoch_end", r["S"])
        steps = str(recorded) if recorded is not None else (f"({r['steps_run']})" if r["steps_run"] else "-")
        status = r["status"]
        if status == STATUS_DIVERGED:
            status = f"**diverged** at step {r['steps_run']}"
        elif status in (STATUS_MISSED, STATUS_UNFINISHED, STATUS_NOT_RUN):
            status = f"**{status}**"
        w(f"| {r['name']} | {r['B']} | {r['P']} | {fmt(r['lr'], '{:.6g}')} | {fmt(r['multiplier'], '{:g}')} "
          f"| {status} | {r['epochs_run']} | {steps} | {fmt(r.get('S_interp'), '{:.0f}')} | {fmt(r['E'], '{:.0f}')} "
          f"| {fmt(r['T'], '{:.2f}')} "
          f"| {fmt(r['test_acc'], '{:.4f}')} | {fmt(r['noise_final'], '{:.4g}')} | {fmt(r['samples_per_s'], '{:.0f}')} |")
    w("")

    w("## Throughput and time split\n")
    w("Per (B, P), from the run with the most steps: training samples/s and the mean time per step "
      "(each part is the maximum over ranks, so the parts need not add up to the step).\n")
    w("| B | P | samples/s | ms/step | compute | all-reduce wait | data wait | other |")
    w("|---|---|---|---|---|---|---|---|")
    for (b, p), r in rep.items():
        s = r["split_ms"]
        w(f"| {b} | {p} | {r['samples_per_s']:.0f} | {r['step_ms']:.3g} | {s['compute']:.3g} | "
          f"{s['allreduce']:.3g} | {s['data']:.3g} | {s['other']:.3g} |")
    w("")
    w("## Scaling over ranks\n")
    n_ranks = sorted({r["P"] for r in runs if r["P"]})
    if not ranks_table:
        w(f"The sweep has {'one rank count' if len(n_ranks) <= 1 else 'no B measured at two rank counts'} "
          f"(P = {', '.join(map(str, n_ranks)) or '-'}): the plots of throughput, efficiency and time to the "
          "target vs ranks are skipped. Sweep with `--ranks 1,2,4` for them.\n")
    else:
        w("Training samples/s of one rate at each B on every rank count (the fastest of repeated runs), "
          "and the efficiency: speed-up over the fewest ranks divided by the rank ratio.\n")
        w("| B | P | samples/s | efficiency |")
        w("|---|---|---|---|")
        for b, pts in ranks_table.items():
            for p, t, e in pts:
                w(f"| {b} | {p} | {t:.0f} | {e:.2f} |")
        w("")
        if ttt_table:
            w("Time to the target (best rate at B):\n")
            w("| B | P | seconds |")
            w("|---|---|---|")
            for b, pts in ttt_table.items():
                for p, t in pts:
                    w(f"| {b} | {p} | {t:.2f} |")
            w("")
    w("## Plots\n")
    for png, what in pngs:
        w(f"- `{png}`: {what}\n\n  ![{what}]({png})\n")
    with open(path, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")


# ---------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description="Plots and a Markdown summary of a global-batch sweep "
                                             "(scripts/sweep.py's run directories).")
    ap.add_argument("sweeps", nargs="+", help="sweep directories (each holds one directory per run)")
    ap.add_argument("--out", default="", help="output directory (default: SWEEP/report)")
    ap.add_argument("--regime-factor", type=float, default=4.0,
                    help="perfect scaling for B <= B_crit/F, maximal data parallelism for B >= F*B_crit (default 4)")
    ap.add_argument("--interpolate", action="store_true",
                    help="place the target's crossing inside the epoch, linearly between the epoch evaluations "
                         "(default: the end of the epoch, as recorded)")
    args = ap.parse_args(argv)
    if args.regime_factor <= 1:
        raise SystemExit("report: error: --regime-factor must be > 1")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = args.out or os.path.join(args.sweeps[0], "report")
    runs = load_sweeps(args.sweeps)
    if not runs:
        raise SystemExit(f"report: error: no run directories in {', '.join(args.sweeps)}")
    if args.interpolate:
        use_interpolated(runs)
    os.makedirs(out, exist_ok=True)
    best = best_per_batch(runs)
    fit = fit_steps_to_target(list(best), [r["S"] for r in best.values()])
    if fit:
        fit["relative"] = fit_steps_to_target(list(best), [r["S"] for r in best.values()], relative=True)
    fit_note = "" if fit else (f"only {len(best)} global batch size(s) reached the target; "
                               "the fit needs at least 3")
    rep = representative(runs)
    ranks_table = rank_scaling(runs)
    ttt_table = time_to_target_by_ranks(runs, best)

    pngs = []
    plot_steps(plt, runs, best, fit, args.regime_factor, os.path.join(out, "steps_to_target.png"), "S",
               "steps to the target", "steps to the target vs global batch")
    pngs.append(("steps_to_target.png", "steps to the target vs B: best rate per B, fit, slope -1, regimes"))
    plot_steps(plt, runs, best, fit, args.regime_factor, os.path.join(out, "samples_to_target.png"), "E",
               "samples to the target", "samples to the target E(B) = B S(B) vs global batch")
    pngs.append(("samples_to_target.png", "samples to the target vs B"))
    plot_noise(plt, runs, best, fit, os.path.join(out, "noise_scale.png"))
    pngs.append(("noise_scale.png", "online noise scale over training vs the fitted B_crit"))
    if rep:
        plot_time_split(plt, rep, os.path.join(out, "time_split.png"))
        pngs.append(("time_split.png", "time split per step (compute, all-reduce wait, data wait)"))
    if ranks_table:
        plot_ranks(plt, ranks_table, os.path.join(out, "ranks.png"))
        pngs.append(("ranks.png", "throughput and scaling efficiency vs ranks at fixed B"))
    if ttt_table:
        plot_time_to_target(plt, ttt_table, os.path.join(out, "time_to_target_vs_ranks.png"))
        pngs.append(("time_to_target_vs_ranks.png", "time to the target vs ranks"))

    write_summary(os.path.join(out, "summary.md"), args.sweeps, runs, best, fit, fit_note, args.regime_factor,
                  rep, ranks_table, ttt_table, pngs, args.interpolate)
    keep = ("name", "B", "P", "lr", "multiplier", "status", "S", "E", "T", "steps_run", "epochs_run", "test_acc",
            "noise_final", "noise_at_target", "samples_per_s", "step_ms", "split_ms", "target")
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(dict(fit=fit, fit_note=fit_note, interpolated=args.interpolate, regime_factor=args.regime_factor,
                       best={str(b): r["name"] for b, r in best.items()},
                       runs=[{k: r.get(k) for k in keep} for r in runs]), f, indent=1)
        f.write("\n")

    print(f"report: {len(runs)} runs, {len(best)} B values reached the target -> {out}/summary.md")
    if fit is None:
        print(f"report: no fit: {fit_note}")
    else:
        print(f"report: fit S(B) = {fit['s_min']:.4g} + {fit['e_min']:.4g}/B: S_min {fit['s_min']:.4g}, "
              f"E_min {fit['e_min']:.4g}, B_crit {fit['b_crit']:.4g} (R^2 {fit['r2']:.3f})"
              + (f"; not meaningful: {fit['problem']}" if fit["problem"] else ""))
    if not ranks_table:
        print("report: one rank count: the vs-ranks plots are skipped")
    for png, _ in pngs:
        print(f"report: wrote {os.path.join(out, png)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
