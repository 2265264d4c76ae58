"""The global-batch sweep driver of the scaling study (DESIGN.md, "Scaling study").

Trains one `mpitrain train` run per global batch, rank count and learning
rate, each until the target, in its own run directory; a re-run skips
finished runs. docs/scaling-study.md describes every option. The grid is
sweep_plan.py (with --seeds, a run per seed), its extension beyond an edge
and the runs' outcomes (--target-hold) sweep_grid.py, --slurm is
sweep_slurm.py. Then: python3 scripts/report.py OUT
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
from .sweep_grid import extend, extend_all, print_notes, run_outcome
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


def hold_note(args, path, summary):
    """With --target-hold K > 1: where the target held K evaluations in a row."""
    if args.target_hold <= 1 or summary.get("stop_reason") == "diverged":
        return ""
    o = run_outcome(path, args.target, args.target_hold)
    if o["status"] == "reached":
        return f"; held {args.target_hold} evaluations from step {o['steps']}"
    return f"; did not hold {args.target_hold} evaluations in a row"


def record_outcome(args, path, log_path, rc, took, budget_spent):
    """Prints how a run ended; returns its count's key."""
    summary = finished(path)
    if rc is None and summary is None:
        print(f" stopped after {duration_text(took)} ({'budget spent' if budget_spent else 'run timeout'}); "
              f"a re-run starts it again", flush=True)
        return "stopped"
    if summary is not None:
        print(f" {duration_text(took)}: {describe(summary)}{hold_note(args, path, summary)}", flush=True)
        if args.drop_checkpoints:
            shutil.rmtree(os.path.join(path, "checkpoints"), ignore_errors=True)
        status = run_outcome(path, args.target, args.target_hold)["status"]
        return status if status in ("reached", "missed", "diverged") else "failed"
    print(f" FAILED (exit {rc}, no summary.json) after {duration_text(took)}; log {log_path}:", flush=True)
    with open(log_path, errors="replace") as f:
        for line in f.readlines()[-8:]:
            print("    " + line.rstrip(), flush=True)
    return "failed"


class LocalSweep:
    """Runs lists of runs one after another under one time budget, counting outcomes."""

    def __init__(self, args):
        self.args = args
        self.t0 = time.monotonic()
        self.budget_s = args.budget_min * 60 if args.budget_min > 0 else math.inf
        self.logs = os.path.join(args.out, "logs")
        if not args.dry_run:
            os.makedirs(self.logs, exist_ok=True)
        self.launcher = shlex.split(args.mpirun)
        self.counts = dict(skipped=0, reached=0, missed=0, diverged=0, failed=0, stopped=0, not_started=0)
        self.total = 0
        self.done = 0

    def run(self, runs):
        args, counts = self.args, self.counts
        self.total += len(runs)
        for run in runs:
            self.done += 1
            path = run_dir(args, run)
            head = f"[{self.done}/{self.total}] {run['name']}"
            summary = finished(path)
            if summary is not None:
                counts["skipped"] += 1
                print(f"{head}: skip (finished: {describe(summary)}){skip_note(args, run)}", flush=True)
                continue
            cmd = self.launcher + ["-np", str(run["ranks"])] + run["train"]
            if args.dry_run:
                state = "half-finished, would be removed and re-run" if os.path.exists(path) else "would run"
                print(f"{head}: {state}\n  {shlex.join(cmd + ['--run-dir', path])}", flush=True)
                continue
            left_s = self.budget_s - (time.monotonic() - self.t0)
            if left_s <= 0:
                counts["not_started"] += 1
                print(f"{head}: not started (the {args.budget_min:g} min budget is spent)", flush=True)
                continue
            if os.path.exists(path):
                print(f"{head}: removing the half-finished run directory {path}", flush=True)
                shutil.rmtree(path)
            cmd += ["--run-dir", path]
            log_path = os.path.join(self.logs, run["name"] + ".log")
            limit_s = min(left_s, args.run_timeout_min * 60 if args.run_timeout_min > 0 else math.inf)
            seed = f" seed={run['seed']}" if run.get("seed") is not None else ""
            print(f"{head}: B={run['global_batch']} lr={lr_text(run['lr'])} (x{run['lr_multiplier']:g}) "
                  f"np={run['ranks']}{seed} epochs<={run['epochs']} ...", end="", flush=True)
            t_run = time.monotonic()
            rc = launch(cmd, log_path, limit_s)
            took = time.monotonic() - t_run
            counts[record_outcome(args, path, log_path, rc, took, limit_s == left_s)] += 1

    def budget_left(self):
        return self.budget_s - (time.monotonic() - self.t0) > 0

    def finish(self):
        args, counts, total = self.args, self.counts, self.total
        elapsed = time.monotonic() - self.t0
        word = "would run" if args.dry_run else "ran"
        ran = total - counts["skipped"] - counts["not_started"]
        print(f"sweep {args.name}: {total} runs: {counts['skipped']} skipped (finished before), {ran} {word}"
              + ("" if args.dry_run else
                 f" ({counts['reached']} reached the target, {counts['missed']} did not, "
                 f"{counts['diverged']} diverged, {counts['failed']} failed, {counts['stopped']} stopped by a time "
                 f"limit), {counts['not_started']} not started; {duration_text(elapsed)}"), flush=True)
        if not args.dry_run and args.report is None:
            print(f"next: python3 scripts/report.py {shlex.quote(args.out)}", flush=True)
        # Diverged, missed and time-limited runs are results; only a run that
        # failed (exit code without a summary.json) makes the sweep fail.
        return 1 if counts["failed"] else 0


