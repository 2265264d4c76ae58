"""Checks the planner against real runs (issue 16): takes --points points
of a plan's frontier, or of its best B per P with --rows best (plan.py's
plan.json; spread over its rank counts),
trains each for real with the config of the sweep's best-rate run at that
B (its config.ini: the same rate, evaluation cadence and target) on P ranks
through --launcher ("{P}" in it becomes the rank or host count), and
compares the measured time to the target without evaluation
(`target_train_time_s`, what the plan predicts) with the prediction. Also
shows the two factors: steps to the target (the plan's: the sweep's seed
mean at a swept B, else its fit) and seconds per step (the performance
model, plus the evaluations' aftermath spread over the steps). Each run uses the BLAS threads per rank of the
bench its step time came from (the plan's `threads`): a run with other
threads is not the run the plan predicted. The measured mean is shown with
its standard error over the seeds, the noise the comparison itself carries.
Writes OUT/validation.md and .json; exits 1 when a point is further off than
--tolerance.

    python3 scripts/plan.py --sweep runs/sweep-study --bench b1.json b2.json b4.json --ranks 1,2,4 --out runs/plan
    python3 scripts/plan_validate.py --plan runs/plan/plan.json --sweep runs/sweep-study \\
        --launcher "bash scripts/netns-cluster.sh mpirun --hosts {P} --" --seeds 2 --out runs/plan-validation
"""
import argparse
import json
import math
import os
import shlex
import sys

from .run_once import mean_sd, train_once


def pick_points(frontier, count):
    """`count` frontier points with distinct P, spread from the fewest ranks to the most."""
    by_p = {}
    for r in sorted(frontier, key=lambda r: (r["P"], r["time_s"])):
        by_p.setdefault(r["P"], r)
    rows = [by_p[p] for p in sorted(by_p)]
    if len(rows) <= count:
        return rows
    idx = sorted({round(i * (len(rows) - 1) / (count - 1)) for i in range(count)}) if count > 1 else [0]
    return [rows[i] for i in idx]


def chosen_points(plan, args, parser):
    """--at's rows of the plan, else --points of --rows."""
    if not args.at:
        return pick_points(plan[args.rows], args.points)
    rows = {(r["P"], r["B"]): r for r in plan.get("rows", [])}
    out = []
    for item in args.at.split(","):
        try:
            key = tuple(int(x) for x in item.split(":"))
        except ValueError:
            key = ()
        if len(key) != 2:
            parser.error(f"--at takes P:B pairs, e.g. 4:2048,2:1024 (got '{item}')")
        if key not in rows:
            parser.error(f"--at {item}: the plan has no row at P = {key[0]}, B = {key[1]} (plan.py's --ranks and "
                         "--batch-min/--batch-max decide its rows)")
        out.append(rows[key])
    return out


def sweep_config(sweeps, batch):
    """The config.ini of the sweep's best-rate run at `batch`."""
    from .runs import best_per_batch, load_sweeps
    best = best_per_batch(load_sweeps(sweeps))
    if batch not in best:
        raise SystemExit(f"plan_validate: error: the sweep has no run that reached the target at B = {batch}")
    path = os.path.join(best[batch]["dir"], "config.ini")
    if not os.path.isfile(path):
        raise SystemExit(f"plan_validate: error: {path} does not exist: the sweep's best run at B = {batch} "
                         "records no config")
    return path, best[batch]


