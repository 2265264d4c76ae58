"""The online noise scale B_simple against samples and against training loss,
and B_simple read at a matched training loss across batch sizes (report.py;
docs/scaling-study.md, "Three estimates of the critical batch").

B_simple grows as training proceeds (the gradient shrinks while tr(S) stays),
so a single number needs a stated point of training. Reading it where the
runs reach the same training loss L* makes batch sizes comparable: every B
is then at the same point of the optimisation, whatever its steps.

For each B's best rate, each seed's run gives:

- the training loss over samples: the step lines' `loss` (the global batch's
  mean loss, --metrics-every-steps), smoothed by a centred moving average
  over a fixed number of samples (--loss-window-samples, default 25,600:
  the trainer's default noise window), so every B is smoothed over the same
  data; without step lines, the epoch lines' `train_loss` (the epoch's mean,
  placed at the middle of the epoch in samples), unsmoothed;
- B_simple over samples: the `noise_scale` of the same lines (the trainer's
  online estimate, an EMA over --noise-window-samples).

The crossing is the first point where the smoothed loss is at or below L*,
placed linearly (in samples) between it and the point before; B_simple is
interpolated linearly at that number of samples.

L*: unless given (--matched-loss), the largest over the compared runs (every
seed of every B's best rate) of the smallest smoothed loss each reached, so
that every run reaches it. Runs stop at the target, so L* is about the loss
at which the slowest of them reached the target.
"""

import math

import numpy as np

from .bootstrap import LEVEL, N_BOOT, RNG_SEED, percentile_interval, resample_means
from .metrics import num
from .runs import STATUS_MISSED, STATUS_REACHED, seed_key

LOSS_WINDOW = 25600  # samples: the trainer's default --noise-window-samples


def smooth(samples, values, window):
    """Centred moving average: at each point the mean of the values whose
    samples lie within window/2 of its own (equal weight per line)."""
    s = np.asarray(samples, dtype=float)
    v = np.asarray(values, dtype=float)
    if window <= 0 or len(s) < 2:
        return v.copy()
    lo = np.searchsorted(s, s - window / 2.0, side="left")
    hi = np.searchsorted(s, s + window / 2.0, side="right")
    csum = np.concatenate([[0.0], np.cumsum(v)])
    return (csum[hi] - csum[lo]) / (hi - lo)


def curves(run, window=LOSS_WINDOW):
    """The run's training loss and B_simple over samples:
    dict(source ('step' or 'epoch'), loss_samples, loss (smoothed), noise_samples, noise), or None
    when it has neither step lines with `loss` nor epoch lines with `train_loss`."""
    steps = [d for d in run.get("steps") or [] if num(d.get("samples")) is not None and _finite(d.get("loss"))]
    if len(steps) >= 1:
        steps.sort(key=lambda d: num(d["samples"]))
        s = np.array([num(d["samples"]) for d in steps])
        loss = smooth(s, [num(d["loss"]) for d in steps], window)
        pts = [(num(d["samples"]), num(d.get("noise_scale"))) for d in steps if _finite(d.get("noise_scale"))]
        return dict(source="step", loss_samples=s, loss=loss, noise_samples=np.array([p[0] for p in pts]),
                    noise=np.array([p[1] for p in pts]))
    epochs = [d for d in run.get("epochs") or [] if num(d.get("samples")) is not None]
    epochs.sort(key=lambda d: num(d["samples"]))
    lpts, npts, prev = [], [], 0.0
    for d in epochs:
        s = num(d["samples"])
        if _finite(d.get("train_loss")):
            lpts.append(((prev + s) / 2.0, num(d["train_loss"])))  # the epoch's mean: its middle
        if _finite(d.get("noise_scale")):
            npts.append((s, num(d["noise_scale"])))
        prev = s
    if not lpts:
        return None
    return dict(source="epoch", loss_samples=np.array([p[0] for p in lpts]), loss=np.array([p[1] for p in lpts]),
                noise_samples=np.array([p[0] for p in npts]), noise=np.array([p[1] for p in npts]))


def _finite(value):
    v = num(value)
    return v is not None and math.isfinite(v)


def crossing(samples, loss, level):
    """(samples at which `loss` first falls to `level`, linear between that
    point and the one before; at_first: it was already there at the first
    point), or None when it never does."""
    below = np.nonzero(np.asarray(loss) <= level)[0]
    if len(below) == 0:
        return None
    i = int(below[0])
    if i == 0:
        return float(samples[0]), True
    l0, l1 = float(loss[i - 1]), float(loss[i])
    frac = 1.0 if l0 == l1 else min(1.0, max(0.0, (l0 - level) / (l0 - l1)))
    return float(samples[i - 1] + frac * (samples[i] - samples[i - 1])), False


