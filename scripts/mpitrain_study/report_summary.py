"""summary.md of the report: the fit, the regimes, the best rate per B, the
noise scale against B_crit (and why they differ), every run, the time split
and the rank scaling."""

import numpy as np

from .fit import regime_of
from .formatting import cell
from .formatting import listed
from .runs import (STATUS_DIVERGED, STATUS_MISSED, STATUS_NOT_RUN, STATUS_REACHED, STATUS_UNFINISHED, ema_settled,
                   noise_series, not_deterministic)


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


def determinism_text(runs):
    """Whether the runs were trained with --deterministic (the metrics headers say), in one sentence."""
    read = [r for r in runs if r["status"] != STATUS_NOT_RUN]
    wrong = not_deterministic(runs)
    units = sorted({r["deterministic_unit"] for r in read if r["deterministic"]}, key=str)
    unit_text = f" (units of {' and '.join(map(str, units))} rows)" if units else ""
    if not read:
        return "Deterministic (`--deterministic`): no run has started."
    if not wrong:
        return (f"Deterministic (`--deterministic`): **all** {len(read)} runs{unit_text}: their training (not "
                "their timings) is bitwise the same on any rank count.")
    if len(wrong) == len(read):
        return f"Deterministic (`--deterministic`): **no**, none of the {len(read)} runs."
    return (f"Deterministic (`--deterministic`): **not all**, {len(read) - len(wrong)} of {len(read)} "
            f"runs{unit_text}; not: {listed(wrong)}.")


def summary_head(w, sweeps, runs, interpolated):
    """The title, the counts of runs by outcome, how steps are counted."""
    targets = sorted({r["target"] for r in runs if r["target"]})
    count = {s: sum(1 for r in runs if r["status"] == s)
             for s in (STATUS_REACHED, STATUS_MISSED, STATUS_DIVERGED, STATUS_UNFINISHED, STATUS_NOT_RUN)}
    w("# Batch-size scaling report\n")
    w(f"Sweep: {', '.join('`' + s + '`' for s in sweeps)}. Target: {', '.join('`' + t + '`' for t in targets) or '(none)'}.")
    w(f"Runs: {len(runs)}: {count[STATUS_REACHED]} reached the target, {count[STATUS_MISSED]} did not, "
      f"{count[STATUS_DIVERGED]} diverged, {count[STATUS_UNFINISHED]} unfinished, {count[STATUS_NOT_RUN]} not run.\n")
    w(determinism_text(runs) + "\n")
    if interpolated:
        w("Steps, samples and seconds to the target are **interpolated** (`--interpolate`): mpitrain checks the "
          "target once per epoch, and the crossing is placed linearly between the last epoch where the target "
          "did not hold and the first where it did. A target reached after the first epoch keeps the "
          "end-of-epoch count. The recorded counts are in the table of every run.\n")
    else:
        w("Steps to the target are counted at the end of the epoch in which the target first held (mpitrain checks "
          "the target once per epoch), so they are upper bounds, in whole epochs of ceil(N/B) steps; "
          "`--interpolate` estimates the crossing inside the epoch (column *interpolated* below).\n")


def fit_section(w, fit, fit_note, factor):
    """The fit S(B) and the regimes."""
    w("## Fit: S(B) = S_min + E_min / B\n")
    if fit is None:
        w(f"No fit: {fit_note}\n")
    else:
        w("Least squares on the best rate's steps at each B, linear in 1/B (McCandlish et al. 2018, eq. 2.11); "
          "samples to the target follow as E(B) = B * S(B) = E_min + S_min * B.\n")
        w("| quantity | value |\n|---|---|")
        w(f"| S_min (fewest steps, B -> inf) | {cell(fit['s_min'])} |")
        w(f"| E_min (fewest samples, B -> 0) | {cell(fit['e_min'])} |")
        w(f"| B_crit = E_min / S_min | {cell(fit['b_crit'])} |")
        w(f"| R^2 | {fit['r2']:.4f} |")
        w(f"| points (B values) | {fit['n']} |\n")
        rel = fit.get("relative")
        if rel and not rel["problem"]:
            w(f"Weighted by 1/S instead (relative residuals, every B counting the same on the log-log plot): "
              f"S_min {cell(rel['s_min'])}, E_min {cell(rel['e_min'])}, B_crit {cell(rel['b_crit'])}.\n")
        if fit["problem"]:
            w(f"The fit is not meaningful: {fit['problem']}.\n")
        else:
            b_crit = fit["b_crit"]
            w(f"Regimes (factor {factor:g} around B_crit): **perfect scaling** for B <= {cell(b_crit / factor)} "
              f"(steps within {1 + 1 / factor:.2f}x of E_min/B), **diminishing returns** between, "
              f"**maximal data parallelism** for B >= {cell(b_crit * factor)} (steps within "
              f"{1 + 1 / factor:.2f}x of S_min).\n")


