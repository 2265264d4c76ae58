"""scripts/plan_validate.py on tiny real runs: the frontier points it picks
(distinct P, spread), each run with the config of the sweep's best-rate run
at its B on P ranks, the table of predicted against measured training time, the plan's BLAS
threads per rank passed to each run,
the exit code from --tolerance, a re-run that trains nothing, and --at's
rows of the plan (and its refusals)."""
import json
import os
import shlex

from fake_sweep import make_seed_sweep
from helpers import SCRIPTS, run
from mpitrain_study.plan_validate import pick_points


def test_pick_points_spreads_over_distinct_ranks():
    front = [dict(P=p, B=b, time_s=t) for p, b, t in [(1, 64, 9), (1, 128, 8), (2, 128, 5), (4, 256, 3),
                                                         (8, 512, 2), (16, 512, 1.5)]]
    assert [(r["P"], r["B"]) for r in pick_points(front, 3)] == [(1, 128), (4, 256), (16, 512)]
    assert [r["P"] for r in pick_points(front, 10)] == [1, 2, 4, 8, 16]


def test_validates_frontier_points_with_real_runs(tmp_path, mpitrain, make_test_dataset, mpirun, tool):
    data = str(tmp_path / "data.h5")
    assert run([make_test_dataset, "good", data, 512, 16]).returncode == 0
    sweep = make_seed_sweep(str(tmp_path / "sweep"))
    for name in os.listdir(sweep):  # every run's recorded config, made runnable on the tiny data
        if os.path.isdir(os.path.join(sweep, name)):
            b = int(name[1:5])
            with open(os.path.join(sweep, name, "config.ini"), "w") as f:
                f.write(f"data = {data}\nmodel = 16-32-4\nglobal-batch = {b}\nlr = 0.05\nmomentum = 0.9\n"
                        "epochs = 30\ntarget = test_acc>=0.9\nstop-at-target = true\neval-every-steps = 2\n")
    point = lambda p, b, t: dict(P=p, B=b, time_s=0.05, time_lo=0.04, time_hi=0.06, steps=20, step_s=0.0025,
                                 threads=t)
    plan = tmp_path / "plan.json"
    # P = 1 with the bench's 3 BLAS threads (the default would be the node's cores); P = 2 without a count.
    plan.write_text(json.dumps(dict(frontier=[point(1, 128, 3), point(2, 256, None)],
                                    rows=[point(1, 128, 3), point(2, 256, None), point(2, 512, None)])))
    out = str(tmp_path / "val")
    args = ["--plan", str(plan), "--sweep", sweep, "--seeds", "1", "--mpitrain", mpitrain,
            "--launcher", shlex.join(mpirun) + " -np {P}", "--out", out]
    r = tool("plan_validate", *args, "--tolerance", "1000", timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(out, "validation.json")) as f:
        rows = json.load(f)
    assert [(x["P"], x["B"], x["reached"]) for x in rows] == [(1, 128, 1), (2, 256, 1)]
    for x in rows:
        assert x["measured_s"] > 0 and x["measured_steps"] > 0
        assert abs(x["error"] - (x["measured_s"] / 0.05 - 1)) < 1e-9
    with open(os.path.join(out, "P2-B00256-s1", "metrics.jsonl")) as f:
        header = json.loads(f.readline())
    assert header["ranks"] == 2 and header["config"]["global-batch"] == "256"
    assert header["config"]["threads"] == "0"  # the config's (this one sets none: the trainer's rule)
    with open(os.path.join(out, "P1-B00128-t3-s1", "metrics.jsonl")) as f:
        header = json.loads(f.readline())
    assert header["threads_per_rank"] == 3 and header["config"]["threads"] == "3"
    assert [(x["threads"], x["measured_se"]) for x in rows] == [(3, None), (None, None)]  # one seed: no se
    assert "| 2 | 256 |" in open(os.path.join(out, "validation.md")).read()
    again = tool("plan_validate", *args, "--tolerance", "0", timeout=60)
    assert again.returncode == 1 and again.stdout.count("skip (finished)") == 2, again.stdout
    # --at: chosen rows of the plan (finished runs are skipped), and rows it does not have.
    at = tool("plan_validate", *args, "--tolerance", "1000", "--at", "2:256", timeout=60)
    assert at.returncode == 0 and at.stdout.count("skip (finished)") == 1, at.stdout
    assert "(the rows of --at)" in at.stdout and "| 2 | 256 |" in at.stdout and "| 1 | 128 |" not in at.stdout
    for bad, phrase in (("4:64", "no row at P = 4, B = 64"), ("2-256", "takes P:B pairs")):
        r = tool("plan_validate", *args, "--at", bad, timeout=60)
        assert r.returncode == 2 and phrase in r.stderr, r.stderr


def test_validate_plan_script_refuses_bad_input_before_any_cluster(tmp_path, mpitrain):
    """scripts/validate_plan.sh: each bad input is one error line and exit 2,
    found before the emulated cluster comes up or anything is written."""
    script = os.path.join(SCRIPTS, "validate_plan.sh")
    sweep = make_seed_sweep(str(tmp_path / "sweep"))
    out = tmp_path / "out"
    base = ["bash", script, "--mpitrain", mpitrain, "--out", str(out)]
    cases = [(["--sweep", str(tmp_path / "none")], "--sweep", "is not a directory"),
             (["--sweep", sweep, "--hosts", "1,two"], "--hosts", "takes host counts"),
             (["--sweep", sweep, "--seeds", "0"], "--seeds", "positive integers"),
             (["--sweep", sweep, "--batch-min", "512", "--batch-max", "64"], "--batch-min", "min <= max"),
             (["--sweep", sweep, "--mpitrain", str(tmp_path / "nothing")], "nothing", "not an executable"),
             (["--sweep", sweep, "--hosts", "0,2"], "--hosts", "1 or more"),
             (["--sweep", sweep, "--rows", "all"], "--rows", "best or frontier"),
             (["--sweep", sweep, "--tolerance", "x"], "--tolerance", "a fraction"),
             (["--sweep", sweep, "--rate", "fast"], "--rate", "a tc rate"),
             (["--sweep", sweep, "--seeds"], "--seeds needs a value"),
             (["--sweep", sweep, "--hosts", "1,8", "--batch-min", "2", "--batch-max", "4"], "--batch-max 4",
              "below 8 hosts"),
             (["--sweep", sweep], "config.ini does not exist", "record no config"),  # the fake runs have none
             (["--sweep", "sweep"], str(tmp_path / "sweep"), "record no config")]  # relative to the caller
    for extra, *phrases in cases:
        r = run(base + extra, timeout=60, cwd=str(tmp_path))
        errors = [line for line in r.stderr.splitlines() if line.startswith("validate_plan: error:")]
        assert r.returncode == 2 and len(errors) == 1, (extra, r.stderr)
        assert all(p in errors[0] for p in phrases), (extra, errors)
    r = run(base + ["--sweep", sweep, "--frobnicate"], timeout=60, cwd=str(tmp_path))
    assert r.returncode == 2 and "unknown option '--frobnicate'" in r.stderr
    assert not out.exists()
