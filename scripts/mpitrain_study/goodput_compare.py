"""--global-batch auto (goodput) against fixed global batches, by wall time
to a target (issue 16; README "Goodput: --global-batch auto"). Every run
uses one config (default jobs/batch-sweep.ini, the study sweep's), stops at
--target, and is evaluated after the same data (--eval-every-samples), so
every run pays the same evaluation cost per sample. Fixed runs take the
rates given as B:LR (the effective rate at B, e.g. the study sweep's best
rate per B: docs/sample-report), through the config's rule and warmup;
auto runs use AdaScale from --auto-lr at the config's --ref-batch. Each run
has its own directory under --out (a finished one is skipped on a re-run);
the table (OUT/summary.md, summary.json) gives per mode the mean +- sd over
seeds of the seconds, steps and samples to the target, and for auto the
batches it moved through.

    python3 scripts/goodput_compare.py --launcher "mpirun -np 2" --seeds 3 --out runs/goodput
    bash scripts/netns-cluster.sh up 4 --rate 1gbit
    python3 scripts/goodput_compare.py --launcher "bash scripts/netns-cluster.sh mpirun --hosts 4 --" --out runs/goodput-4h
"""
import argparse
import json
import os
import shlex
import sys

from .run_once import mean_sd, train_once


def run_one(args, name, extra):
    """Trains one run unless its directory holds a finished one; returns its summary."""
    path = os.path.join(args.out, name)
    cmd = shlex.split(args.launcher) + [args.mpitrain, "train", "--config", args.config, "--target", args.target,
                                        "--stop-at-target", "--eval-every-samples", str(args.eval_every_samples),
                                        "--epochs", str(args.epochs), "--run-dir", path, "--metrics",
                                        os.path.join(path, "metrics.jsonl"), "--checkpoint-dir", "",
                                        "--checkpoint-every-epochs", "0", "--progress", "lines"] + extra
    summary, rc = train_once(path, cmd, name)
    if rc is not None:
        print(f"{name}: exit {rc}, target {summary.get('target_reached')} at {summary.get('target_time_s')} s, "
              f"{summary.get('target_step')} steps, batches {summary.get('batch_changes', '-')}", flush=True)
    return summary


def row(mode, sums):
    hit = [s for s in sums if s.get("target_reached")]
    return dict(mode=mode, runs=len(sums), reached=len(hit), time=mean_sd([s.get("target_time_s") for s in hit]),
                steps=mean_sd([s.get("target_step") for s in hit]),
                samples=mean_sd([s.get("target_samples") for s in hit]),
                batches=[s.get("batch_changes") for s in sums if s.get("batch_changes") is not None])


def table(rows):
    out = ["| mode | reached | seconds to target | steps | samples | batch changes (STEP:B) per seed |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        def ms(key, fmt):
            m, sd = r[key]
            return "-" if m is None else fmt.format(m) + (" ± " + fmt.format(sd) if sd is not None else "")
        changes = "; ".join(c or "none" for c in r["batches"]) or "-"
        out.append(f"| {r['mode']} | {r['reached']} of {r['runs']} | {ms('time', '{:.2f}')} | {ms('steps', '{:.0f}')} | "
                   f"{ms('samples', '{:.0f}')} | {changes} |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fixed", default="256:0.05,512:0.1,1024:0.2",
                   help="fixed runs as B:LR, LR the effective rate at B (default: the study sweep's best per B), "
                        "or B:adascale (AdaScale from --auto-lr, the auto runs' rule)")
    p.add_argument("--auto-range", default="128:8192", help="--batch-range of the auto runs ('' for none)")
    p.add_argument("--auto-lr", type=float, default=0.0125, help="AdaScale's rate at the config's --ref-batch")
    p.add_argument("--goodput-every", type=int, default=20)
    p.add_argument("--auto-noise-factor", type=float, default=1.0,
                   help="--goodput-noise-factor of the auto runs (a study's B_crit / B_simple)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--target", default="test_acc>=0.88")
    p.add_argument("--eval-every-samples", type=int, default=10240)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--config", default="jobs/batch-sweep.ini")
    p.add_argument("--ref-batch", type=int, default=256, help="the config's --ref-batch (for the fixed rates)")
    p.add_argument("--mpitrain", default="build/mpitrain")
    p.add_argument("--launcher", default="mpirun -np 2", help="the whole launcher prefix, e.g. 'mpirun -np 2'")
    p.add_argument("--out", default="runs/goodput")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for item in filter(None, args.fixed.split(",")):
        b, lr = item.split(":")
        if lr == "adascale":  # the auto runs' rule at a fixed batch: the choice of B alone differs
            rule = ["--lr-scaling", "adascale", "--lr", repr(args.auto_lr)]
            name, mode = f"fixed-B{int(b):05d}-adascale", f"fixed B={b}, adascale lr {args.auto_lr}"
        else:
            base = float(lr) * args.ref_batch / int(b)  # the config's linear rule gives back lr at B
            rule = ["--lr", repr(base)]
            name, mode = f"fixed-B{int(b):05d}", f"fixed B={b}, lr {lr}"
        sums = [run_one(args, f"{name}-s{s}", ["--global-batch", b, "--seed", str(s)] + rule)
                for s in range(1, args.seeds + 1)]
        rows.append(row(mode, sums))
    if args.auto_range:
        sums = [run_one(args, f"auto-s{s}", ["--global-batch", "auto", "--batch-range", args.auto_range,
                                             "--lr-scaling", "adascale", "--lr", repr(args.auto_lr),
                                             "--goodput-every", str(args.goodput_every),
                                             "--goodput-noise-factor", repr(args.auto_noise_factor), "--seed", str(s)])
                for s in range(1, args.seeds + 1)]
        factor = f", noise x{args.auto_noise_factor:g}" if args.auto_noise_factor != 1 else ""
        rows.append(row(f"auto {args.auto_range}, adascale lr {args.auto_lr}{factor}", sums))
    text = table(rows)
    print(text)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(f"Target {args.target}, evaluated every {args.eval_every_samples} samples; launcher "
                f"`{args.launcher}`; means ± sd over seeds 1..{args.seeds} that reached it.\n\n{text}\n")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
