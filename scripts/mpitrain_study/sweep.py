"""The global-batch sweep driver of the scaling study (DESIGN.md, "Scaling study").

Trains one `mpitrain train` run per global batch, rank count and learning
rate, each until the target, in its own run directory; a re-run skips
finished runs. docs/scaling-study.md describes every option. The grid is
sweep_plan.py, --slurm is sweep_slurm.py. Then: python3 scripts/report.py OUT
"""

import argparse
import fcntl
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

from .formatting import duration_text, lr_text
from .paths import SCRIPTS_DIR
from .sweep_plan import (check_determinism, describe, deterministic_unit, earlier_plan, finished, plan_runs, run_dir,
                         skip_note, write_plan)
from .sweep_slurm import run_slurm


def child_env():
    env = dict(os.environ)
    if os.geteuid() == 0:  # Open MPI refuses root without these (scripts/mpi-env.sh)
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def launch(cmd, log_path, limit_s):
    """Runs one training command with its output in log_path; its exit code,
    or None when it was stopped after limit_s seconds."""
    with open(log_path, "w") as log:
        log.write("+ " + shlex.join(cmd) + "\n")
        log.flush()
        # Own session, so a timeout stops mpirun and its ranks together.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=child_env(), start_new_session=True)
        try:
            rc = proc.wait(timeout=None if limit_s == math.inf else limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            rc = None
        except BaseException:  # Ctrl-C: stop the run's processes too
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    return rc


def record_outcome(args, path, log_path, rc, took, budget_spent):
    """Prints how a run ended; returns its count's key."""
    summary = finished(path)
    if rc is None and summary is None:
        print(f" stopped after {duration_text(took)} ({'budget spent' if budget_spent else 'run timeout'}); "
              f"a re-run starts it again", flush=True)
        return "stopped"
    if summary is not None:
        print(f" {duration_text(took)}: {describe(summary)}", flush=True)
        if args.drop_checkpoints:
            shutil.rmtree(os.path.join(path, "checkpoints"), ignore_errors=True)
        if summary.get("stop_reason") == "diverged":
            return "diverged"
        return "reached" if summary.get("target_reached") else "missed"
    print(f" FAILED (exit {rc}, no summary.json) after {duration_text(took)}; log {log_path}:", flush=True)
    with open(log_path, errors="replace") as f:
        for line in f.readlines()[-8:]:
            print("    " + line.rstrip(), flush=True)
    return "failed"


def run_local(args, runs):
    t0 = time.monotonic()
    budget_s = args.budget_min * 60 if args.budget_min > 0 else math.inf
    logs = os.path.join(args.out, "logs")
    if not args.dry_run:
        os.makedirs(logs, exist_ok=True)
    launcher = shlex.split(args.mpirun)
    counts = dict(skipped=0, reached=0, missed=0, diverged=0, failed=0, stopped=0, not_started=0)
    total = len(runs)
    for i, run in enumerate(runs, 1):
        path = run_dir(args, run)
        head = f"[{i}/{total}] {run['name']}"
        summary = finished(path)
        if summary is not None:
            counts["skipped"] += 1
            print(f"{head}: skip (finished: {describe(summary)}){skip_note(args, run)}", flush=True)
            continue
        cmd = launcher + ["-np", str(run["ranks"])] + run["train"]
        if args.dry_run:
            state = "half-finished, would be removed and re-run" if os.path.exists(path) else "would run"
            print(f"{head}: {state}\n  {shlex.join(cmd + ['--run-dir', path])}", flush=True)
            continue
        left_s = budget_s - (time.monotonic() - t0)
        if left_s <= 0:
            counts["not_started"] += 1
            print(f"{head}: not started (the {args.budget_min:g} min budget is spent)", flush=True)
            continue
        if os.path.exists(path):
            print(f"{head}: removing the half-finished run directory {path}", flush=True)
            shutil.rmtree(path)
        cmd += ["--run-dir", path]
        log_path = os.path.join(logs, run["name"] + ".log")
        limit_s = min(left_s, args.run_timeout_min * 60 if args.run_timeout_min > 0 else math.inf)
        print(f"{head}: B={run['global_batch']} lr={lr_text(run['lr'])} (x{run['lr_multiplier']:g}) "
              f"np={run['ranks']} epochs<={run['epochs']} ...", end="", flush=True)
        t_run = time.monotonic()
        rc = launch(cmd, log_path, limit_s)
        took = time.monotonic() - t_run
        counts[record_outcome(args, path, log_path, rc, took, limit_s == left_s)] += 1
    elapsed = time.monotonic() - t0
    word = "would run" if args.dry_run else "ran"
    ran = total - counts["skipped"] - counts["not_started"]
    print(f"sweep {args.name}: {total} runs: {counts['skipped']} skipped (finished before), {ran} {word}"
          + ("" if args.dry_run else
             f" ({counts['reached']} reached the target, {counts['missed']} did not, "
             f"{counts['diverged']} diverged, {counts['failed']} failed, {counts['stopped']} stopped by a time limit), "
             f"{counts['not_started']} not started; {duration_text(elapsed)}"), flush=True)
    if not args.dry_run and args.report is None:
        print(f"next: python3 scripts/report.py {shlex.quote(args.out)}", flush=True)
    # Diverged, missed and time-limited runs are results; only a run that
    # failed (exit code without a summary.json) makes the sweep fail.
    return 1 if counts["failed"] else 0


def build_parser():
    """The command line's options (docs/scaling-study.md describes them)."""
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The Fashion-MNIST study (docs/scaling-study.md; 34 runs, 2-4 minutes on 2 cores):\n"
               "  python3 scripts/sweep.py --name fmnist --batch-min 32 --batch-max 8192 --ranks 2 \\\n"
               "      --lr-multipliers 0.5,1,2,4 --lr-multipliers-at 4096:0.25,0.5,1 \\\n"
               "      --lr-multipliers-at 8192:0.125,0.25,0.5 --target 'test_acc>=0.85' --epochs 20 \\\n"
               "      --metrics-every-steps 10 --drop-checkpoints --budget-min 25 --report=--interpolate",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_argument_group("grid")
    g.add_argument("--batch-min", type=int, default=32, help="smallest global batch (default 32)")
    g.add_argument("--batch-max", type=int, default=8192, help="largest global batch (default 8192)")
    g.add_argument("--batches", default="", help="explicit global batches, e.g. 64,256,1024 (instead of the powers of two)")
    g.add_argument("--ranks", default="2", help="rank counts, e.g. 2 or 1,2,4 (default 2)")
    g.add_argument("--base-lr", type=float, default=0.0125, help="rate at --ref-batch (default 0.0125, the main job's)")
    g.add_argument("--ref-batch", type=int, default=256, help="global batch of --base-lr (default 256)")
    g.add_argument("--lr-rule", choices=["linear", "sqrt", "none"], default="linear",
                   help="how multiplier 1 scales with B (default linear, Goyal et al. 2017)")
    g.add_argument("--lr-max", type=float, default=0.0, help="cap on the rule's rate (0: none)")
    g.add_argument("--lr-multipliers", default="0.5,1,2", help="rates tried at every B, as multiples of the rule (default 0.5,1,2)")
    g.add_argument("--lr-multipliers-at", action="append", metavar="B:M,...",
                   help="other multipliers at one B, e.g. 8192:0.5,1 (repeatable)")
    g.add_argument("--warmup-epochs", type=float, default=2.0,
                   help="linear warmup (from the reference rate) for B > --warmup-above-batch (default 2)")
    g.add_argument("--warmup-above-batch", type=int, default=256, help="default 256")
    g.add_argument("--target", default="test_acc>=0.85", help="mpitrain --target (default test_acc>=0.85)")
    g.add_argument("--epochs", type=int, default=10, help="most epochs of a run (default 10)")
    g.add_argument("--epochs-at", action="append", metavar="B:E", help="other epoch limit at one B (repeatable)")
    g.add_argument("--deterministic", action="store_true",
                   help="train every run with mpitrain --deterministic (bitwise-identical for any rank count); "
                        "finished runs of the sweep directory must have been trained so too")
    g.add_argument("--deterministic-unit", type=int, default=None, metavar="ROWS",
                   help="with --deterministic: rows per unit (default 32, mpitrain's)")
    r = ap.add_argument_group("runs")
    r.add_argument("--name", default="batch", help="sweep name (default batch)")
    r.add_argument("--out", default="", help="sweep directory (default runs/sweep-NAME)")
    r.add_argument("--mpitrain", default="build/mpitrain", help="the trainer (default build/mpitrain)")
    r.add_argument("--config", default="jobs/fashion-mnist-mlp.ini", help="base config ('' for none)")
    r.add_argument("--data", default="", help="override the config's --data")
    r.add_argument("--model", default="", help="override the config's --model")
    r.add_argument("--extra-args", default="", help="more mpitrain options for every run (one string)")
    r.add_argument("--metrics-every-steps", type=int, default=0,
                   help="step lines (with the noise scale) every N steps (default 0: epoch lines only)")
    r.add_argument("--mpirun", default="mpirun --oversubscribe", help="launcher prefix; -np P is appended")
    r.add_argument("--budget-min", type=float, default=0.0, help="wall-time budget of the whole sweep in minutes (0: none)")
    r.add_argument("--run-timeout-min", type=float, default=0.0, help="stop a single run after this long (0: none)")
    r.add_argument("--drop-checkpoints", action="store_true", help="delete each finished run's checkpoints/ (final.h5)")
    r.add_argument("--dry-run", action="store_true", help="print the plan, run and submit nothing")
    r.add_argument("--report", nargs="?", const="", default=None, metavar="ARGS",
                   help="afterwards run scripts/report.py on the sweep (into OUT/report), with ARGS if given, "
                        "e.g. --report=--interpolate")
    s = ap.add_argument_group("slurm")
    s.add_argument("--slurm", action="store_true", help="write OUT/sweep.sbatch and submit job arrays with sbatch")
    s.add_argument("--slurm-launcher", choices=["srun", "mpirun"], default="srun", help="inside each task (default srun)")
    s.add_argument("--slurm-time", default="01:00:00", help="time limit of each array task (default 01:00:00)")
    s.add_argument("--sbatch-args", default="", help="more sbatch options, e.g. '--partition=cpu'")
    s.add_argument("--max-parallel", type=int, default=0, help="array tasks running at once (sbatch --array=...%%N)")
    return ap


def sweep(argv=None):
    """Plans, runs (or submits) and reports the sweep; returns the exit code."""
    args = build_parser().parse_args(argv)

    if not args.out:
        args.out = os.path.join("runs", f"sweep-{args.name}")
    if not args.target:
        raise SystemExit("sweep: error: --target is required: steps-to-target is what the sweep measures")
    runs = plan_runs(args)
    args.earlier = earlier_plan(args)
    check_determinism(args, runs)
    if not args.dry_run or args.slurm:
        os.makedirs(args.out, exist_ok=True)
    if not args.dry_run:
        if not (os.path.isfile(args.mpitrain) and os.access(args.mpitrain, os.X_OK)):
            raise SystemExit(f"sweep: error: {args.mpitrain} is not an executable (build first, or pass --mpitrain)")
        # One sweep at a time per directory: a second one would remove the
        # first one's "half-finished" runs while they train.
        lock = open(os.path.join(args.out, "sweep.lock"), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SystemExit(f"sweep: error: another sweep is running in {args.out}")
    if not args.dry_run or args.slurm:
        write_plan(args, runs)
    print(f"sweep {args.name}: {len(runs)} runs into {args.out}; target {args.target}, "
          f"at most {args.epochs} epochs" + (f", budget {args.budget_min:g} min" if args.budget_min > 0 else "")
          + (f", deterministic (units of {deterministic_unit(args)} rows)" if args.deterministic else ""),
          flush=True)
    if args.slurm:
        return run_slurm(args, runs)
    status = run_local(args, runs)
    if args.report is not None and not args.dry_run:
        report = [sys.executable, os.path.join(SCRIPTS_DIR, "report.py"),
                  args.out] + shlex.split(args.report)
        print("+ " + shlex.join(report), flush=True)
        status = subprocess.run(report).returncode or status
    return status


def main(argv=None):
    """The command line; returns the exit code (130 when interrupted)."""
    try:
        return sweep(argv)
    except KeyboardInterrupt:
        print("\nsweep: interrupted; the run that was training is half-finished and re-runs next time",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
