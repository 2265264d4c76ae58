"""summary.md of the report: the fit, the regimes, the best rate per B, the
noise scale against B_crit (and why they differ), every run, the time split
and the rank scaling."""

import numpy as np

from .bootstrap import rounded
from .formatting import cell
from .formatting import listed
from .runs import (STATUS_DIVERGED, STATUS_MISSED, STATUS_NOT_RUN, STATUS_REACHED, STATUS_UNFINISHED, ema_settled,
                   noise_series, not_deterministic, seed_groups, seed_text)
from .estimates_summary import estimates_section
from .slopes import regime_ranges


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
             if (r.get("noise_ema_decay") or r.get("noise_window_samples")) and not ema_settled(r)]
    if short and len(short) == len(best):  # else they are left out of the median
        samples = next((r["noise_window_samples"] for r in best.values() if r.get("noise_window_samples")), None)
        if samples:
            window = f"{samples:.0f} samples, --noise-window-samples"
        else:
            decay = next(r["noise_ema_decay"] for r in best.values() if r.get("noise_ema_decay"))
            window = f"{1 / (1 - decay):.0f} steps, --noise-ema-decay"
        notes.append(f"{', '.join(short)} reached the target within 3 EMA windows ({window}) of the start, "
                     "so their B_simple still averages the small early-training estimates.")
    ends = [(b, r.get("target_epoch")) for b, r in best.items()
            if r.get("S_epoch_end") is None and r.get("counted_at") == "epoch"]
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
    w(counting_text(runs, interpolated) + "\n")
    holds = sorted({r.get("target_hold") or 1 for r in runs if r["status"] != STATUS_NOT_RUN})
    if holds != [1]:
        w(f"The target counts as reached where it held for {' or '.join(map(str, holds))} consecutive evaluations "
          "(`sweep.py --target-hold`): steps, samples and seconds are those of the first of them, and a run "
          "where it never held that long counts as not reached.\n")


def counting_text(runs, interpolated):
    """How steps to the target are counted: at epoch ends, at --eval-every-steps
    evaluations, or a mix; and whether they are interpolated."""
    read = [r for r in runs if r["status"] != STATUS_NOT_RUN]
    at_eval = [r for r in read if r.get("counted_at") == "eval"]
    every = sorted({r["eval_every_steps"] for r in at_eval if r.get("eval_every_steps")})
    every_text = f" (`--eval-every-steps {', '.join(map(str, every))}`)" if every else " (`--eval-every-steps`)"
    if at_eval and len(at_eval) == len(read):
        checked = f"at the evaluation steps{every_text}"
        why = ("mpitrain checks the target at every evaluation, every N steps and at epoch ends, so the counts are "
               "upper bounds by less than N steps")
        between = "consecutive evaluations (eval lines and epoch ends)"
    elif at_eval:
        checked = (f"at the evaluation steps{every_text} for {len(at_eval)} of {len(read)} runs and at epoch ends "
                   "for the others (they wrote no eval lines)")
        why = "so the others' counts are upper bounds in whole epochs of ceil(N/B) steps"
        between = "consecutive evaluations (eval lines and epoch ends)"
    else:
        checked = "at the end of the epoch in which the target first held"
        why = ("mpitrain checks the target once per epoch without `--eval-every-steps`, so they are upper bounds, "
               "in whole epochs of ceil(N/B) steps")
        between = "the epoch ends"
    if interpolated:
        return (f"Steps, samples and seconds to the target are **interpolated** (`--interpolate`): the target is "
                f"checked {checked}, and the crossing is placed linearly between the evaluation at which it first "
                f"held and the one before ({between}). A target reached at the first evaluation keeps its "
                "recorded count. The recorded counts are in the table of every run.")
    return (f"Steps to the target are counted {checked} ({why}); `--interpolate` estimates the crossing between "
            f"{between} (column *interpolated* below).")


def ci_cell(b, q):
    """'1620 (1160-2540)' of quantity q of one weighting of the bootstrap."""
    return rounded(b[q], *b[f"{q}_ci"])


