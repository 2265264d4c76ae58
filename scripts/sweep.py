#!/usr/bin/env python3
"""The global-batch sweep driver of the scaling study (DESIGN.md, "Scaling study").

Trains one `mpitrain train` run per point of a grid of
  global batch B (powers of two from --batch-min to --batch-max, or --batches),
  rank count P (--ranks) and
  learning-rate multiplier m (--lr-multipliers, per B with --lr-multipliers-at),
each with an explicit rate lr = m * rule(B), rule(B) = --base-lr scaled from
--ref-batch by --lr-rule (linear, sqrt or none), capped at --lr-max. Steps to
the target need the best rate at every B, so a few rates per B are tried
(Shallue et al. 2018, arXiv:1811.03600). Every run stops at --target or after
--epochs and gets its own run directory:

  OUT/B0256-lr0.0125-np2/{config.ini,metrics.jsonl,summary.json,checkpoints/}
  OUT/logs/B0256-lr0.0125-np2.log     the run's stdout and stderr
  OUT/sweep.json                      the grid and every run's command (for report.py)

A run is finished when its summary.json exists (whatever its stop_reason,
also "diverged"): a re-run of the same command skips it. A run directory
without one is half-finished (interrupted, or the run failed): it is removed
and the run starts again. --budget-min bounds the wall time of the whole
sweep: no run starts after it, and a run still going then is stopped (and
re-run by the next invocation). The rate multiplier 1 runs first at every B,
then the others, so a sweep cut short still has one rate at every B.

With --slurm the runs become one Slurm job array per rank count: OUT/sweep.sbatch
holds every run's command (array task i = run i); only unfinished runs are
submitted, and a task whose run finished meanwhile skips it too. --dry-run
prints what would run (and with --slurm writes the script) without running or
submitting anything.

Then:  python3 scripts/report.py OUT   (plots and summary.md in OUT/report)
"""

import argparse
import fcntl
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

EXIT_DIVERGED = 4  # mpitrain's exit code for a diverged run


