"""scripts/plan_validate.py on tiny real runs: the frontier points it picks
(distinct P, spread), each run with the config of the sweep's best-rate run
at its B on P ranks, the table of predicted against measured training time,
the exit code from --tolerance, and a re-run that trains nothing."""
import json
import os
import shlex

from fake_sweep import make_seed_sweep
from helpers import run
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
    point = lambda p, b: dict(P=p, B=b, time_s=0.05, time_lo=0.04, time_hi=0.06, steps=20, step_s=0.0025)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(dict(frontier=[point(1, 128), point(2, 256)])))
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
    assert "| 2 | 256 |" in open(os.path.join(out, "validation.md")).read()
    again = tool("plan_validate", *args, "--tolerance", "0", timeout=60)
    assert again.returncode == 1 and again.stdout.count("skip (finished)") == 2, again.stdout
