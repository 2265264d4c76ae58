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


# --- Seeds, target hold and eval lines, grid extension (issue 15) ---

from mpitrain_study.metrics import RunMetrics, target_crossing  # noqa: E402
from mpitrain_study.sweep_grid import decide  # noqa: E402
from mpitrain_study.sweep_plan import parse_seeds  # noqa: E402


def evals(*accs, every=10, epoch_every=0):
    """Metrics lines: an eval line every `every` steps with these test_acc
    values (an epoch line instead at multiples of epoch_every)."""
    lines = [dict(type="header")]
    for i, acc in enumerate(accs, 1):
        step = i * every
        kind = "epoch" if epoch_every and i % epoch_every == 0 else "eval"
        lines.append(dict(type=kind, step=step, samples=step * 32, time_s=step / 100, epoch=1, test_acc=acc))
    return lines


def test_target_crossing_with_hold():
    m = RunMetrics(evals(0.5, 0.86, 0.84, 0.86, 0.87, 0.9))
    assert target_crossing(m, "test_acc>=0.85")["step"] == 20
    assert target_crossing(m, "test_acc>=0.85", hold=2)["step"] == 40  # 20 is followed by a dip
    assert target_crossing(m, "test_acc>=0.85", hold=3)["step"] == 40
    assert target_crossing(m, "test_acc>=0.85", hold=4) is None
    assert target_crossing(m, "test_acc>0.9") is None
    assert target_crossing(m, "test_loss<=0.3") is None  # no such metric
    assert target_crossing(m, "nonsense") is None
    # Eval and epoch lines make one sequence, in step order; at one step the epoch line stands.
    m = RunMetrics(evals(0.5, 0.9, 0.7, 0.9, 0.9, every=5, epoch_every=2))
    assert [target_crossing(m, "test_acc>=0.85", hold=k)["step"] for k in (1, 2)] == [10, 20]
    lines = evals(0.5, 0.9) + [dict(type="epoch", step=20, samples=640, time_s=0.2, epoch=1, test_acc=0.8),
                               dict(type="eval", step=30, test_acc=0.9)]
    lines[1:] = sorted(lines[1:], key=lambda d: d["step"])
    assert target_crossing(RunMetrics(lines), "test_acc>=0.85")["step"] == 30
    # Lines without the metric (a val-only eval) are passed over, not breaking a hold.
    lines = evals(0.9) + [dict(type="eval", step=15, val_acc=0.1)] + evals(0.9, 0.9)[2:]
    assert target_crossing(RunMetrics(lines), "test_acc>=0.85", hold=2)["step"] == 10
    # Other comparisons: a loss target.
    lines = [dict(type="eval", step=s, test_loss=v) for s, v in ((5, 0.4), (10, 0.2), (15, 0.25), (20, 0.1))]
    assert target_crossing(RunMetrics(lines), "test_loss<0.25")["step"] == 10
    assert target_crossing(RunMetrics(lines), "test_loss<0.25", hold=2) is None
    assert target_crossing(RunMetrics(lines), "test_loss<=0.25", hold=2)["step"] == 10


def test_seed_lists():
    assert parse_seeds("") is None
    assert parse_seeds("3") == [1, 2, 3]
    assert parse_seeds("4,2,4") == [4, 2]
    assert parse_seeds("7,") == [7]


def score(steps=(), failures=0, diverged=False, unfinished=0):
    steps = list(steps)
    return dict(failures=failures, steps=steps, diverged=diverged, unfinished=unfinished,
                mean_steps=sum(steps) / len(steps) if steps else float("inf"))