def fit_section(w, fit, fit_note, boot):
    """The fit S(B) under both weightings, with seed-bootstrap intervals."""
    w("## Fit: S(B) = S_min + E_min / B\n")
    if fit is None:
        w(f"No fit: {fit_note}\n")
        return
    w("Least squares on the best rate's seed-mean steps at each B, linear in 1/B (McCandlish et al. 2018, "
      "eq. 2.11), unweighted and weighted by 1/S (relative residuals, every B counting the same on the log-log "
      "plot); samples to the target follow as E(B) = B * S(B) = E_min + S_min * B.\n")
    rel = fit.get("relative") or {}
    intervals = boot is not None and boot["resampled"]
    pct = f"{100 * boot['level']:g}%" if boot else ""
    w("| quantity | unweighted | weighted by 1/S |\n|---|---|---|")
    for q, label in (("s_min", "S_min (fewest steps, B -> inf)"), ("e_min", "E_min (fewest samples, B -> 0)"),
                     ("b_crit", "B_crit = E_min / S_min")):
        if intervals:
            w(f"| {label} | {ci_cell(boot['unweighted'], q)} | {ci_cell(boot['relative'], q)} |")
        else:
            w(f"| {label} | {cell(fit[q])} | {cell(rel.get(q))} |")
    w(f"| R^2 | {fit['r2']:.4f} | {rel['r2']:.4f} |" if rel else f"| R^2 | {fit['r2']:.4f} | - |")
    w(f"| points (B values) | {fit['n']} | {fit['n']} |\n")
    if intervals:
        seeds = sorted(set(boot["seeds"].values()))
        w(f"In parentheses: {pct} intervals from {boot['n_boot']} bootstrap replicates that resample the seeds "
          f"within each B (deviations scaled by sqrt(n/(n-1)); random seed {boot['rng_seed']}, so the same runs "
          f"give the same intervals). Seeds that reached the target per B: "
          f"{', '.join(f'{b}: {n}' for b, n in boot['seeds'].items())}."
          + (" A B with one seed is held fixed." if min(seeds) < 2 else "")
          + " The best rate at each B is the one chosen on all seeds; its choice is not resampled.\n")
        for name, label in (("unweighted", "unweighted"), ("relative", "weighted")):
            b = boot[name]
            if b["unbounded"] > 0:
                w(f"In {100 * b['unbounded']:.0f}% of the {label} replicates S_min <= 0 (B_crit unbounded: "
                  "the sweep may not reach B_crit).\n")
            if b["no_scaling"] > 0:
                w(f"In {100 * b['no_scaling']:.0f}% of the {label} replicates E_min <= 0.\n")
    else:
        w("No intervals: every B has one seed (run several, e.g. `sweep.py --seeds 1,2,3`).\n")
    if fit["problem"]:
        w(f"The unweighted fit is not meaningful: {fit['problem']}.\n")
    if rel and rel.get("problem"):
        w(f"The weighted fit is not meaningful: {rel['problem']}.\n")


def slopes_section(w, slopes, boot):
    """Local slopes of log S vs log B and the regimes read from them."""
    w("## Local slopes and regimes\n")
    if not slopes:
        w("Fewer than 2 global batch sizes reached the target: no slopes.\n")
        return
    pct = f"{100 * boot['level']:g}%" if boot else "95%"
    w(f"Slope of log S vs log B between neighbouring batch sizes (seed means), with {pct} seed-bootstrap "
      "intervals. The regime (Shallue et al. 2018) is read from the interval: **perfect scaling** where it "
      "holds -1 (steps halve when B doubles), **maximal data parallelism** where it holds 0 (steps no longer "
      "fall), **diminishing returns** where it lies between.\n")
    w("| B | slope | interval | regime |")
    w("|---|---|---|---|")
    for s in slopes:
        ci = f"{s['ci'][0]:.2f} to {s['ci'][1]:.2f}" if s["ci"] else "- (one seed)"
        reg = s["regime"] if s["from_interval"] else f"{s['regime']} (point slope, no interval)"
        w(f"| {s['b_lo']} -> {s['b_hi']} | {s['slope']:.2f} | {ci} | {reg} |")
    w("")
    w("Regimes: " + "; ".join(f"**{reg}** for B {lo} -> {hi}" for lo, hi, reg in regime_ranges(slopes)) + ".\n")
    if any(not s["from_interval"] for s in slopes):
        w("Without an interval (one seed at both B) the regime is read off the point slope: within 0.2 of -1 "
          "perfect scaling, within 0.2 of 0 maximal data parallelism.\n")


def mean_sd(mean, sd, spec="{:.0f}"):
    if mean is None:
        return "-"
    return spec.format(mean) + (f" ± {spec.format(sd)}" if sd is not None else "")