def run_point(args, point, config, seed):
    # The threads are part of the run: a finished run with others is not skipped into another plan's check.
    threads = f"-t{point['threads']}" if point.get("threads") else ""
    name = f"P{point['P']}-B{point['B']:05d}{threads}-s{seed}"
    path = os.path.join(args.out, name)
    cmd = shlex.split(args.launcher.replace("{P}", str(point["P"]))) + [
        args.mpitrain, "train", "--config", config, "--seed", str(seed), "--run-dir", path, "--metrics",
        os.path.join(path, "metrics.jsonl"), "--checkpoint-dir", "", "--checkpoint-every-epochs", "0",
        "--progress", "lines"]
    if point.get("threads"):
        cmd += ["--threads", str(point["threads"])]
    summary, rc = train_once(path, cmd, name)
    if rc is not None:
        print(f"{name}: exit {rc}, target at step {summary.get('target_step')}, "
              f"{summary.get('target_train_time_s')} s of training", flush=True)
    return summary


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--plan", required=True, help="plan.json of scripts/plan.py")
    p.add_argument("--sweep", nargs="+", required=True, help="the sweep directories the plan was made from")
    p.add_argument("--points", type=int, default=3)
    p.add_argument("--rows", choices=["frontier", "best"], default="frontier",
                   help="validate frontier points, or the best B at each P (a frontier of fewer points)")
    p.add_argument("--at", metavar="P:B,...", help="validate these (P, B) rows of the plan instead (any row of "
                   "plan.json, e.g. a B the plan did not pick)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--launcher", default="mpirun -np {P}", help="launcher prefix; {P} becomes the point's P")
    p.add_argument("--mpitrain", default="build/mpitrain")
    p.add_argument("--tolerance", type=float, default=0.2)
    p.add_argument("--out", default="runs/plan-validation")
    args = p.parse_args(argv)
    if args.points < 1 or args.seeds < 1:
        p.error("--points and --seeds must be at least 1")
    with open(args.plan) as f:
        plan = json.load(f)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for point in chosen_points(plan, args, p):
        config, best = sweep_config(args.sweep, point["B"])
        sums = [run_point(args, point, config, s) for s in range(1, args.seeds + 1)]
        hit = [s for s in sums if s.get("target_reached") and s.get("target_train_time_s")]
        t, t_sd = mean_sd([s["target_train_time_s"] for s in hit])
        steps, _ = mean_sd([s["target_step"] for s in hit])
        se = t_sd / math.sqrt(len(hit)) if t_sd is not None else None
        rows.append(dict(P=point["P"], B=point["B"], lr=best["lr"], reached=len(hit), runs=len(sums),
                         threads=point.get("threads"), measured_se=se,
                         predicted_s=point["time_s"], predicted_lo=point["time_lo"], predicted_hi=point["time_hi"],
                         measured_s=t, measured_sd=t_sd, predicted_steps=point["steps"], measured_steps=steps,
                         predicted_step_s=point["time_s"] / point["steps"],
                         measured_step_s=(t / steps) if t and steps else None,
                         error=(t / point["time_s"] - 1) if t else None))
    which = "the rows of --at" if args.at else ("frontier points" if args.rows == "frontier" else "the best B per P")
    lines = [f"Plan `{args.plan}` ({which}) against real runs (launcher `{args.launcher}`, seeds 1..{args.seeds}); time to the "
             f"target without evaluation (`target_train_time_s`), mean ± sd over the seeds and the mean's standard error "
             f"(se); BLAS threads per rank as the plan's bench; tolerance ±{args.tolerance:.0%}.", "",
             "| P | B | lr | threads | reached | predicted s (interval) | measured s | se | error | "
             "steps: plan / measured | s per step: plan / measured |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    ok = True
    for r in rows:
        good = r["error"] is not None and abs(r["error"]) <= args.tolerance
        ok = ok and good
        meas = "-" if r["measured_s"] is None else f"{r['measured_s']:.2f}" + (
            f" ± {r['measured_sd']:.2f}" if r["measured_sd"] is not None else "")
        err = "-" if r["error"] is None else f"{r['error']:+.0%}" + ("" if good else " **off**")
        mstep = "-" if r["measured_step_s"] is None else f"{r['measured_step_s'] * 1000:.1f} ms"
        msteps = "-" if r["measured_steps"] is None else f"{r['measured_steps']:.0f}"
        interval = "" if r["predicted_lo"] is None else f" ({r['predicted_lo']:.2f}-{r['predicted_hi']:.2f})"
        se = "-" if r["measured_se"] is None else f"{r['measured_se'] / r['measured_s']:.0%}"
        lines.append(f"| {r['P']} | {r['B']} | {r['lr']:g} | {r['threads'] or 'default'} | {r['reached']} of {r['runs']} | "
                     f"{r['predicted_s']:.2f}{interval} | {meas} | {se} | {err} | "
                     f"{r['predicted_steps']:.0f} / {msteps} | {r['predicted_step_s'] * 1000:.1f} ms / {mstep} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    with open(os.path.join(args.out, "validation.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "validation.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