def test_grid_extension_decisions():
    grid = [0.5, 1, 2]
    def d(scores, multipliers=grid, budget=2):
        return decide(multipliers, grid, dict(zip(multipliers, scores)), budget)
    # Best (mean over seeds) at the top edge: one more x2 step up; at the bottom: down.
    assert d([score([300, 320]), score([200, 240]), score([150, 170])]) == (4, "best rate x2 is at the top edge: adding x4")
    assert d([score([100, 90]), score([200, 240]), score([150, 170])])[0] == 0.25
    # Inside: done. A tie between an edge and the inside: inside.
    assert d([score([300]), score([100]), score([150])]) == (None, "best rate x1 is inside the grid")
    assert d([score([300]), score([100]), score([100])]) == (None, "best rate x1 is inside the grid (tied with x2)")
    assert d([score([100]), score([100])], [0.5, 1])[0] is None  # both edges: flat, inside
    assert d([score([100]), score([100]), score([300])])[0] is None  # tied with an inner rate
    # A missed or diverged seed ranks a rate below every rate without one.
    assert d([score([300, 300]), score([100, 100]), score([50], failures=1)])[0] is None
    assert d([score([300, 300]), score([100], failures=1), score([50], failures=1)])[0] == 0.25
    # The step is the grid's own (x3 here); the extension budget counts added rates only.
    thirds = [1 / 3, 1, 3]
    assert decide(thirds, thirds, dict(zip(thirds, [score([9]), score([3]), score([1])])), 1)[0] == pytest.approx(9)
    ext = [0.5, 1, 2, 4, 8]
    s = [score([500]), score([400]), score([300]), score([200]), score([100])]
    assert d(s, ext, 2) == (None, "best rate x8 is at the top edge; the budget of 2 added rate(s) is spent")
    assert d(s, ext, 3)[0] == 16
    # A top rate that diverged (in any seed) stops the extension upward.
    assert d([score([300]), score([200]), score([100], failures=1, diverged=True)])[0] is None
    # Every rate diverged: go down; none reached the target otherwise: stop.
    assert d([score(failures=1, diverged=True)] * 3)[0] == 0.25
    assert d([score(failures=1)] * 3) == (None, "no rate reached the target: not extended")
    # Runs still to finish (another seed, a queued Slurm task): wait.
    assert d([score([300]), score([200]), score([100], unfinished=1)]) == (None, "waiting for unfinished runs")
    # A grid of one rate grows upward.
    assert decide([1], [1], {1: score([100])}, 1)[0] == 2


def test_top_edge_divergence_stops_upward():
    grid = [0.5, 1, 2]
    scores = {0.5: score([300]), 1: score([200]), 2: score([100, 90], failures=1, diverged=True)}
    # x2 diverged in one seed: it ranks below x1, so the best (x1) is inside.
    assert decide(grid, grid, scores, 2)[0] is None
    scores = {0.5: score([300], failures=1), 1: score([200], failures=1),
              2: score([100], failures=1, diverged=True)}
    m, note = decide(grid, grid, scores, 2)
    assert m is None and note == "best rate x2 is at the top edge, but it diverged in a run: not extended upward"


def fake_run(out, name, accs, diverged=False):
    """A finished run directory: metrics.jsonl with eval lines of these test_acc values, and summary.json."""
    path = os.path.join(out, name)
    os.makedirs(path)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for d in evals(*accs):
            f.write(json.dumps(d) + "\n")
    with open(os.path.join(path, "summary.json"), "w") as f:
        json.dump(dict(type="summary", stop_reason="diverged" if diverged else "epochs"), f)