def run_local(args, runs):
    """The runs, then (--max-grid-extensions) the rates each B's results
    call for, round after round, while the budget lasts."""
    local = LocalSweep(args)
    local.run(runs)
    planned = list(runs)
    notes = {}
    while args.max_grid_extensions > 0 and not args.dry_run:
        new, round_notes = extend(args, planned)
        for b, note in round_notes.items():
            if not (note.startswith("waiting") and b in notes):
                notes[b] = note
        print_notes({b: round_notes[b] for b in sorted(round_notes) if not round_notes[b].startswith("waiting")})
        if not new:
            break
        planned += new
        args.grid_notes = notes
        write_plan(args, planned)
        if not local.budget_left():
            print(f"grid: {len(new)} added run(s) not started (the {args.budget_min:g} min budget is spent); "
                  "a re-run continues", flush=True)
            local.counts["not_started"] += len(new)
            local.total += len(new)
            break
        local.run(new)
    if args.max_grid_extensions > 0 and args.dry_run:
        new, notes = extend_all(args, planned)
        print_notes(notes)
        local.run(new)
    return local.finish()


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
    g.add_argument("--seeds", default="", metavar="LIST|COUNT",
                   help="run every (B, ranks, rate) once per seed (mpitrain --seed), each in its own run directory "
                        "(-sS): 1,2,3, or a count (3: seeds 1,2,3; one seed: '7,')")
    g.add_argument("--max-grid-extensions", type=int, default=0, metavar="N",
                   help="per B, add up to N rates beyond the edge of its grid while the best rate (mean steps to "
                        "the target over seeds) is at that edge (default 0: the grid as given)")
    g.add_argument("--target-hold", type=int, default=1, metavar="K",
                   help="the target counts as reached where it holds for K consecutive evaluations (the first of "
                        "them); passed to mpitrain's --target-hold, which stops the run there (default 1)")
    g.add_argument("--eval-every-steps", type=int, default=0, metavar="N",
                   help="mpitrain --eval-every-steps: evaluate (and check the target) every N steps too "
                        "(default 0: at epoch ends only)")
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
    args.grid_notes = {}
    if args.slurm and args.max_grid_extensions > 0:
        # The rates the finished runs call for join the array; a B whose
        # runs are still queued decides at a re-run after they finish.
        added, args.grid_notes = extend_all(args, runs)
        runs += added
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
    print(f"sweep {args.name}: {len(runs)} runs into {args.out}; target {args.target}"
          + (f" held for {args.target_hold} evaluations" if args.target_hold > 1 else "")
          + (f", {len(args.seed_list)} seed(s) {','.join(map(str, args.seed_list))}" if args.seed_list else "")
          + f", at most {args.epochs} epochs"
          + (f", up to {args.max_grid_extensions} added rate(s) per B" if args.max_grid_extensions > 0 else "") + (f", budget {args.budget_min:g} min" if args.budget_min > 0 else "")
          + (f", deterministic (units of {deterministic_unit(args)} rows)" if args.deterministic else ""),
          flush=True)
    if args.slurm:
        print_notes(args.grid_notes)
        status = run_slurm(args, runs)
        if args.max_grid_extensions > 0 and not args.dry_run:
            print("grid extension: re-run this command when the arrays are done; it adds the rates the "
                  "finished runs call for and submits them", flush=True)
        return status
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
