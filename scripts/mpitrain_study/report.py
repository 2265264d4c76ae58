"""The report of a global-batch sweep (DESIGN.md, "Scaling study").

  python3 scripts/report.py runs/sweep-NAME [more sweep dirs] [--out DIR]

Reads the run directories of the sweep(s) and writes summary.md, report.json
and PNG plots into --out (default: the first sweep dir's report/); the files
and what they show are in docs/scaling-study.md. Needs numpy and matplotlib
(Debian: python3-numpy python3-matplotlib).
"""

import argparse
import json
import os
import sys

from .formatting import listed
from .runs import (STATUS_NOT_RUN, best_per_batch, load_sweeps, not_deterministic, rank_scaling, representative,
                   seed_groups, seed_steps, time_to_target_by_ranks, use_interpolated)
from .system_python import require_numpy_matplotlib


def build_parser():
    """The command line's options."""
    ap = argparse.ArgumentParser(description="Plots and a Markdown summary of a global-batch sweep "
                                             "(scripts/sweep.py's run directories).")
    ap.add_argument("sweeps", nargs="+", help="sweep directories (each holds one directory per run)")
    ap.add_argument("--out", default="", help="output directory (default: SWEEP/report)")
    ap.add_argument("--interpolate", action="store_true",
                    help="place the target's crossing linearly between the evaluation at which it first held and "
                         "the one before (eval lines of --eval-every-steps and epoch ends; default: the step of "
                         "that evaluation, as recorded)")
    ap.add_argument("--bootstrap", type=int, default=2000, metavar="N",
                    help="bootstrap replicates (resampling seeds within each B) for the intervals (default 2000)")
    ap.add_argument("--level", type=float, default=0.95,
                    help="confidence level of the intervals (default 0.95)")
    ap.add_argument("--require-deterministic", action="store_true",
                    help="refuse unless every run was trained with mpitrain --deterministic "
                         "(its metrics header says \"deterministic\": true)")
    ap.add_argument("--loss-window-samples", type=float, default=25600, metavar="W",
                    help="moving average of the step lines' training loss over W samples before reading B_simple "
                         "at matched loss (default 25600; 0: unsmoothed)")
    ap.add_argument("--matched-loss", type=float, default=None, metavar="L",
                    help="the training loss at which B_simple is read at every B (default: the largest over the "
                         "best rates' runs of the smallest smoothed loss each reached)")
    return ap


