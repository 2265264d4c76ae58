"""The report's plots (matplotlib.pyplot passed in as `plt`): steps and
samples to the target vs B, the noise scale over training, the time split
per step, and throughput and time to the target vs ranks."""

import math
import os

import numpy as np

from .runs import STATUS_DIVERGED, STATUS_MISSED, STATUS_REACHED, STATUS_UNFINISHED, noise_series
from .slopes import DIMINISHING, MAXIMAL, PERFECT, regime_ranges

MARK = {STATUS_MISSED: dict(marker="^", color="tab:orange", label="target not reached (steps run: a lower bound)"),
        STATUS_DIVERGED: dict(marker="x", color="tab:red", label="diverged (at the top)"),
        STATUS_UNFINISHED: dict(marker="s", color="0.6", label="unfinished (at the top)")}


def plain_ticks():
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _: f"{v:g}")


REGIME_COLOR = {PERFECT: "#d8f0d8", DIMINISHING: "#fff2cc", MAXIMAL: "#f8d8d8"}
REGIME_TEXT = {PERFECT: "perfect\nscaling", DIMINISHING: "diminishing\nreturns", MAXIMAL: "maximal data\nparallelism"}


def plot_steps(plt, runs, best, fit, slopes, path, key, ylabel, title):
    """Steps (key 'S') or samples (key 'E') to the target vs B, log-log: every
    reached run (each seed), the best rate's seed mean with +-1 sd error bars,
    the fit, the slope -1 and the regimes read from the local slopes."""
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    reached = [r for r in runs if r["status"] == STATUS_REACHED]
    if reached:
        ax.scatter([r["B"] for r in reached], [r[key] for r in reached], s=18, color="0.55", zorder=2,
                   label="reached the target (every rate and seed)")
    bs = np.array(list(best), dtype=float)
    ys = np.array([best[b][key] for b in best], dtype=float)
    if len(bs):
        sd = np.array([best[b].get(f"{key}_sd") or 0.0 for b in best], dtype=float)
        seeds = max(best[b].get("n_reached", 1) for b in best)
        ax.errorbar(bs, ys, yerr=sd, fmt="o-", color="tab:blue", ms=7, capsize=4, zorder=4,
                    label="best rate per B: mean ± sd over seeds" if seeds > 1 else "best rate per B")
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
        ax.axvline(b_crit, color="tab:purple", lw=1.0, ls="-.", label=f"B_crit = E_min/S_min = {b_crit:.3g}")
        all_y += [float(c) for c in curve[[0, -1]]]
    for seg in slopes or []:  # the regimes, measured between neighbouring B
        color = REGIME_COLOR.get(seg["regime"])
        if color:
            ax.axvspan(seg["b_lo"], seg["b_hi"], color=color, alpha=0.6, zorder=0)
    for lo, hi, regime in regime_ranges(slopes or []):
        if regime in REGIME_TEXT:
            ax.text(math.sqrt(lo * hi), 0.02, REGIME_TEXT[regime], transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=8, color="0.3")
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
        run = r.get("run") or r  # the best rate's representative seed
        if run["status"] == STATUS_REACHED and run["noise_at_target"]:
            ax.plot([run["E"]], [run["noise_at_target"]], "*", color=color, ms=11)
        drawn += 1
    if fit and not fit["problem"]:
        ax.axhline(fit["b_crit"], color="tab:purple", ls="-.", lw=1.5, label=f"fitted B_crit = {fit['b_crit']:.3g}")
    if drawn == 0:
        ax.text(0.5, 0.5, "no noise-scale estimates in the metrics", transform=ax.transAxes, ha="center")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("samples trained (the same data at every B)")
    ax.set_ylabel("noise scale B_simple = tr(S) / |G|^2  (EMA)")
    ax.set_title("online gradient noise scale over training (star: target reached)", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


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


def plot_report(plt, out, runs, best, fit, slopes, rep, ranks_table, ttt_table, matched=None, estimates=None):
    """Every plot of the report into directory `out`; returns [(file name, caption)] in order.
    matched, estimates: noise_curves.matched_loss and estimates.three_estimates (the B_simple curves)."""
    pngs = []
    plot_steps(plt, runs, best, fit, slopes, os.path.join(out, "steps_to_target.png"), "S",
               "steps to the target", "steps to the target vs global batch")
    pngs.append(("steps_to_target.png", "steps to the target vs B: every seed, the best rate's mean ± sd, fit, slope -1, regimes from the local slopes"))
    plot_steps(plt, runs, best, fit, slopes, os.path.join(out, "samples_to_target.png"), "E",
               "samples to the target", "samples to the target E(B) = B S(B) vs global batch")
    pngs.append(("samples_to_target.png", "samples to the target vs B (mean ± sd over seeds)"))
    plot_noise(plt, runs, best, fit, os.path.join(out, "noise_scale.png"))
    pngs.append(("noise_scale.png", "online noise scale against samples trained vs the fitted B_crit"))
    if matched is not None:
        from .noise_curves import plot_noise_vs_loss, plot_noise_vs_samples
        plot_noise_vs_samples(plt, matched, os.path.join(out, "noise_vs_samples.png"))
        pngs.append(("noise_vs_samples.png", "B_simple against samples, one curve per B, each seed's reading at "
                                             "matched training loss L* marked"))
        lines = [(e["value"], f"{e['label']} = {e['value']:.3g}") for e in estimates or []
                 if e["available"] and e["key"] != "b_simple_matched_loss"]
        plot_noise_vs_loss(plt, matched, os.path.join(out, "noise_vs_loss.png"), lines)
        pngs.append(("noise_vs_loss.png", "B_simple against training loss, one curve per B, L* and the other "
                                          "estimates of the critical batch"))
    if rep:
        plot_time_split(plt, rep, os.path.join(out, "time_split.png"))
        pngs.append(("time_split.png", "time split per step (compute, all-reduce wait, data wait)"))
    if ranks_table:
        plot_ranks(plt, ranks_table, os.path.join(out, "ranks.png"))
        pngs.append(("ranks.png", "throughput and scaling efficiency vs ranks at fixed B"))
    if ttt_table:
        plot_time_to_target(plt, ttt_table, os.path.join(out, "time_to_target_vs_ranks.png"))
        pngs.append(("time_to_target_vs_ranks.png", "time to the target vs ranks"))
    return pngs
