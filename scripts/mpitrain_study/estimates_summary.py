"""summary.md's section on the three estimates of the critical batch
(estimates.py) and the reading of B_simple at matched training loss
(noise_curves.py)."""

import math

from .bootstrap import rounded, sig
from .formatting import cell
from .runs import seed_text


def value_text(row):
    if not row["available"]:
        return "unavailable"
    v = row["value"]
    if v is not None and math.isinf(v):
        return "inf (above the sweep)"
    if row["ci"]:
        return rounded(v, *row["ci"])
    return rounded(v)


def mean_sd(mean, sd, spec="{:.4g}"):
    if mean is None:
        return "-"
    return spec.format(mean) + (f" ± {spec.format(sd)}" if sd is not None else "")


def estimates_section(w, rows, matched, lr_opt, level):
    """The three estimates side by side, then how (b) and (c) were read."""
    pct = f"{100 * level:g}%"
    w("## Three estimates of the critical batch\n")
    w(f"Side by side, with {pct} seed-bootstrap intervals in parentheses (McCandlish et al. 2018 expect them to "
      "agree within an order of magnitude, not closer: B_simple leaves out the Hessian).\n")
    w("| estimate | value (interval) | from |\n|---|---|---|")
    how = {
        "fit_unweighted": "S(B) = S_min + E_min/B on the best rates' seed-mean steps; E_min/S_min",
        "fit_relative": "the same fit, residuals weighted by 1/S",
        "b_simple_matched_loss": "the trainer's online B_simple where each run's smoothed training loss first "
                                 "falls to L* (below); the median over B of the seed means",
        "b_noise_lr_opt": "eps_opt(B) = eps_max / (1 + B_noise/B) fitted to the best rate per B (below)",
    }
    for row in rows:
        w(f"| {row['label']} | {value_text(row)} | {how[row['key']]} |")
    w("")
    for row in rows:
        if row["reason"]:
            w(f"- {row['label']}: {row['reason']}.")
    if any(row["reason"] for row in rows):
        w("")
    matched_section(w, matched, pct)
    lr_opt_section(w, lr_opt, pct)


def matched_section(w, matched, pct):
    w("### B_simple at matched training loss\n")
    if not matched["available"]:
        w(f"Unavailable: {matched['reason']}.\n")
        return
    src = matched["sources"]
    if src.get("step") and not src.get("epoch"):
        source = (f"the step lines' batch loss (`--metrics-every-steps`), smoothed by a centred moving average "
                  f"over {matched['window']:.0f} samples (the same data at every B)")
    elif src.get("epoch") and not src.get("step"):
        source = ("the epoch lines' `train_loss` (no step lines: the epoch's mean loss, placed at the middle of "
                  "the epoch, unsmoothed; coarse, run with `--metrics-every-steps` for a finer reading)")
    else:
        source = (f"the step lines' batch loss smoothed over {matched['window']:.0f} samples for {src['step']} runs, "
                  f"the epoch lines' `train_loss` for {src['epoch']} runs without step lines")
    w(f"For every seed of each B's best rate, the training loss is {source}. L* = **{matched['level']:.4g}**: "
      f"{matched['rule']}. The crossing is the first point at or below L*, placed linearly between it and the "
      "point before; B_simple (the trainer's `noise_scale`, an EMA over samples) is interpolated there.\n")
    w("| B | lr | seeds | samples at L* (mean ± sd) | B_simple at L* (mean ± sd) | per seed | >= 3 EMA windows |")
    w("|---|---|---|---|---|---|---|")
    for b, r in matched["per_b"].items():
        per_seed = ", ".join((f"{seed_text(s)}: " if s != "default" else "") + sig(v, 3) + (" (first point)" if f else "")
                             for s, v, f in zip(r["seeds"], r["values"], r["at_first"]))
        window = r.get("window_samples")
        settled = "-" if not window else ("yes" if min(r["samples"]) >= 3 * window else "no")
        w(f"| {b} | {cell(r['lr'], '{:.6g}')} | {len(r['seeds'])} | {mean_sd(r['samples_mean'], r['samples_sd'], '{:.0f}')} "
          f"| {mean_sd(r['mean'], r['sd'])} | {per_seed} | {settled} |")
    w("")
    text = f"Median over the {len(matched['per_b'])} B: **{sig(matched['median'], 3)}**"
    if matched["median_ci"]:
        lo, hi = matched["median_ci"]
        text += f" ({pct} interval {sig(lo, 3)}-{sig(hi, 3)}, seed bootstrap of the per-B means)"
    else:
        text += " (no interval: one seed at every B)"
    if matched["spread"] is not None:
        text += (f"; the per-B means span a factor of {matched['spread']:.2f} (max/min), "
                 + ("within" if matched["spread"] <= 1.3 else "more than") + " 30%")
    w(text + ".\n")
    if matched["not_reached"]:
        w("Runs whose smoothed loss never fell to L* (left out): "
          + ", ".join(f"{n} (min {m:.4g})" for _, _, n, m in matched["not_reached"]) + ".\n")
    if any(any(r["at_first"]) for r in matched["per_b"].values()):
        w("A reading marked *first point* was already at or below L* at the run's first line: it is an upper "
          "bound on the samples.\n")