def value_at(samples, values, s):
    """values linearly interpolated at s (held at the ends); None without points."""
    if len(samples) == 0:
        return None
    return float(np.interp(s, samples, values))


def seed_runs(runs, b, lr):
    """{seed: run} of the rate lr at B: per seed the first run that reached the
    target, else the one that trained longest without diverging (a missed
    target still has a loss curve); diverged, unfinished and unrun runs are left out."""
    out = {}
    for r in runs:
        if r["B"] != b or r["lr"] != lr or r["status"] not in (STATUS_REACHED, STATUS_MISSED):
            continue
        k = seed_key(r)
        cur = out.get(k)
        if cur is None or (cur["status"] != STATUS_REACHED and
                           (r["status"] == STATUS_REACHED or r["steps_run"] > cur["steps_run"])):
            out[k] = r
    return dict(sorted(out.items(), key=lambda kv: str(kv[0])))


def matched_loss(runs, best, window=LOSS_WINDOW, level=None, n_boot=N_BOOT, level_ci=LEVEL, rng_seed=RNG_SEED):
    """B_simple at a matched training loss L* for every seed of each B's best rate.

    Returns dict(available, reason (when not), level (L*), rule, window, sources ({'step': n, 'epoch': n}),
    per_b {B: dict(lr, seeds, values, samples, at_first, mean, sd, samples_mean, samples_sd, source,
    window_samples (the run's --noise-window-samples))}, not_reached [(B, seed, run name, min loss)],
    median (over B of the per-B means), median_ci (seed bootstrap, None with one seed at every B), spread
    (max/min of the per-B means, None unless all > 0), n_boot, level_ci, curves {B: the curves of one seed's
    run, for the plots}."""
    loaded = {}
    for b, agg in best.items():
        rep = (agg.get("run") or {}).get("name")
        for seed, r in seed_runs(runs, b, agg["lr"]).items():
            c = curves(r, window)
            if c is None or len(c["noise"]) == 0:
                continue
            loaded.setdefault(b, []).append((seed, r, c))
        if b in loaded:  # the best rate's representative seed first (the one the plots draw)
            loaded[b].sort(key=lambda x: x[1]["name"] != rep)
    out = dict(available=False, reason="", level=None, rule="", window=window, per_b={}, not_reached=[],
               median=None, median_ci=None, spread=None, n_boot=n_boot, level_ci=level_ci, curves={},
               sources={})
    if not best:
        out["reason"] = "no global batch size reached the target"
        return out
    if not loaded:
        out["reason"] = ("no run of a best rate has a training loss and a noise scale in its metrics "
                         "(step lines with `loss` and `noise_scale`, or epoch lines with `train_loss`)")
        return out
    if level is None:
        level = max(float(np.min(c["loss"])) for v in loaded.values() for _, _, c in v)
        out["rule"] = ("the largest over the compared runs (every seed of each B's best rate) of the smallest "
                       "smoothed training loss each reached, so that every run reaches it")
    else:
        out["rule"] = "given (`--matched-loss`)"
    out["level"] = level
    for b, items in sorted(loaded.items()):
        row = dict(lr=best[b]["lr"], seeds=[], values=[], samples=[], at_first=[], source=items[0][2]["source"],
                   window_samples=items[0][1].get("noise_window_samples"))
        for seed, r, c in items:
            out["sources"][c["source"]] = out["sources"].get(c["source"], 0) + 1
            x = crossing(c["loss_samples"], c["loss"], level)
            if x is None:
                out["not_reached"].append((b, seed, r["name"], float(np.min(c["loss"]))))
                continue
            row["seeds"].append(seed)
            row["samples"].append(x[0])
            row["at_first"].append(x[1])
            row["values"].append(value_at(c["noise_samples"], c["noise"], x[0]))
        if not row["values"]:
            continue
        for key, name in (("values", ""), ("samples", "samples_")):
            v = np.asarray(row[key], dtype=float)
            row[f"{name}mean"] = float(v.mean())
            row[f"{name}sd"] = float(v.std(ddof=1)) if len(v) >= 2 else None
        out["per_b"][b] = row
        out["curves"][b] = dict(items[0][2], seed=items[0][0], name=items[0][1]["name"])
    if not out["per_b"]:
        out["reason"] = f"no run's smoothed training loss fell to L* = {level:.4g}"
        return out
    out["available"] = True
    means = [r["mean"] for r in out["per_b"].values()]
    out["median"] = float(np.median(means))
    if all(m > 0 for m in means):
        out["spread"] = max(means) / min(means)
    per_seed = {b: r["values"] for b, r in out["per_b"].items()}
    if any(len(v) >= 2 for v in per_seed.values()):
        _, reps = resample_means(per_seed, n_boot, rng_seed)
        out["median_ci"] = percentile_interval(np.median(reps, axis=1), level_ci)
    return out