def test_grid_extension_on_slurm_and_dry_run(tool, tmp_path):
    """Finished runs decide the extension; --slurm puts the added rates'
    runs (every seed) into the array, and a re-run after they finished
    decides again, within --max-grid-extensions."""
    out = str(tmp_path / "sw")
    args = ["--out", out, "--batches", "64,256", "--ranks", "2", "--base-lr", "0.05", "--ref-batch", "64",
            "--lr-multipliers", "0.5,1", "--seeds", "2", "--target", "test_acc>=0.85", "--target-hold", "2",
            "--max-grid-extensions", "1", "--slurm", "--slurm-launcher", "mpirun", "--dry-run"]
    plan = plan_runs(sweep_tool.build_parser().parse_args(args))
    assert sorted(r["name"] for r in plan) == sorted(
        f"B{b:04d}-lr{lr}-np2-s{s}" for b, lrs in ((64, ("0.025", "0.05")), (256, ("0.1", "0.2")))
        for lr in lrs for s in (1, 2))
    os.makedirs(out)
    # B=64: x1 (0.05) holds from step 20, x0.5 from 40: top edge. B=256: x0.5 is best: bottom edge,
    # but one seed of B=256 is not finished.
    fast, slow = (0.5, 0.9, 0.9), (0.5, 0.6, 0.86, 0.9, 0.9)
    for s in (1, 2):
        fake_run(out, f"B0064-lr0.05-np2-s{s}", fast)
        fake_run(out, f"B0064-lr0.025-np2-s{s}", slow)
        fake_run(out, f"B0256-lr0.1-np2-s{s}", fast)
    fake_run(out, "B0256-lr0.2-np2-s1", (0.9, 0.5, 0.9))  # the first crossing does not hold
    r = tool("sweep", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "grid B=64: best rate x1 is at the top edge: adding x2" in r.stdout
    assert "grid B=256: waiting for unfinished runs" in r.stdout
    script = os.path.join(out, "sweep.sbatch")
    with open(script) as f:
        text = f.read()
    # 8 initial tasks + B=64 x2 (0.1) for both seeds; the unfinished are 5 (B=256 x1 seed 2) and 8, 9.
    assert text.count("train=(") == 10
    assert "name=B0064-lr0.1-np2-s1" in text and "name=B0064-lr0.1-np2-s2" in text
    assert "--lr 0.1 " in text and "--seed 2" in text and "--eval-every-steps" not in text
    # the trainer stops once the target has held 2 evaluations in a row
    assert "--stop-at-target --target-hold 2 " in text
    assert f"would submit: sbatch --ntasks=2 --array=5,8-9 {script}" in r.stdout, r.stdout
    with open(os.path.join(out, "sweep.json")) as f:
        saved = json.load(f)
    assert saved["seeds"] == [1, 2] and saved["target_hold"] == 2 and saved["max_grid_extensions"] == 1
    assert sorted(x["name"] for x in saved["runs"] if x["grid"] == "extension") == [
        "B0064-lr0.1-np2-s1", "B0064-lr0.1-np2-s2"]
    # The added rate is best again, but the budget of 1 added rate is spent; B=256's last seed
    # finishes with x1 diverged: x0.5 is best at the bottom edge, so x0.25 is added.
    for s in (1, 2):
        fake_run(out, f"B0064-lr0.1-np2-s{s}", (0.9, 0.9))
    fake_run(out, "B0256-lr0.2-np2-s2", (0.3,), diverged=True)
    r = tool("sweep", *args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "grid B=64: best rate x2 is at the top edge; the budget of 1 added rate(s) is spent" in r.stdout
    assert "grid B=256: best rate x0.5 is at the bottom edge: adding x0.25" in r.stdout
    assert "name=B0256-lr0.05-np2-s2" in open(script).read()
    # The local dry run decides the same and prints what it would run.
    local = [a for a in args if a not in ("--slurm", "--slurm-launcher", "mpirun")]
    r = tool("sweep", *local)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": would run") == 2 and "B0256-lr0.05-np2-s1: would run" in r.stdout
    assert "grid B=256: best rate x0.5 is at the bottom edge: adding x0.25" in r.stdout


def test_seed_and_option_errors(tool, tmp_path):
    for args, phrase in ((["--seeds", "0"], "--seeds: the count must be >= 1"),
                         (["--seeds", "a"], "--seeds takes a count or a comma-separated list"),
                         (["--seeds", "2", "--extra-args", "--seed 3"], "pass --seeds to sweep.py itself"),
                         (["--extra-args=--eval-every-steps=5"], "pass --eval-every-steps to sweep.py itself"),
                         (["--target-hold", "0"], "--target-hold must be >= 1"),
                         (["--max-grid-extensions", "-1"], "--max-grid-extensions must be >= 0")):
        r = tool("sweep", "--out", str(tmp_path / "sw"), "--dry-run", *args)
        assert r.returncode != 0 and one_error_line(r.stderr, "sweep: error:", phrase), (args, r.stderr)


@pytest.fixture(scope="module")
def seed_sweep(tmp_path_factory, mpitrain, make_test_dataset, mpirun, tool):
    """seed_sweep(*more): one rate at B = 32 and 128 on 2 ranks, seeds 1 and 2,
    with eval lines every 4 steps and a target every run reaches."""
    work = tmp_path_factory.mktemp("seeds")
    data = str(work / "data.h5")
    r = run([make_test_dataset, "good", data, 600, 16])
    assert r.returncode == 0, r.stderr
    out = str(work / "sweep")
    base = ["--name", "s", "--out", out, "--mpitrain", mpitrain, "--mpirun", shlex.join(mpirun), "--config", "",
            "--data", data, "--model", "16-32-4", "--batches", "32,128", "--ranks", "2", "--base-lr", "0.02",
            "--ref-batch", "64", "--lr-multipliers", "1", "--seeds", "1,2", "--target", "test_acc>=0.4",
            "--epochs", "2", "--eval-every-steps", "4"]

    def run_sweep(*more):
        return tool("sweep", *base, *more, timeout=180)
    run_sweep.out = out
    return run_sweep


SEED_RUNS = ["B0032-lr0.01-np2-s1", "B0128-lr0.04-np2-s1", "B0032-lr0.01-np2-s2", "B0128-lr0.04-np2-s2"]


def test_seeds_are_separate_runs_and_skipped_when_finished(seed_sweep):
    r = seed_sweep()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 seed(s) 1,2" in r.stdout and "4 runs: 0 skipped (finished before), 4 ran" in r.stdout
    # Seed by seed: all of seed 1 first.
    assert [line.split(": ")[0].split("] ")[1] for line in r.stdout.splitlines() if " ... " in line] == SEED_RUNS
    heads = {}
    for name in SEED_RUNS:
        with open(os.path.join(seed_sweep.out, name, "config.ini")) as f:
            assert f"seed = {name[-1]}" in f.read(), name
        with open(os.path.join(seed_sweep.out, "logs", name + ".log")) as f:
            heads[name] = f.readline()
        assert f"--eval-every-steps 4 --seed {name[-1]} --run-dir" in heads[name]
        with open(os.path.join(seed_sweep.out, name, "metrics.jsonl")) as f:
            assert '"type":"eval"' in f.read().replace(" ", ""), name
    with open(os.path.join(seed_sweep.out, "sweep.json")) as f:
        saved = json.load(f)
    assert saved["seeds"] == [1, 2] and saved["eval_every_steps"] == 4
    assert sorted((x["name"], x["seed"]) for x in saved["runs"]) == sorted((n, int(n[-1])) for n in SEED_RUNS)
    # A re-run skips every seed; a deleted summary.json re-runs that seed only.
    r = seed_sweep()
    assert r.returncode == 0 and r.stdout.count(": skip (finished") == 4 and " ... " not in r.stdout
    os.remove(os.path.join(seed_sweep.out, "B0128-lr0.04-np2-s2", "summary.json"))
    r = seed_sweep("--seeds", "3")  # seeds 1, 2, 3: seed 3 is new
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": skip (finished") == 3
    assert [line.split(": ")[0].split("] ")[1] for line in r.stdout.splitlines() if " ... " in line] == [
        "B0128-lr0.04-np2-s2", "B0032-lr0.01-np2-s3", "B0128-lr0.04-np2-s3"]


