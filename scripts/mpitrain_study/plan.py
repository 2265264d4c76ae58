"""The (B, P) planner (issue 16): for P = 1 ... 1024 ranks, the global batch
with the least predicted time to the target, that time with an interval, the
node-hours it costs, and the frontier of wall time against node-hours.

  python3 scripts/plan.py (--sweep DIR... | --noise-run RUN_DIR) --bench FILE... \\
      [--ranks-per-node 2] [--batch-min 32] [--batch-max 65536] [--ranks 1,2,...] \\
      [--weighting unweighted|relative] [--level 0.95] [--out DIR] [perf_model options]

Steps to the target at B:
  --sweep: at a swept B the best rate's seed mean (report.py's), its
      interval from the seed bootstrap (bootstrap.py); at other B the fit
      S(B) = S_min + E_min/B (McCandlish et al. 2018) of those means, each
      bootstrap replicate's fit giving the interval;
  --noise-run: one run that reached the target at B0 in S0 steps, with the
      online noise scale B_simple there: S(B) = S_min (1 + B_simple/B), S_min
      = S0 / (1 + B_simple/B0) (no interval: one run).
Step time at (P, B): the performance model (perf_predictor.PerfModel, from
`mpitrain bench` files; every perf_model.py option is accepted). Time to the
target = S(B) x step time + the evaluations' aftermath (--eval-runs: the
training time each evaluation before the target costs besides its own,
eval_cost.py; the evaluations themselves excluded); node-hours = time x
ceil(P / ranks-per-node) / 3600. A (P, B) is on the frontier when no other is
both faster and cheaper. Writes plan.md, plan.json and plan.png to --out.
"""
import argparse
import json
import math
import os
import sys

from .formatting import seconds_text
from .system_python import require_numpy_matplotlib


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--sweep", nargs="+", metavar="DIR", help="sweep directories (scripts/sweep.py)")
    src.add_argument("--noise-run", metavar="RUN_DIR", help="one run that reached its target, with its noise scale")
    ap.add_argument("--ranks-per-node", type=int, default=1, help="ranks on one node (node-hours; default 1)")
    ap.add_argument("--batch-min", type=int, default=32)
    ap.add_argument("--batch-max", type=int, default=65536)
    ap.add_argument("--weighting", choices=["unweighted", "relative"], default="unweighted",
                    help="the fit of S(B): unweighted, or each residual by 1/S (report.py shows both)")
    ap.add_argument("--level", type=float, default=0.95, help="confidence level of the intervals")
    ap.add_argument("--out", default="plan", help="output directory (default plan)")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--eval-runs", nargs="+", metavar="RUN_DIR", default=[],
                    help="pairs of short runs at the same P and B, one with the job's evaluation and one with "
                         "--eval-split none: the training time an evaluation costs besides its own (eval_cost.py)")
    own, rest = ap.parse_known_args(argv)
    if own.ranks_per_node < 1:
        ap.error("--ranks-per-node must be >= 1")
    if not 1 <= own.batch_min <= own.batch_max:
        ap.error("--batch-min must be >= 1 and <= --batch-max")
    if not 0 < own.level < 1:
        ap.error("--level must be in (0, 1)")
    return own, rest


def powers_of_two(lo, hi):
    out, b = [], 1
    while b <= hi:
        if b >= lo:
            out.append(b)
        b *= 2
    return out


def steps_model_from_sweep(dirs, weighting, level):
    """(S(B) point function, S(B) replicates function, description, swept span).

    At a swept B with 2 or more seeds, the best rate's seed mean (its
    interval from the bootstrap of those seeds): the measurement itself,
    P-invariant like the run it predicts. Between and beyond them, and at a
    B with one seed, the fit S(B) = S_min + E_min/B (its interval from the
    fits of the bootstrap replicates). Where the two meet, S(B) can step: the
    fit does not pass through the means. The fit's shape is
    a model: on the study sweep it misses its own seed means by up to 20 %
    (S(1024) 267 against 223 measured), more than their bootstrap spread."""
    import numpy as np
    from .bootstrap import bootstrap_fit, fit_many, resample_means
    from .runs import best_per_batch, load_sweeps, seed_steps
    best = best_per_batch(load_sweeps(dirs))
    steps = seed_steps(best)
    fit = bootstrap_fit(steps, level=level)
    if fit is None:
        raise SystemExit("plan: error: the sweep has fewer than 3 batch sizes that reached the target: "
                         "no fit of S(B); sweep more batch sizes")
    w = fit[weighting]
    if not (w["s_min"] > 0 and w["e_min"] > 0):
        raise SystemExit(f"plan: error: the {weighting} fit has S_min {w['s_min']:.4g}, E_min {w['e_min']:.4g}: "
                         "not the S_min + E_min/B shape; sweep a wider range of B")
    batches, means = resample_means(steps)
    column = {b: j for j, b in enumerate(batches)}
    s_rep, e_rep = fit_many(batches, means, weighting == "relative")
    keep = (s_rep > 0) & (e_rep > 0)

    measured = {b for b, v in steps.items() if len(v) >= 2}  # one seed is no mean: the fit there

    def point(B):
        if B in measured:
            return float(np.mean(steps[B]))
        return w["s_min"] + w["e_min"] / B

    def replicates(B):
        if B in measured:
            return means[:, column[B]]
        return np.maximum(s_rep[keep] + e_rep[keep] / B, 1.0)
    how = (f"at each swept B with 2 or more seeds the best rate's seed mean (B = {min(best)} ... {max(best)}, seeds per B "
           f"{', '.join(str(len(v)) for v in steps.values())}), elsewhere the {weighting} fit S(B) = "
           f"{w['s_min']:.4g} + {w['e_min']:.4g}/B of those means (B_crit {w['b_crit']:.4g}); intervals from "
           f"{len(means)} bootstrap resamples of the seeds (of the fit: {int(keep.sum())} replicates)")
    return point, replicates, how, (min(best), max(best)), cadence_of(best)


