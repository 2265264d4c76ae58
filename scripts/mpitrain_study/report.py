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
                   time_to_target_by_ranks, use_interpolated)
from .system_python import require_numpy_matplotlib


def build_parser():
    """The command line's options."""
    ap = argparse.ArgumentParser(description="Plots and a Markdown summary of a global-batch sweep "
                                             "(scripts/sweep.py's run directories).")
    ap.add_argument("sweeps", nargs="+", help="sweep directories (each holds one directory per run)")
    ap.add_argument("--out", default="", help="output directory (default: SWEEP/report)")
    ap.add_argument("--regime-factor", type=float, default=4.0,
                    help="perfect scaling for B <= B_crit/F, maximal data parallelism for B >= F*B_crit (default 4)")
    ap.add_argument("--interpolate", action="store_true",
                    help="place the target's crossing inside the epoch, linearly between the epoch evaluations "
                         "(default: the end of the epoch, as recorded)")
    ap.add_argument("--require-deterministic", action="store_true",
                    help="refuse unless every run was trained with mpitrain --deterministic "
                         "(its metrics header says \"deterministic\": true)")
    return ap


def main(argv=None):
    """Reads the sweep(s), writes the report; returns the exit code."""
    # First of all: a python3 without numpy re-runs the tool under Debian's.
    require_numpy_matplotlib("report", "MPITRAIN_REPORT_REEXEC")
    from .fit import fit_steps_to_target  # numpy: imported here, after the check, not on importing this module
    from .report_plots import plot_report
    from .report_summary import write_summary

    args = build_parser().parse_args(argv)
    if args.regime_factor <= 1:
        raise SystemExit("report: error: --regime-factor must be > 1")

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
    rep = representative(runs)
    ranks_table = rank_scaling(runs)
    ttt_table = time_to_target_by_ranks(runs, best)

    pngs = plot_report(plt, out, runs, best, fit, args.regime_factor, rep, ranks_table, ttt_table)

    write_summary(os.path.join(out, "summary.md"), args.sweeps, runs, best, fit, fit_note, args.regime_factor,
                  rep, ranks_table, ttt_table, pngs, args.interpolate)
    keep = ("name", "B", "P", "lr", "multiplier", "status", "S", "E", "T", "steps_run", "epochs_run", "test_acc",
            "noise_final", "noise_at_target", "samples_per_s", "step_ms", "split_ms", "target", "deterministic",
            "deterministic_unit")
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(dict(fit=fit, fit_note=fit_note, interpolated=args.interpolate, regime_factor=args.regime_factor,
                       all_deterministic=not not_deterministic(runs),
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