def parse_list(text, kind, what):
    try:
        values = [kind(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise SystemExit(f"sweep: error: {what} takes a comma-separated list of numbers (got '{text}')")
    if not values:
        raise SystemExit(f"sweep: error: {what} is empty")
    return values


def powers_of_two(lo, hi):
    if lo < 1 or hi < lo:
        raise SystemExit(f"sweep: error: need 1 <= --batch-min <= --batch-max (got {lo}, {hi})")
    out, b = [], 1
    while b < lo:
        b *= 2
    while b <= hi:
        out.append(b)
        b *= 2
    if not out:
        raise SystemExit(f"sweep: error: no power of two between --batch-min {lo} and --batch-max {hi}")
    return out


def parse_per_batch(items, kind, what):
    """['32:1,2', '8192:0.5'] -> {32: [1.0, 2.0], 8192: [0.5]}"""
    table = {}
    for item in items or []:
        if ":" not in item:
            raise SystemExit(f"sweep: error: {what} takes B:VALUES, e.g. 8192:0.5,1 (got '{item}')")
        b, values = item.split(":", 1)
        try:
            table[int(b)] = parse_list(values, kind, what)
        except ValueError:
            raise SystemExit(f"sweep: error: {what}: '{b}' is not a global batch")
    return table


def fmt_lr(lr):
    """The rate as passed to --lr and shown in run names: 6 significant digits."""
    return f"{lr:.6g}"


def rule_lr(args, batch):
    """The rate of multiplier 1 at global batch `batch`: the scaling rule, capped."""
    ratio = batch / args.ref_batch
    scale = {"linear": ratio, "sqrt": math.sqrt(ratio), "none": 1.0}[args.lr_rule]
    lr = args.base_lr * scale
    if args.lr_max > 0:
        lr = min(lr, args.lr_max)
    return lr


def plan_runs(args):
    """Every run of the grid, in execution order, each a dict (see sweep.json)."""
    if args.batches:
        batches = sorted(set(parse_list(args.batches, int, "--batches")))
    else:
        batches = powers_of_two(args.batch_min, args.batch_max)
    ranks = parse_list(args.ranks, int, "--ranks")
    if any(p < 1 for p in ranks) or any(b < 1 for b in batches):
        raise SystemExit("sweep: error: --ranks and global batches must be >= 1")
    multipliers = parse_list(args.lr_multipliers, float, "--lr-multipliers")
    per_batch = parse_per_batch(args.lr_multipliers_at, float, "--lr-multipliers-at")
    epochs_at = {b: v[0] for b, v in parse_per_batch(args.epochs_at, int, "--epochs-at").items()}
    for b in list(per_batch) + list(epochs_at):
        if b not in batches:
            raise SystemExit(f"sweep: error: B={b} of --lr-multipliers-at/--epochs-at is not in the grid {batches}")
    if any(m <= 0 for ms in [multipliers, *per_batch.values()] for m in ms):
        raise SystemExit("sweep: error: rate multipliers must be > 0")
    extra = shlex.split(args.extra_args)
    runs = []
    for b in batches:
        base = rule_lr(args, b)
        for m in per_batch.get(b, multipliers):
            lr_text = fmt_lr(base * m)
            for p in ranks:
                name = f"B{b:04d}-lr{lr_text}-np{p}"
                if any(r["name"] == name for r in runs):
                    continue  # two multipliers that round to the same rate (e.g. under --lr-max)
                warmup = args.warmup_epochs if b > args.warmup_above_batch else 0.0
                train = [args.mpitrain, "train"]
                if args.config:
                    train += ["--config", args.config]
                if args.data:
                    train += ["--data", args.data]
                if args.model:
                    train += ["--model", args.model]
                train += ["--global-batch", str(b), "--lr-scaling", "none", "--lr", lr_text,
                          "--warmup-epochs", f"{warmup:g}"]
                if warmup > 0:
                    # Warmup starts from the rule's rate at the reference batch, as
                    # Goyal et al. (2017) do (the trainer's own default with a scaling
                    # rule; with an explicit rate it would start from 0).
                    start = min(1.0, args.base_lr * m / float(lr_text))
                    train += ["--warmup-start-factor", f"{start:.6g}"]
                train += ["--epochs", str(epochs_at.get(b, args.epochs)),
                          "--target", args.target, "--stop-at-target",
                          "--metrics", "", "--checkpoint-dir", "",  # the run directory's own
                          "--checkpoint-every-epochs", "0", "--progress", "none"]
                if args.metrics_every_steps > 0:
                    train += ["--metrics-every-steps", str(args.metrics_every_steps)]
                train += extra
                runs.append(dict(name=name, global_batch=b, ranks=p, lr=float(lr_text),
                                 lr_multiplier=m, rule_lr=base, warmup_epochs=warmup,
                                 epochs=epochs_at.get(b, args.epochs), train=train))
    # Round k runs the k-th closest multiplier to 1 at every B: round 0 is
    # multiplier 1 (or the one closest to it), so a sweep cut short by its
    # budget still has one rate at every B.
    def round_of(r):
        ms = sorted(set(per_batch.get(r["global_batch"], multipliers)), key=lambda m: (abs(math.log(m)), m))
        return ms.index(r["lr_multiplier"])
    runs.sort(key=lambda r: (round_of(r), ranks.index(r["ranks"]), r["global_batch"]))
    return runs


def run_dir(args, run):
    return os.path.join(args.out, run["name"])


def finished(path):
    """The run's summary.json when it is complete (parses, has a stop_reason), else None."""
    try:
        with open(os.path.join(path, "summary.json")) as f:
            summary = json.loads(f.read())
        return summary if summary.get("stop_reason") else None
    except (OSError, ValueError):
        return None


def earlier_plan(args):
    """{name: run} of OUT/sweep.json as the previous invocation left it."""
    try:
        with open(os.path.join(args.out, "sweep.json")) as f:
            return {r["name"]: r for r in json.load(f).get("runs", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def skip_note(args, run):
    """' (trained with other options: ...)' when the finished run's command differs."""
    old = args.earlier.get(run["name"])
    if not old or old.get("train") == run["train"]:
        return ""
    return "; NOTE: it was trained with other options (remove its directory to re-run it with these)"


def describe(summary):
    reason = summary.get("stop_reason")
    if reason == "diverged":
        return f"diverged at step {summary.get('steps')}"
    if summary.get("target_reached"):
        return (f"target reached at epoch {summary.get('target_epoch')}: "
                f"{summary.get('target_step')} steps, {summary.get('target_samples')} samples, "
                f"{summary.get('target_time_s', 0):.1f}s")
    return (f"target not reached ({reason} after {summary.get('epochs')} epochs, "
            f"{summary.get('steps')} steps, test_acc {summary.get('test_acc')})")


def write_plan(args, runs):
    """OUT/sweep.json: the grid and every run, merged with the runs of earlier invocations."""
    path = os.path.join(args.out, "sweep.json")
    old = {}
    try:
        with open(path) as f:
            old = {r["name"]: r for r in json.load(f).get("runs", [])}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    for r in runs:
        if r["name"] in old and finished(run_dir(args, r)) is not None:
            continue  # skipped: the entry says how it was trained
        old[r["name"]] = r
    plan = dict(name=args.name, target=args.target, base_lr=args.base_lr, ref_batch=args.ref_batch,
                lr_rule=args.lr_rule, lr_max=args.lr_max, command=sys.argv,
                runs=sorted(old.values(), key=lambda r: (r["global_batch"], r["lr"], r["ranks"])))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(plan, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def child_env():
    env = dict(os.environ)
    if os.geteuid() == 0:  # Open MPI refuses root without these (scripts/mpi-env.sh)
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return env


def fmt_s(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


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
        print(f"{head}: B={run['global_batch']} lr={fmt_lr(run['lr'])} (x{run['lr_multiplier']:g}) "
              f"np={run['ranks']} epochs<={run['epochs']} ...", end="", flush=True)
        t_run = time.monotonic()
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
        took = time.monotonic() - t_run
        summary = finished(path)
        if rc is None and summary is None:
            counts["stopped"] += 1
            print(f" stopped after {fmt_s(took)} ({'budget spent' if limit_s == left_s else 'run timeout'}); "
                  f"a re-run starts it again", flush=True)
        elif summary is not None:
            if summary.get("stop_reason") == "diverged":
                counts["diverged"] += 1
            elif summary.get("target_reached"):
                counts["reached"] += 1
            else:
                counts["missed"] += 1
            print(f" {fmt_s(took)}: {describe(summary)}", flush=True)
            if args.drop_checkpoints:
                shutil.rmtree(os.path.join(path, "checkpoints"), ignore_errors=True)
        else:
            counts["failed"] += 1
            print(f" FAILED (exit {rc}, no summary.json) after {fmt_s(took)}; log {log_path}:", flush=True)
            with open(log_path, errors="replace") as f:
                for line in f.readlines()[-8:]:
                    print("    " + line.rstrip(), flush=True)
    elapsed = time.monotonic() - t0
    word = "would run" if args.dry_run else "ran"
    ran = total - counts["skipped"] - counts["not_started"]
    print(f"sweep {args.name}: {total} runs: {counts['skipped']} skipped (finished before), {ran} {word}"
          + ("" if args.dry_run else
             f" ({counts['reached']} reached the target, {counts['missed']} did not, "
             f"{counts['diverged']} diverged, {counts['failed']} failed, {counts['stopped']} stopped by a time limit), "
             f"{counts['not_started']} not started; {fmt_s(elapsed)}"), flush=True)
    if not args.dry_run and args.report is None:
        print(f"next: python3 scripts/report.py {shlex.quote(args.out)}", flush=True)
    # Diverged, missed and time-limited runs are results; only a run that
    # failed (exit code without a summary.json) makes the sweep fail.
    return 1 if counts["failed"] else 0


SBATCH_TEMPLATE = """#!/usr/bin/env bash
# Written by scripts/sweep.py: the runs of sweep {name}, one per array task
# (task i runs run i of the list below). Submitted once per rank count, as
#   sbatch --ntasks=P --array=<the tasks with P ranks> {script}
# A task whose run finished already (summary.json exists) does nothing; one
# whose run directory is half-finished removes it and trains from the start.
#
#SBATCH --job-name=sweep-{name}
#SBATCH --output={logs}/%x-%A_%a.log
#SBATCH --cpus-per-task=1
#SBATCH --time={time_limit}
set -euo pipefail
cd {root}
launcher=${{SWEEP_LAUNCHER:-{launcher}}}   # srun (default) or mpirun

task=${{SLURM_ARRAY_TASK_ID:?submit with sbatch --array}}
case "$task" in
{cases}
  *) echo "sweep: error: array task $task has no run (0 .. {last})" >&2; exit 2 ;;
esac

if [ "${{SLURM_NTASKS:-$ranks}}" != "$ranks" ]; then
  echo "sweep: error: run $name needs $ranks ranks but the job has ${{SLURM_NTASKS}}: sbatch --ntasks=$ranks" >&2
  exit 2
fi
if [ -f "$dir/summary.json" ]; then
  echo "skip $name: finished"
  exit 0
fi
if [ -e "$dir" ]; then
  echo "removing the half-finished run directory $dir"
  rm -rf "$dir"
fi
mkdir -p {logs}
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
echo "sweep {name} task $task: run $name on $ranks rank(s), job ${{SLURM_JOB_ID:-?}}"
if [ "$launcher" = mpirun ]; then
  launch=(mpirun -np "$ranks")
else
  # srun --mpi=pmix and the passed-on --cpus-per-task: see jobs/fashion-mnist-mlp.sbatch.
  launch=(srun --mpi=pmix --cpus-per-task="${{SLURM_CPUS_PER_TASK:-1}}")
fi
echo "+ ${{launch[*]}} $(printf '%q ' "${{train[@]}}") --run-dir $dir"
status=0
"${{launch[@]}}" "${{train[@]}}" --run-dir "$dir" >{logs}/"$name".log 2>&1 || status=$?
tail -n 3 {logs}/"$name".log
{drop}# A diverged run (exit {diverged}) is a result of the sweep, not a failed task.
if [ "$status" -eq {diverged} ] && [ -f "$dir/summary.json" ]; then exit 0; fi
exit "$status"
"""


def write_sbatch(args, runs):
    root = os.getcwd()
    out = os.path.abspath(args.out)
    logs = os.path.join(out, "logs")
    cases = []
    for i, run in enumerate(runs):
        cases.append(f"  {i}) name={shlex.quote(run['name'])} ranks={run['ranks']} "
                     f"dir={shlex.quote(os.path.join(out, run['name']))}\n"
                     f"     train=({shlex.join(run['train'])}) ;;")
    text = SBATCH_TEMPLATE.format(name=args.name, script="sweep.sbatch", logs=shlex.quote(logs),
                                  time_limit=args.slurm_time, root=shlex.quote(root),
                                  launcher=args.slurm_launcher, cases="\n".join(cases),
                                  last=len(runs) - 1, diverged=EXIT_DIVERGED,
                                  drop='[ -f "$dir/summary.json" ] && rm -rf "$dir/checkpoints"  # --drop-checkpoints\n'
                                  if args.drop_checkpoints else "")
    path = os.path.join(args.out, "sweep.sbatch")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


def compress_ranges(ids):
    """[0,1,2,5,7,8] -> '0-2,5,7-8' (sbatch --array syntax)."""
    parts, start = [], None
    for k, i in enumerate(ids):
        if start is None:
            start = i
        if k + 1 == len(ids) or ids[k + 1] != i + 1:
            parts.append(str(start) if start == i else f"{start}-{i}")
            start = None
    return ",".join(parts)


def run_slurm(args, runs):
    script = write_sbatch(args, runs)
    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
    todo = {}
    skipped = 0
    for i, run in enumerate(runs):
        summary = finished(run_dir(args, run))
        if summary is not None:
            skipped += 1
            print(f"[{i}] {run['name']}: skip (finished: {describe(summary)}){skip_note(args, run)}", flush=True)
        else:
            todo.setdefault(run["ranks"], []).append(i)
    print(f"wrote {script}: {len(runs)} array tasks; {skipped} finished, "
          f"{sum(map(len, todo.values()))} to submit", flush=True)
    status = 0
    for ranks, ids in sorted(todo.items()):
        array = compress_ranges(ids)
        if args.max_parallel > 0:
            array += f"%{args.max_parallel}"
        cmd = ["sbatch", f"--ntasks={ranks}", f"--array={array}"] + shlex.split(args.sbatch_args) + [script]
        if args.dry_run:
            print("would submit: " + shlex.join(cmd), flush=True)
            continue
        print("+ " + shlex.join(cmd), flush=True)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            print(f"sweep: error: sbatch failed (exit {proc.returncode})", file=sys.stderr)
            status = 1
    if not args.dry_run:
        when = "when the jobs are done" if todo else "every run is finished"
        print(f"{when}: python3 scripts/report.py {shlex.quote(args.out)}", flush=True)
    return status


def main():
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
    args = ap.parse_args()

    if not args.out:
        args.out = os.path.join("runs", f"sweep-{args.name}")
    if not args.target:
        raise SystemExit("sweep: error: --target is required: steps-to-target is what the sweep measures")
    runs = plan_runs(args)
    args.earlier = earlier_plan(args)
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
          f"at most {args.epochs} epochs" + (f", budget {args.budget_min:g} min" if args.budget_min > 0 else ""),
          flush=True)
    if args.slurm:
        return run_slurm(args, runs)
    status = run_local(args, runs)
    if args.report is not None and not args.dry_run:
        report = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.py"),
                  args.out] + shlex.split(args.report)
        print("+ " + shlex.join(report), flush=True)
        status = subprocess.run(report).returncode or status
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\nsweep: interrupted; the run that was training is half-finished and re-runs next time",
              file=sys.stderr)
        sys.exit(130)