def for_json(matched):
    """The matched-loss reading without the curves, for report.json."""
    keep = {k: v for k, v in matched.items() if k != "curves"}
    keep["per_b"] = {str(b): dict(r, seeds=[str(s) for s in r["seeds"]]) for b, r in matched["per_b"].items()}
    keep["not_reached"] = [dict(B=b, seed=str(s), run=n, min_loss=m) for b, s, n, m in matched["not_reached"]]
    return keep


# --- Plots (matplotlib.pyplot passed in as plt) ---

def _colors(plt, keys):
    cmap = plt.get_cmap("viridis")
    return {k: cmap(i / max(1, len(keys) - 1)) for i, k in enumerate(keys)}


def _positive(xs, ys):
    keep = [(x, y) for x, y in zip(xs, ys) if y is not None and y > 0 and x > 0]
    return [k[0] for k in keep], [k[1] for k in keep]


def plot_noise_vs_samples(plt, matched, path):
    """B_simple against samples trained, one curve per B (one seed of its best
    rate), each seed's reading at L* marked."""
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    colors = _colors(plt, sorted(matched["curves"]))
    for b, c in sorted(matched["curves"].items()):
        xs, ys = _positive(c["noise_samples"], c["noise"])
        ax.plot(xs, ys, "-", marker="." if len(xs) < 40 else None, color=colors[b], label=f"B={b}")
        row = matched["per_b"].get(b)
        if row:
            px, py = _positive(row["samples"], row["values"])
            ax.plot(px, py, "o", color=colors[b], mec="k", ms=7)
    _finish(ax, matched, "samples trained (the same data at every B)",
            f"online noise scale over training (dots: where the smoothed training loss reached L* = "
            f"{matched['level']:.4g}, each seed)" if matched["level"] is not None else "online noise scale")
    ax.set_xscale("log")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def plot_noise_vs_loss(plt, matched, path, lines=()):
    """B_simple against the smoothed training loss (falling to the right), one
    curve per B, L* as a vertical line; `lines`: [(value, label)] drawn
    horizontally (the other estimates of the critical batch)."""
    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    colors = _colors(plt, sorted(matched["curves"]))
    for b, c in sorted(matched["curves"].items()):
        noise = np.interp(c["loss_samples"], c["noise_samples"], c["noise"])
        keep = [(l, n) for l, n in zip(c["loss"], noise) if l > 0 and n > 0]
        ax.plot([k[0] for k in keep], [k[1] for k in keep], "-", marker="." if len(keep) < 40 else None,
                color=colors[b], label=f"B={b}")
        row = matched["per_b"].get(b)
        if row and row["mean"] > 0:
            ax.errorbar([matched["level"]], [row["mean"]], yerr=[[row["sd"] or 0.0], [row["sd"] or 0.0]], fmt="o",
                        color=colors[b], mec="k", ms=7, capsize=3)
    if matched["level"] is not None and matched["level"] > 0:
        ax.axvline(matched["level"], color="k", ls=":", lw=1.2, label=f"L* = {matched['level']:.4g}")
    styles = ["-.", "--", (0, (1, 1)), (0, (3, 1, 1, 1))]
    for i, (value, label) in enumerate(lines):
        if value is not None and math.isfinite(value) and value > 0:
            ax.axhline(value, color="tab:purple" if i == 0 else f"C{i + 3}", ls=styles[i % len(styles)], lw=1.3,
                       label=label)
    _finish(ax, matched, "training loss (moving average over samples; falls to the right)",
            "online noise scale against training loss (dots: mean ± sd over seeds at L*)")
    ax.set_xscale("log")
    ax.invert_xaxis()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def _finish(ax, matched, xlabel, title):
    if not matched["curves"]:
        ax.text(0.5, 0.5, "no training loss and noise scale in the metrics", transform=ax.transAxes, ha="center")
    else:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("noise scale B_simple = tr(S) / |G|^2  (EMA)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4)
