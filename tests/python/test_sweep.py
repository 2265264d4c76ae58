"""scripts/sweep.py on real tiny runs: run, skip finished runs, re-run a run
whose summary.json was deleted, the dry run and the Slurm array script (run
as Slurm would, without Slurm), the time budget, and --deterministic (passed
to every run; finished runs trained otherwise are not reused).

The tests share one sweep directory and run in file order, each starting
from the state the one before left."""

import json
import os
import shlex
import subprocess
import time

import pytest

from helpers import one_error_line, run
from mpitrain_study import sweep as sweep_tool
from mpitrain_study.sweep_plan import plan_runs

RUNS = ["B0032-lr0.025-np2", "B0032-lr0.0125-np2", "B0064-lr0.05-np2", "B0064-lr0.025-np2",
        "B0128-lr0.1-np2", "B0128-lr0.05-np2"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, mpitrain, make_test_dataset, mpirun, tool):
    """sweep(*more_args): the sweep of 3 global batches x 2 rates on 2 ranks
    (test_acc >= 0.99 is missed by some runs in 2 epochs, which is fine:
    finished means summary.json, reached or not)."""
    work = tmp_path_factory.mktemp("sweep")
    data = str(work / "data.h5")
    r = run([make_test_dataset, "good", data, 600, 16])
    assert r.returncode == 0, r.stderr
    out = str(work / "sweep")
    base = ["--name", "t", "--out", out, "--mpitrain", mpitrain, "--mpirun", shlex.join(mpirun), "--config", "",
            "--data", data, "--model", "16-32-4", "--batches", "32,64,128", "--ranks", "2", "--base-lr", "0.05",
            "--ref-batch", "64", "--lr-multipliers", "0.5,1", "--target", "test_acc>=0.99", "--epochs", "2",
            "--extra-args", "--seed 3"]

    def run_sweep(*more, env=None, timeout=180):
        return tool("sweep", *base, *more, timeout=timeout, env=env)
    run_sweep.out = out
    return run_sweep


def summary(out, name):
    with open(os.path.join(out, name, "summary.json")) as f:
        return json.load(f)


def test_first_invocation_runs_every_run(sweep):
    r = sweep()
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(" ... ") == 6 and ": skip" not in r.stdout
    assert "6 runs: 0 skipped (finished before), 6 ran" in r.stdout
    for name in RUNS:
        assert os.path.isfile(os.path.join(sweep.out, name, "summary.json")), name
    assert os.path.isfile(os.path.join(sweep.out, "logs", "B0064-lr0.05-np2.log"))
    # The rate, batch and extra arguments reach the trainer.
    s = summary(sweep.out, "B0128-lr0.1-np2")
    assert (s["lr"], s["global_batch"], s["ranks"]) == (0.1, 128, 2)
    with open(os.path.join(sweep.out, "B0128-lr0.1-np2", "config.ini")) as f:
        assert "seed = 3" in f.read()
    with open(os.path.join(sweep.out, "sweep.json")) as f:
        assert len(json.load(f)["runs"]) == 6
    assert f"next: python3 scripts/report.py {sweep.out}" in r.stdout


def test_second_invocation_runs_nothing(sweep):
    stamp = os.stat(os.path.join(sweep.out, "B0064-lr0.05-np2", "summary.json")).st_mtime_ns
    r = sweep()
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": skip (finished") == 6 and " ... " not in r.stdout
    assert "6 runs: 6 skipped (finished before), 0 ran" in r.stdout
    assert os.stat(os.path.join(sweep.out, "B0064-lr0.05-np2", "summary.json")).st_mtime_ns == stamp
    # Other options: still skipped (finished is finished), with a note, twice.
    for _ in range(2):
        r = sweep("--epochs", "3")
        assert r.stdout.count("NOTE: it was trained with other options") == 6 and " ... " not in r.stdout
    with open(os.path.join(sweep.out, "sweep.json")) as f:
        assert all(run["epochs"] == 2 for run in json.load(f)["runs"])


def test_a_deleted_summary_reruns_exactly_that_run(sweep):
    os.remove(os.path.join(sweep.out, "B0064-lr0.025-np2", "summary.json"))
    os.makedirs(os.path.join(sweep.out, "B0128-lr0.1-np2.keep"))  # not part of the grid: left alone
    r = sweep()
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": skip (finished") == 5 and r.stdout.count(" ... ") == 1
    assert r.stdout.count("B0064-lr0.025-np2: B=64 lr=0.025 (x0.5) np=2 epochs<=2 ...") == 1
    assert r.stdout.count(f"removing the half-finished run directory {sweep.out}/B0064-lr0.025-np2") == 1
    assert os.path.isfile(os.path.join(sweep.out, "B0064-lr0.025-np2", "summary.json"))
    assert os.path.isdir(os.path.join(sweep.out, "B0128-lr0.1-np2.keep"))
    assert "6 runs: 5 skipped (finished before), 1 ran" in r.stdout