def cadence_of(runs_at):
    """(B -> (evaluations every k steps, steps per epoch)) from {B: run}: a
    B without a run takes the cadence of the nearest B that has one."""
    from .perf_equations import nearest

    def cadence(B):
        r = runs_at[nearest(runs_at, lambda b: b, B)]
        rows = r.get("train_rows")
        return r.get("eval_every_steps") or 0, (math.ceil(rows / B) if rows else None)
    return cadence


def steps_model_from_noise(run_dir):
    from .metrics import read_summary
    from .runs import load_run, noise_series
    s = read_summary(run_dir)
    if not s or not s.get("target_reached"):
        raise SystemExit(f"plan: error: {run_dir} has no run that reached its target (summary.json)")
    b0, s0 = float(s["global_batch"]), float(s["target_step"])
    # B_simple where the target was reached: the last reading at or before it.
    run = load_run(run_dir)
    at = [v for samples, v in noise_series(run) if samples <= s["target_samples"]]
    bn = at[-1] if at else None
    if bn is None or not bn > 0:
        raise SystemExit(f"plan: error: {run_dir} has no positive noise scale at its target")
    s_min = s0 / (1 + bn / b0)
    how = (f"one run ({os.path.basename(os.path.normpath(run_dir))}): {s0:.0f} steps at B={b0:.0f}, B_simple {bn:.4g} "
           f"at the target: S(B) = {s_min:.4g} (1 + {bn:.4g}/B); no interval")
    return (lambda B: s_min * (1 + bn / B)), None, how, (b0, b0), cadence_of({int(b0): run})


def plan_rows(model, point, replicates, ranks, batches, per_node, level, eval_cost=None, cadence=None):
    """One row per (P, B) with B >= P: steps, step time, the evaluations'
    aftermath, time (interval), node-hours."""
    import numpy as np
    from .bootstrap import percentile_interval
    from .eval_cost import evaluations_before
    from .perf_equations import nearest
    rows = []
    for P in ranks:
        nodes = math.ceil(P / per_node)
        per_eval = eval_cost[nearest(eval_cost, lambda p: p, P)][0] if eval_cost else 0.0
        for B in batches:
            if B < P:
                continue
            r = model.predict(P, B)
            S = point(B)
            evals = lambda steps: evaluations_before(steps, *cadence(B)) if per_eval else 0  # noqa: E731
            t = S * r["step_s"] + evals(S) * per_eval
            lo = hi = None
            if replicates is not None:
                lo, hi = percentile_interval(np.array([s * r["step_s"] + evals(s) * per_eval
                                                       for s in replicates(B)]), level)
            rows.append(dict(P=P, B=B, nodes=nodes, steps=S, step_s=r["step_s"], eval_s=evals(S) * per_eval,
                             time_s=t, time_lo=lo, time_hi=hi, node_hours=t * nodes / 3600.0, threads=r["threads"]))
    return rows


def best_per_p(rows):
    best = {}
    for r in rows:
        if r["P"] not in best or r["time_s"] < best[r["P"]]["time_s"]:
            best[r["P"]] = r
    return [best[p] for p in sorted(best)]


def frontier(rows):
    """The (P, B) that no other beats on both wall time and node-hours, cheapest first."""
    out, fastest = [], math.inf
    for r in sorted(rows, key=lambda r: (r["node_hours"], r["time_s"])):
        if r["time_s"] < fastest:
            out.append(r)
            fastest = r["time_s"]
    return out


def interval_text(r):
    if r["time_lo"] is None:
        return seconds_text(r["time_s"])
    return f"{seconds_text(r['time_s'])} ({seconds_text(r['time_lo'])}-{seconds_text(r['time_hi'])})"