def test_a_one_rate_grid_grows_within_its_budget(seed_sweep):
    # Each B's only rate reaches the target, so it is the best and at the
    # top edge: x2 is added, for every seed. What follows depends on the
    # runs; the budget of 2 added rates per B bounds it.
    r = seed_sweep("--seeds", "1,2", "--max-grid-extensions", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "grid B=32: best rate x1 is at the top edge: adding x2" in r.stdout
    assert "grid B=128: best rate x1 is at the top edge: adding x2" in r.stdout
    added = [line.split(": ")[0].split("] ")[1] for line in r.stdout.splitlines() if " ... " in line]
    assert {"B0032-lr0.02-np2-s1", "B0032-lr0.02-np2-s2", "B0128-lr0.08-np2-s1", "B0128-lr0.08-np2-s2"} <= set(added)
    assert 4 <= len(added) <= 8 and len(added) % 2 == 0, r.stdout
    for b in (32, 128):
        assert len({n.rsplit("-", 2)[0] for n in added if n.startswith(f"B{b:04d}")}) <= 2
        assert r.stdout.splitlines()[-3:].count(f"grid B={b}: adding") == 0
    # Again: nothing runs, and the sweep records the added runs.
    again = seed_sweep("--seeds", "1,2", "--max-grid-extensions", "2")
    assert again.returncode == 0 and " ... " not in again.stdout, again.stdout
    assert again.stdout.count(": skip (finished") == 4 + len(added)
    with open(os.path.join(seed_sweep.out, "sweep.json")) as f:
        saved = json.load(f)
    ext = [x for x in saved["runs"] if x["grid"] == "extension"]
    assert sorted(x["name"] for x in ext) == sorted(added) and saved["max_grid_extensions"] == 2


def test_the_slurm_array_runs_each_seed(seed_sweep, mpirun):
    import shutil
    shutil.rmtree(os.path.join(seed_sweep.out, "B0032-lr0.01-np2-s3"))
    r = seed_sweep("--seeds", "3", "--slurm", "--slurm-launcher", "mpirun", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    script = os.path.join(seed_sweep.out, "sweep.sbatch")
    # Seed by seed: seed 3's B=32 run is task 4, the only unfinished one.
    assert f"would submit: sbatch --ntasks=2 --array=4 {script}" in r.stdout, r.stdout
    with open(script) as f:
        trains = [line for line in f if line.strip().startswith("train=(")]
    assert [t.count(f"--eval-every-steps 4 --seed {s})") for t, s in zip(trains, (1, 1, 2, 2, 3, 3))] == [1] * 6
    env = dict(os.environ, PATH=os.path.dirname(mpirun[0]) + ":" + os.environ["PATH"], SLURM_ARRAY_TASK_ID="4",
               SLURM_NTASKS="2", SWEEP_LAUNCHER="mpirun")
    r = run(["bash", script], env=env)
    assert r.returncode == 0 and "run B0032-lr0.01-np2-s3 on 2 rank(s)" in r.stdout, r.stdout + r.stderr
    with open(os.path.join(seed_sweep.out, "B0032-lr0.01-np2-s3", "config.ini")) as f:
        assert "seed = 3" in f.read()
    r = run(["bash", script], env=dict(env, SLURM_ARRAY_TASK_ID="5"))
    assert r.returncode == 0 and "skip B0128-lr0.04-np2-s3: finished" in r.stdout