def main(argv=None):
    """Reads the sweep(s), writes the report; returns the exit code."""
    # First of all: a python3 without numpy re-runs the tool under Debian's.
    require_numpy_matplotlib("report", "MPITRAIN_REPORT_REEXEC")
    from .bootstrap import bootstrap_fit, rounded  # numpy: imported here, after the check, not on importing this module
    from .fit import fit_steps_to_target
    from .slopes import local_slopes
    from .report_plots import plot_report
    from .report_summary import write_summary
    from .estimates import for_json as lr_opt_json, lr_opt_estimate, three_estimates
    from .noise_curves import for_json as matched_json, matched_loss

    args = build_parser().parse_args(argv)
    if args.bootstrap < 100:
        raise SystemExit("report: error: --bootstrap must be >= 100")
    if not 0.5 <= args.level < 1:
        raise SystemExit("report: error: --level must be in [0.5, 1)")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = args.out or os.path.join(args.sweeps[0], "report")
    runs = load_sweeps(args.sweeps)
    if not runs:
        raise SystemExit(f"report: error: no run directories in {', '.join(args.sweeps)}")
    if args.require_deterministic:
        wrong = not_deterministic(runs)
        if wrong:
            read = sum(1 for r in runs if r["status"] != STATUS_NOT_RUN)
            raise SystemExit(f"report: error: --require-deterministic: {len(wrong)} of {read} runs were not trained "
                             f"with --deterministic (metrics header \"deterministic\" missing or false): "
                             f"{listed(wrong)}")
    if args.interpolate:
        use_interpolated(runs)
    os.makedirs(out, exist_ok=True)
    best = best_per_batch(runs)
    fit = fit_steps_to_target(list(best), [r["S"] for r in best.values()])
    if fit:
        fit["relative"] = fit_steps_to_target(list(best), [r["S"] for r in best.values()], relative=True)
    fit_note = "" if fit else (f"only {len(best)} global batch size(s) reached the target; "
                               "the fit needs at least 3")
    per_seed = seed_steps(best)
    boot = bootstrap_fit(per_seed, n_boot=args.bootstrap, level=args.level)
    slopes = local_slopes(per_seed, n_boot=args.bootstrap, level=args.level)
    rep = representative(runs)
    matched = matched_loss(runs, best, window=args.loss_window_samples, level=args.matched_loss,
                           n_boot=args.bootstrap, level_ci=args.level)
    lr_opt = lr_opt_estimate(runs, best, n_boot=args.bootstrap, level=args.level)
    estimates = three_estimates(fit, boot, matched, lr_opt)
    ranks_table = rank_scaling(runs)
    ttt_table = time_to_target_by_ranks(runs, best)

    pngs = plot_report(plt, out, runs, best, fit, slopes, rep, ranks_table, ttt_table, matched, estimates)

    write_summary(os.path.join(out, "summary.md"), args.sweeps, runs, best, fit, fit_note, boot, slopes,
                  rep, ranks_table, ttt_table, pngs, args.interpolate,
                  estimates=(estimates, matched, lr_opt, args.level))
    keep = ("name", "B", "P", "lr", "multiplier", "seed", "status", "S", "E", "T", "steps_run", "epochs_run",
            "test_acc", "noise_final", "noise_at_target", "samples_per_s", "step_ms", "split_ms", "target",
            "deterministic", "deterministic_unit", "counted_at")
    agg_keep = ("B", "lr", "multiplier", "n_seeds", "n_reached", "S", "S_sd", "E", "E_sd", "T", "T_sd",
                "seed_S", "missed")
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(dict(fit=fit, fit_note=fit_note, bootstrap=boot, slopes=slopes, interpolated=args.interpolate,
                       estimates=estimates, matched_loss=matched_json(matched), lr_opt=lr_opt_json(lr_opt),
                       counted_at=sorted({r["counted_at"] for r in runs if r["status"] != STATUS_NOT_RUN}),
                       all_deterministic=not not_deterministic(runs),
                       best={str(b): dict({k: a.get(k) for k in agg_keep}, run=a["name"],
                                          seeds=[str(x) for x in a["seeds"]]) for b, a in best.items()},
                       rates=[dict({k: a.get(k) for k in agg_keep}, seeds=[str(x) for x in a["seeds"]])
                              for a in seed_groups(runs).values()],
                       runs=[{k: r.get(k) for k in keep} for r in runs]), f, indent=1, default=str)
        f.write("\n")

    print(f"report: {len(runs)} runs, {len(best)} B values reached the target -> {out}/summary.md")
    if fit is None:
        print(f"report: no fit: {fit_note}")
    else:
        print(f"report: fit S(B) = {fit['s_min']:.4g} + {fit['e_min']:.4g}/B: S_min {fit['s_min']:.4g}, "
              f"E_min {fit['e_min']:.4g}, B_crit {fit['b_crit']:.4g} (R^2 {fit['r2']:.3f})"
              + (f"; not meaningful: {fit['problem']}" if fit["problem"] else ""))
        if boot and boot["resampled"] and not fit["problem"]:
            pct = f"{100 * args.level:g}%"
            for name, label in (("unweighted", "unweighted"), ("relative", "weighted by 1/S")):
                b = boot[name]
                print(f"report: {label}: B_crit {rounded(b['b_crit'], *b['b_crit_ci'])}, "
                      f"S_min {rounded(b['s_min'], *b['s_min_ci'])}, E_min {rounded(b['e_min'], *b['e_min_ci'])} "
                      f"({pct} seed-bootstrap intervals)")
    for e in estimates:
        print(f"report: {e['label']}: " + (f"{e['value']:.4g}" + (f" ({e['ci'][0]:.4g}-{e['ci'][1]:.4g})" if e["ci"] else "")
                                           if e["available"] else f"unavailable: {e['reason']}"))
    if not ranks_table:
        print("report: one rank count: the vs-ranks plots are skipped")
    for png, _ in pngs:
        print(f"report: wrote {os.path.join(out, png)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