def markdown(best, front, how, span, per_node, notes):
    w = ["# Plan: the global batch and rank count for the target", "",
         f"Steps to the target: {how}.", "",
         f"Step time: the performance model; node-hours at {per_node} rank(s) per node.", ""]
    w += ["## The best B at each P", "",
          "| P | nodes | best B | steps | step time | evaluations' aftermath | time to target | node-hours |",
          "|---|---|---|---|---|---|---|---|"]
    for r in best:
        w.append(f"| {r['P']} | {r['nodes']} | {r['B']} | {r['steps']:.0f} | {seconds_text(r['step_s'])} | "
                 f"{seconds_text(r['eval_s'])} | {interval_text(r)} | {r['node_hours']:.3g} |")
    w += ["", "## Frontier: wall time against node-hours (every (P, B), none both faster and cheaper)", "",
          "| P | B | time to target | node-hours |", "|---|---|---|---|"]
    for r in front:
        w.append(f"| {r['P']} | {r['B']} | {interval_text(r)} | {r['node_hours']:.3g} |")
    out_of = [r for r in best if not span[0] <= r["B"] <= span[1]]
    if out_of:
        notes.append(f"Best B outside the measured range {span[0]:.0f}-{span[1]:.0f} (P = "
                     f"{', '.join(str(r['P']) for r in out_of[:6])}): the steps there are extrapolated by the fit.")
    if notes:
        w += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(w) + "\n"


def plot(path, rows, best, front):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    a.scatter([r["node_hours"] for r in rows], [r["time_s"] for r in rows], s=8, c="0.75", label="every (P, B)")
    for r in best:
        err = None
        if r["time_lo"] is not None:
            err = [[r["time_s"] - r["time_lo"]], [r["time_hi"] - r["time_s"]]]
        a.errorbar([r["node_hours"]], [r["time_s"]], yerr=err, fmt="o", color="C0", ms=4)
        a.annotate(f"P={r['P']}", (r["node_hours"], r["time_s"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    a.plot([r["node_hours"] for r in front], [r["time_s"] for r in front], "-", color="C3", label="frontier")
    a.set(xscale="log", yscale="log", xlabel="node-hours", ylabel="time to target (s)",
          title="best B per P (blue), frontier (red)")
    a.legend(fontsize=8)
    b.plot([r["P"] for r in best], [r["B"] for r in best], "o-")
    b.set(xscale="log", yscale="log", xlabel="ranks P", ylabel="best global batch B", title="best B against P")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    require_numpy_matplotlib("plan", "MPITRAIN_PLAN_REEXEC")
    from . import perf_model
    from .perf_inputs import check_options, load_bench, load_measured, parse_int_list
    from .perf_predictor import PerfModel
    own, rest = parse_args(sys.argv[1:] if argv is None else argv)
    batches = powers_of_two(own.batch_min, own.batch_max)
    pargs = check_options(perf_model.parse_args(rest + ["--global-batch", str(batches[0]), "--out", own.out]))
    benches = [load_bench(p) for p in pargs.bench]
    calibration = [load_measured(p, "--calibration") for p in pargs.calibration]
    model = PerfModel(benches, [], pargs, calibration)
    ranks = parse_int_list(pargs.ranks, "--ranks") if pargs.ranks else [2 ** i for i in range(11)]
    if own.sweep:
        point, replicates, how, span, cadence = steps_model_from_sweep(own.sweep, own.weighting, own.level)
    else:
        point, replicates, how, span, cadence = steps_model_from_noise(own.noise_run)
    costs = None
    if own.eval_runs:
        from .eval_cost import eval_costs
        costs = eval_costs(own.eval_runs)
        model.notes.append("Evaluations' aftermath (eval_cost.py), added per evaluation the run does before the "
                           "target (every --eval-every-steps of the sweep's runs and at each epoch end): "
                           + "; ".join(n for _, n in costs.values()))
    else:
        model.notes.append("Evaluations' aftermath: not counted (no --eval-runs); a run that evaluates often "
                           "takes longer than predicted.")
    rows = plan_rows(model, point, replicates, ranks, batches, own.ranks_per_node, own.level, costs, cadence)
    best = best_per_p(rows)
    front = frontier(rows)
    text = markdown(best, front, how, span, own.ranks_per_node, list(model.notes) + list(model.warnings))
    print(text, end="")
    os.makedirs(own.out, exist_ok=True)
    with open(os.path.join(own.out, "plan.md"), "w") as f:
        f.write(text + ("" if own.no_plot else "\n![plan](plan.png)\n"))
    with open(os.path.join(own.out, "plan.json"), "w") as f:
        json.dump(dict(steps=how, ranks_per_node=own.ranks_per_node, level=own.level, best=best, frontier=front,
                       rows=rows), f, indent=1)
    if not own.no_plot:
        plot(os.path.join(own.out, "plan.png"), rows, best, front)
    return 0


if __name__ == "__main__":
    sys.exit(main())