def best_section(w, runs, best, fit, factor):
    """The best rate at every B."""
    w("## Best rate per global batch\n")
    w("| B | best lr | multiplier | steps S | samples E | fit S(B) | seconds | epochs | regime |")
    w("|---|---|---|---|---|---|---|---|---|")
    for b in sorted({r["B"] for r in runs}):
        r = best.get(b)
        if r is None:
            states = sorted({x["status"] for x in runs if x["B"] == b})
            w(f"| {b} | - | - | - | - | {cell(fit['s_min'] + fit['e_min'] / b) if fit and not fit['problem'] else '-'} "
              f"| - | - | no rate reached the target ({', '.join(states)}) |")
            continue
        sfit = cell(fit["s_min"] + fit["e_min"] / b) if fit and not fit["problem"] else "-"
        reg = regime_of(b, fit["b_crit"], factor) if fit and not fit["problem"] else "-"
        epochs = r["summary"].get("target_epoch") if r["summary"] else None
        w(f"| {b} | {cell(r['lr'], '{:.6g}')} | {cell(r['multiplier'], '{:g}')} | {cell(r['S'], '{:.0f}')} "
          f"| {cell(r['E'], '{:.0f}')} | {sfit} "
          f"| {cell(r['T'], '{:.2f}')} | {cell(epochs, '{}')} | {reg} |")
    w("")


def noise_section(w, runs, best, fit):
    """The noise scale at the target against the fitted B_crit."""
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
        w(f"| {b} | {cell(r['lr'], '{:.6g}')} | {cell(r['noise_at_target'], '{:.4g}')} "
          f"| {cell(r['noise_final'], '{:.4g}')} | {'yes' if ema_settled(r) else 'no'} |")
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


def runs_section(w, runs):
    """Every run, with its outcome."""
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
        w(f"| {r['name']} | {r['B']} | {r['P']} | {cell(r['lr'], '{:.6g}')} | {cell(r['multiplier'], '{:g}')} "
          f"| {status} | {r['epochs_run']} | {steps} | {cell(r.get('S_interp'), '{:.0f}')} | {cell(r['E'], '{:.0f}')} "
          f"| {cell(r['T'], '{:.2f}')} "
          f"| {cell(r['test_acc'], '{:.4f}')} | {cell(r['noise_final'], '{:.4g}')} | {cell(r['samples_per_s'], '{:.0f}')} |")
    w("")


def split_section(w, rep):
    """Throughput and the time split per (B, P)."""
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


def ranks_section(w, runs, ranks_table, ttt_table):
    """Throughput, efficiency and time to the target over ranks."""
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


def plots_section(w, pngs):
    """The plots."""
    w("## Plots\n")
    for png, what in pngs:
        w(f"- `{png}`: {what}\n\n  ![{what}]({png})\n")


def write_summary(path, sweeps, runs, best, fit, fit_note, factor, rep, ranks_table, ttt_table, pngs, interpolated):
    out = []
    w = out.append
    summary_head(w, sweeps, runs, interpolated)
    fit_section(w, fit, fit_note, factor)
    best_section(w, runs, best, fit, factor)
    noise_section(w, runs, best, fit)
    runs_section(w, runs)
    split_section(w, rep)
    ranks_section(w, runs, ranks_table, ttt_table)
    plots_section(w, pngs)
    with open(path, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