def lr_opt_section(w, lr_opt, pct):
    w("### The critical batch implied by the optimal learning rates\n")
    table = lr_opt["table"]
    fit = lr_opt["fit"]
    w("McCandlish et al. (2018, section 2): for SGD the optimal rate is eps_opt(B) = eps_max / (1 + B_noise/B), "
      "linear in B well below B_noise and flat above it. Fitted by least squares in log space to the best rate "
      "at each B with two or more rates tried (eps_max in closed form, a 1-D search over B_noise).\n")
    w("| B | rates tried | best lr | fitted eps_opt(B) | best at the grid edge |")
    w("|---|---|---|---|---|")
    for b, t in table.items():
        fitted = "-"
        if fit and b in lr_opt["used"]:
            fitted = (cell(fit["eps_per_b"] * b, "{:.4g}") if math.isinf(fit["b_noise"])
                      else cell(fit["eps_max"] / (1 + fit["b_noise"] / b), "{:.4g}"))
        rates = ", ".join(f"{x:.4g}" for x in t["rates"])
        w(f"| {b} | {rates} | {t['best']:.6g} | {fitted} | {t['edge'] or ('-' if len(t['rates']) >= 2 else 'one rate')} |")
    w("")
    if not lr_opt["available"]:
        w(f"Unavailable: {lr_opt['reason']}.\n")
        return
    if fit["bound"] == "upper":
        w("The best rates still grow like B across the sweep: B_noise lies above the largest B, the fit puts it at "
          "the end of its search (reported as inf).\n")
    elif fit["bound"] == "lower":
        w("The best rates do not grow with B: B_noise lies below the smallest B (reported as 0).\n")
    else:
        ci = lr_opt["b_noise_ci"]
        w(f"B_noise = **{rounded(fit['b_noise'], *ci) if ci else rounded(fit['b_noise'])}**, eps_max = "
          f"{rounded(fit['eps_max'], *lr_opt['eps_max_ci']) if lr_opt['eps_max_ci'] else rounded(fit['eps_max'])}; "
          f"rms log residual {fit['rmse_log']:.2f} (a x2 rate grid quantises each best rate to within a factor "
          "of 1.41, 0.35 in log).\n")
    if lr_opt["b_noise_ci"] and lr_opt["distinct_picks"] == 1:
        w("No interval: in every bootstrap replicate the best rate at each B is the same, so the seeds do not move "
          "the fit; the uncertainty is the rate grid's step.\n")
    elif lr_opt["b_noise_ci"]:
        w(f"Interval: {pct}, {lr_opt['n_boot']} replicates of the seed bootstrap in which every rate's seeds are "
          f"resampled and the best rate re-picked at each B ({lr_opt['distinct_picks']} distinct sets of best "
          "rates).\n")
    else:
        w("No interval: one seed per rate.\n")
    if lr_opt["edges"]:
        w(f"At B = {', '.join(map(str, lr_opt['edges']))} the best rate is at the edge of the rates tried, so the "
          "optimum may lie beyond it (`sweep.py --max-grid-extensions`).\n")