def best_section(w, runs, best, fit):
    """The best rate at every B, over seeds."""
    w("## Best rate per global batch\n")
    w("Per rate, steps, samples and seconds to the target are the mean ± sd over the seeds that reached it; "
      "the best rate is the one with the fewest mean steps among the rates where every seed reached the target "
      "(else among the others). Seeds that did not reach it are listed.\n")
    w("| B | best lr | multiplier | seeds reached | steps S | samples E | fit S(B) | seconds | missed seeds |")
    w("|---|---|---|---|---|---|---|---|---|")
    good = fit and not fit["problem"]
    for b in sorted({r["B"] for r in runs}):
        a = best.get(b)
        sfit = cell(fit["s_min"] + fit["e_min"] / b) if good else "-"
        if a is None:
            states = sorted({x["status"] for x in runs if x["B"] == b})
            w(f"| {b} | - | - | - | - | - | {sfit} | - | no rate reached the target ({', '.join(states)}) |")
            continue
        missed = missed_text(a)
        w(f"| {b} | {cell(a['lr'], '{:.6g}')} | {cell(a['multiplier'], '{:g}')} | {a['n_reached']} of {a['n_seeds']} "
          f"| {mean_sd(a['S'], a['S_sd'])} | {mean_sd(a['E'], a['E_sd'])} | {sfit} "
          f"| {mean_sd(a['T'], a['T_sd'], '{:.2f}')} | {missed} |")
    w("")


def missed_text(agg):
    return ", ".join(f"seed {seed_text(m['seed'])}: {m['status']}"
                     + (f" ({m['steps_run']} steps)" if m["status"] == STATUS_MISSED else "")
                     for m in agg["missed"]) or "-"


def rates_section(w, runs, best):
    """Every (B, lr) over its seeds (when some rate has more than one seed)."""
    groups = seed_groups(runs)
    if not any(a["n_seeds"] > 1 for a in groups.values()):
        return
    w("## Every rate over seeds\n")
    w("| B | lr | multiplier | seeds | reached | steps S (mean ± sd) | per seed | best | not reached |")
    w("|---|---|---|---|---|---|---|---|---|")
    for (b, lr), a in groups.items():
        per_seed = ", ".join(f"{seed_text(k)}: {v:.0f}" for k, v in zip(a["reached_seeds"], a["seed_S"])) or "-"
        is_best = b in best and best[b]["lr"] == lr
        w(f"| {b} | {cell(lr, '{:.6g}')} | {cell(a['multiplier'], '{:g}')} "
          f"| {', '.join(seed_text(x) for x in a['seeds'])} | {a['n_reached']} of {a['n_seeds']} "
          f"| {mean_sd(a['S'], a['S_sd'])} | {per_seed} | {'yes' if is_best else ''} | {missed_text(a)} |")
    w("")


def noise_section(w, runs, best, fit):
    """The noise scale at the target against the fitted B_crit."""
    w("## Noise scale vs the fitted B_crit\n")
    w("B_simple = tr(S)/|G|^2 is the online estimate (McCandlish et al. 2018, appendix A.1) from the metrics; "
      "shown for the best rate at each B (its seed closest to the mean steps), at the end of the run and at the "
      "target (the last step line before it, else the line of the epoch it was reached in).\n")
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
            w(f"Fitted B_crit (unweighted): **{rounded(fit['b_crit'])}**; they differ by a factor of {ratio:.2f}"
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
    w("| run | B | P | lr | x | seed | status | epochs | steps to target (or run) | interpolated | samples to target | "
      "seconds to target | final test_acc | B_simple final | samples/s |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        recorded = r.get("S_epoch_end", r["S"])
        steps = str(recorded) if recorded is not None else (f"({r['steps_run']})" if r["steps_run"] else "-")
        status = r["status"]
        if status == STATUS_DIVERGED:
            status = f"**diverged** at step {r['steps_run']}"
        elif status in (STATUS_MISSED, STATUS_UNFINISHED, STATUS_NOT_RUN):
            status = f"**{status}**"
        w(f"| {r['name']} | {r['B']} | {r['P']} | {cell(r['lr'], '{:.6g}')} | {cell(r['multiplier'], '{:g}')} "
          f"| {cell(r.get('seed'), '{}')} | {status} | {r['epochs_run']} | {steps} | {cell(r.get('S_interp'), '{:.0f}')} | {cell(r['E'], '{:.0f}')} "
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


def write_summary(path, sweeps, runs, best, fit, fit_note, boot, slopes, rep, ranks_table, ttt_table, pngs,
                  interpolated, estimates=None):
    out = []
    w = out.append
    summary_head(w, sweeps, runs, interpolated)
    fit_section(w, fit, fit_note, boot)
    slopes_section(w, slopes, boot)
    if estimates:  # (rows, matched, lr_opt, level): estimates.py, noise_curves.py
        estimates_section(w, *estimates)
    best_section(w, runs, best, fit)
    rates_section(w, runs, best)
    noise_section(w, runs, best, fit)
    runs_section(w, runs)
    split_section(w, rep)
    ranks_section(w, runs, ranks_table, ttt_table)
    plots_section(w, pngs)
    with open(path, "w") as f:
        f.write("\n".join(out).rstrip() + "\n")
