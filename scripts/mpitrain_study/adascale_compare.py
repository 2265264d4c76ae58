"""AdaScale against the linear rule + warmup, per global batch, over seeds
(issue 16; README "AdaScale"). Runs the main job's config
(jobs/fashion-mnist-mlp.ini) at every B of --batches and every seed, once
with --lr-scaling adascale and once as configured (linear rule, 2 warmup
epochs), each in its own run directory under --out (a finished run is
skipped on a re-run), then prints and writes (OUT/summary.md, summary.json)
a table: steps, epochs, test accuracy and wall time per B as mean +- sd over
the seeds, and each B's accuracy against the reference batch's.

    python3 scripts/adascale_compare.py --ranks 2 --seeds 5 --batches 256,1024,4096,8192 --out runs/adascale
"""
import argparse
import json
import os
import shlex
import sys

from .run_once import mean_sd, train_once


def run_one(args, mode, b, seed):
    """Trains one run unless its directory holds a finished one; returns its summary."""
    name = f"{mode}-B{b:04d}-s{seed}"
    path = os.path.join(args.out, name)
    cmd = shlex.split(args.mpirun) + ["-np", str(args.ranks), args.mpitrain, "train", "--config", args.config,
           "--global-batch", str(b), "--seed", str(seed), "--run-dir", path, "--metrics", "",
           "--checkpoint-dir", "", "--checkpoint-every-epochs", "0", "--progress", "none"]
    if mode == "adascale":
        cmd += ["--lr-scaling", "adascale"]
    summary, rc = train_once(path, cmd, name)
    if rc is not None:
        print(f"{name}: exit {rc}, {summary.get('steps')} steps, {summary.get('epochs')} epochs, "
              f"test_acc {summary.get('test_acc')}, {summary.get('time_s')} s", flush=True)
    return summary


def table(rows, ref_acc):
    out = ["| rule | B | seeds | diverged | steps | epochs | test acc | vs B=ref | wall s |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def ms(key, fmt):
            m, sd = r[key]
            if m is None:
                return "-"
            return fmt.format(m) + (" ± " + fmt.format(sd) if sd is not None else "")
        delta = (r["acc"][0] - ref_acc) * 100 if r["acc"][0] is not None and ref_acc is not None else None
        out.append(f"| {r['mode']} | {r['B']} | {r['n']} | {r['diverged']} | {ms('steps', '{:.0f}')} | {ms('epochs', '{:.1f}')} | "
                   f"{ms('acc', '{:.4f}')} | {'-' if delta is None else f'{delta:+.2f} pts'} | {ms('time', '{:.0f}')} |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", default="256,1024,4096,8192")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--modes", default="linear,adascale", help="linear (the config's rule) and/or adascale")
    p.add_argument("--config", default="jobs/fashion-mnist-mlp.ini")
    p.add_argument("--mpitrain", default="build/mpitrain")
    p.add_argument("--mpirun", default="mpirun", help="the MPI launcher, with its options (one string)")
    p.add_argument("--out", default="runs/adascale")
    args = p.parse_args(argv)
    batches = [int(x) for x in args.batches.split(",")]
    modes = args.modes.split(",")
    if any(m not in ("linear", "adascale") for m in modes):
        raise SystemExit("adascale_compare: error: --modes takes linear and/or adascale")
    rows = []
    for mode in modes:
        for b in batches:
            sums = [run_one(args, mode, b, s) for s in range(1, args.seeds + 1)]
            ok = [s for s in sums if s.get("stop_reason") in ("epochs", "iterations")]
            rows.append(dict(mode=mode, B=b, n=len(ok), steps=mean_sd([s.get("steps") for s in ok]),
                             epochs=mean_sd([s.get("epochs") for s in ok]), acc=mean_sd([s.get("test_acc") for s in ok]),
                             time=mean_sd([s.get("time_s") for s in ok]),
                             diverged=len(sums) - len(ok)))
    ref = next((r for r in rows if r["B"] == min(batches) and r["mode"] == "linear"), rows[0])
    text = table(rows, ref["acc"][0])
    print(text)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(f"Reference: {ref['mode']} at B={ref['B']}. Means ± sd over seeds 1..{args.seeds}.\n\n{text}\n")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