def test_dry_run_and_the_slurm_array_script(sweep, mpirun):
    import shutil
    shutil.rmtree(os.path.join(sweep.out, "B0032-lr0.025-np2"))
    r = sweep("--slurm", "--slurm-launcher", "mpirun", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": skip (finished") == 5
    # Run order: x1 first (B=32,64,128: tasks 0-2), then x0.5 (3-5); B=32 x1 is task 0.
    script = os.path.join(sweep.out, "sweep.sbatch")
    assert f"would submit: sbatch --ntasks=2 --array=0 {script}" in r.stdout
    assert not os.path.exists(os.path.join(sweep.out, "B0032-lr0.025-np2"))
    assert subprocess.run(["bash", "-n", script]).returncode == 0
    # Run the array task as Slurm would, with mpirun inside (no Slurm here).
    env = dict(os.environ, PATH=os.path.dirname(mpirun[0]) + ":" + os.environ["PATH"], SLURM_ARRAY_TASK_ID="0",
               SLURM_NTASKS="2", SLURM_JOB_ID="7")
    r = run(["bash", script], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "run B0032-lr0.025-np2 on 2 rank(s)" in r.stdout
    assert summary(sweep.out, "B0032-lr0.025-np2")["lr"] == 0.025
    r = run(["bash", script], env=dict(os.environ, SLURM_ARRAY_TASK_ID="5", SLURM_NTASKS="2"))
    assert r.returncode == 0 and "skip B0128-lr0.05-np2: finished" in r.stdout
    r = run(["bash", script], env=dict(os.environ, SLURM_ARRAY_TASK_ID="3", SLURM_NTASKS="4"))
    assert r.returncode != 0 and "needs 2 ranks but the job has 4" in r.stderr


def test_the_budget_stops_a_run_and_starts_none_after(sweep):
    # 0.3 s: B=256 x1 (the first unfinished run) starts and is stopped, x0.5
    # never starts. (An unreachable target: the runs of the grid so far are
    # finished whatever it is.)
    r = sweep("--batches", "32,64,128,256", "--epochs", "1000", "--budget-min", "0.005", "--target", "test_acc>=1.5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": skip (finished") == 6
    assert r.stdout.count("B0256-lr0.2-np2: B=256 lr=0.2 (x1) np=2 epochs<=1000 ... stopped after") == 1
    assert r.stdout.count("B0256-lr0.1-np2: not started (the 0.005 min budget is spent)") == 1
    assert "1 stopped by a time limit), 1 not started" in r.stdout
    assert not os.path.exists(os.path.join(sweep.out, "B0256-lr0.2-np2", "summary.json"))
    assert not os.path.exists(os.path.join(sweep.out, "B0256-lr0.1-np2"))
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", f"--run-dir {sweep.out}/B0256-lr0.2-np2"], capture_output=True)
    assert left.returncode != 0, "a rank of the stopped run is left: " + left.stdout.decode()


def test_report_after_the_sweep(sweep):
    # --report runs scripts/report.py on the sweep (every run is finished, so
    # nothing trains); the command it prints is the entry point's.
    r = sweep("--report=--interpolate")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "scripts/report.py " + sweep.out + " --interpolate" in r.stdout
    assert os.path.isfile(os.path.join(sweep.out, "report", "summary.md"))
    assert "next: python3 scripts/report.py" not in r.stdout


def test_a_deterministic_sweep_does_not_reuse_other_runs(sweep):
    # The runs so far were trained without --deterministic: refused, naming them, nothing trains.
    for more in ((), ("--dry-run",)):
        r = sweep("--deterministic", *more)
        assert r.returncode != 0 and " ... " not in r.stdout
        assert one_error_line(r.stderr, "sweep: error:", "--deterministic: 6 finished run(s) in "
                              f"{sweep.out} were not trained with --deterministic --deterministic-unit 32: "), r.stderr
        assert "B0032-lr0.025-np2 (not deterministic)" in r.stderr and "sweep into another --out" in r.stderr
    with open(os.path.join(sweep.out, "sweep.json")) as f:
        assert json.load(f)["deterministic"] is False


def test_a_deterministic_sweep(sweep, mpirun):
    out = sweep.out + "-det"
    det = ("--out", out, "--deterministic", "--deterministic-unit", "16", "--lr-multipliers", "1")
    r = sweep(*det, "--batches", "64")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "deterministic (units of 16 rows)" in r.stdout and r.stdout.count(" ... ") == 1
    with open(os.path.join(out, "logs", "B0064-lr0.05-np2.log")) as f:
        assert "--deterministic --deterministic-unit 16 --seed 3 --run-dir" in f.readline()
    with open(os.path.join(out, "B0064-lr0.05-np2", "metrics.jsonl")) as f:
        header = json.loads(f.readline())
    assert (header["deterministic"], header["deterministic_unit"]) == (True, 16)
    with open(os.path.join(out, "sweep.json")) as f:
        plan = json.load(f)
    assert (plan["deterministic"], plan["deterministic_unit"]) == (True, 16)
    assert [(x["deterministic"], x["deterministic_unit"]) for x in plan["runs"]] == [(True, 16)]
    r = sweep(*det, "--batches", "64")
    assert r.returncode == 0 and r.stdout.count(": skip (finished") == 1, r.stdout + r.stderr
    # The same directory without --deterministic, or with other units: refused.
    r = sweep("--out", out, "--lr-multipliers", "1", "--batches", "64")
    assert r.returncode != 0 and one_error_line(r.stderr, "sweep: error:", "1 finished run(s) in "
                                                f"{out} were trained with --deterministic: B0064-lr0.05-np2; "
                                                "pass --deterministic"), r.stderr
    r = sweep(*det, "--batches", "64", "--deterministic-unit", "8")
    assert r.returncode != 0 and one_error_line(r.stderr, "sweep: error:", "B0064-lr0.05-np2 (units of 16 rows)")
    # The Slurm array: every task trains with the options; a task skips the
    # finished deterministic run, and refuses one that finished otherwise
    # after the script was written (copied in from the first sweep here).
    r = sweep(*det, "--batches", "32,64", "--slurm", "--slurm-launcher", "mpirun", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    script = os.path.join(out, "sweep.sbatch")
    with open(script) as f:
        trains = [line for line in f if line.strip().startswith("train=(")]
    assert len(trains) == 2 and all("--deterministic --deterministic-unit 16 --seed 3)" in t for t in trains)
    env = dict(os.environ, SLURM_NTASKS="2", SWEEP_LAUNCHER="mpirun")
    r = run(["bash", script], env=dict(env, SLURM_ARRAY_TASK_ID="1"))
    assert r.returncode == 0 and "skip B0064-lr0.05-np2: finished" in r.stdout, r.stdout + r.stderr
    import shutil
    shutil.copytree(os.path.join(sweep.out, "B0032-lr0.025-np2"), os.path.join(out, "B0032-lr0.025-np2"))
    r = run(["bash", script], env=dict(env, SLURM_ARRAY_TASK_ID="0"))
    assert r.returncode == 2 and "run B0032-lr0.025-np2 finished with deterministic unit 0" in r.stderr, r.stderr


def test_the_plan_passes_deterministic_to_every_run(tool, tmp_path):
    def planned(*args):
        return plan_runs(sweep_tool.build_parser().parse_args(["--batches", "32,64,128", *args]))
    for args, unit in ((("--deterministic",), 32), (("--deterministic", "--deterministic-unit", "8"), 8), ((), 0)):
        runs = planned(*args, "--extra-args", "--seed 3")
        assert len(runs) == 9
        for r in runs:
            assert (r["deterministic"], r["deterministic_unit"]) == (unit > 0, unit)
            tail = ["--deterministic", "--deterministic-unit", str(unit)] if unit else []
            assert r["train"][-2 - len(tail):] == tail + ["--seed", "3"]
            assert ("--deterministic" in r["train"]) == (unit > 0)
    # The dry run prints the commands with the options.
    r = tool("sweep", "--out", str(tmp_path / "sw"), "--batches", "32,64", "--deterministic", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("--deterministic --deterministic-unit 32 --run-dir") == 2 * 3
    for args, phrase in ((["--deterministic-unit", "8"], "--deterministic-unit needs --deterministic"),
                         (["--deterministic", "--deterministic-unit", "0"], "--deterministic-unit must be >= 1"),
                         (["--extra-args=--deterministic"], "pass --deterministic to sweep.py itself")):
        r = tool("sweep", "--out", str(tmp_path / "sw"), "--dry-run", *args)
        assert r.returncode != 0 and one_error_line(r.stderr, "sweep: error:", phrase), (args, r.stderr)


def test_sweep_errors(tool, tmp_path):
    for args, phrase in ((["--batch-min", "0"], "need 1 <= --batch-min <= --batch-max"),
                         (["--batches", "a,b"], "--batches takes a comma-separated list of numbers"),
                         (["--lr-multipliers-at", "7:1"], "B=7 of --lr-multipliers-at/--epochs-at is not in the grid"),
                         (["--target", ""], "--target is required"),
                         (["--mpitrain", str(tmp_path / "absent")], "is not an executable")):
        r = tool("sweep", "--out", str(tmp_path / "sw"), *args)
        assert r.returncode != 0, args
        assert r.stderr.startswith("sweep: error:") and phrase in r.stderr and "Traceback" not in r.stderr, r.stderr
