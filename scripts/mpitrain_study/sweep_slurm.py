"""sweep.py --slurm: the runs of a sweep as Slurm job arrays.

OUT/sweep.sbatch holds every run's command (array task i runs run i); one
job array is submitted per rank count, with only the unfinished runs.
"""

import os
import shlex
import subprocess
import sys

from .sweep_plan import describe, deterministic_unit, finished, run_dir, skip_note

EXIT_DIVERGED = 4  # mpitrain's exit code for a diverged run


SBATCH_TEMPLATE = """#!/usr/bin/env bash
# Written by scripts/sweep.py: the runs of sweep {name}, one per array task
# (task i runs run i of the list below). Submitted once per rank count, as
#   sbatch --ntasks=P --array=<the tasks with P ranks> {script}
# A task whose run finished already (summary.json exists) does nothing; one
# whose run directory is half-finished removes it and trains from the start.
# Deterministic units of this sweep's runs (--deterministic): {unit} (0: off).
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
  # Not reused if it was trained otherwise as to --deterministic (sweep.py refuses such runs too):
  # the metrics header's "deterministic" and "deterministic_unit" (missing: not deterministic).
  header=$(head -n 1 "$dir/metrics.jsonl" 2>/dev/null || true)
  det='"deterministic":true[,}}]' det_unit='"deterministic_unit":([0-9]+)' unit=0
  if [[ $header =~ $det ]]; then
    unit=unknown
    if [[ $header =~ $det_unit ]]; then unit=${{BASH_REMATCH[1]}}; fi
  fi
  if [ "$unit" != {unit} ]; then
    echo "sweep: error: run $name finished with deterministic unit $unit (0: not --deterministic), this sweep's is {unit}: remove $dir to train it again" >&2
    exit 2
  fi
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
                                  last=len(runs) - 1, diverged=EXIT_DIVERGED, unit=deterministic_unit(args),
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
