"""scripts/plan.py, the (B, P) planner: on the hand-made seed sweep (S = 100 +
12800/B exactly, B_crit 128) and the synthetic benches of test_perf_model,
the best B per P is the argmin of S(B) x step time over its candidates, the
frontier holds exactly the (P, B) no other beats on both time and node-hours,
node-hours count nodes of --ranks-per-node ranks, intervals hold the point;
the one-run noise-scale path; the refusals."""
import json
import math
import os

import pytest

from fake_sweep import make_fake_sweep, make_seed_sweep
from helpers import in_process, is_png
from mpitrain_study import plan as plan_tool
from test_perf_model import BENCH1, BENCH4, write_json


@pytest.fixture(scope="module")
def benches(tmp_path_factory):
    d = tmp_path_factory.mktemp("plan_bench")
    return [write_json(d / "bench1.json", BENCH1), write_json(d / "bench4.json", BENCH4)]


def run_plan(tmp_path, benches, mpitrain, *args):
    out = str(tmp_path / "plan")
    r = in_process(plan_tool.main, [*args, "--bench", *benches, "--mpitrain", mpitrain, "--comm-fit", "bench",
                                    "--ranks", "1,2,4,8,16", "--batch-min", "64", "--batch-max", "4096",
                                    "--ranks-per-node", "4", "--out", out])
    data = None
    if os.path.isfile(os.path.join(out, "plan.json")):
        with open(os.path.join(out, "plan.json")) as f:
            data = json.load(f)
    return r, data, out


def test_best_batch_frontier_and_node_hours(tmp_path, benches, mpitrain):
    sweep = make_seed_sweep(str(tmp_path / "sweep"))
    r, data, out = run_plan(tmp_path, benches, mpitrain, "--sweep", sweep)
    assert r.returncode == 0, r.stderr
    assert "S(B) = 100 + 1.28e+04/B" in r.stdout
    rows = data["rows"]
    assert {(x["P"], x["B"]) for x in rows} == {(p, b) for p in (1, 2, 4, 8, 16) for b in (64, 128, 256, 512, 1024,
                                                                                             2048, 4096) if b >= p}
    for x in rows:
        assert x["steps"] == pytest.approx(100 + 12800 / x["B"])
        assert x["time_s"] == pytest.approx(x["steps"] * x["step_s"])
        assert x["nodes"] == math.ceil(x["P"] / 4)
        assert x["node_hours"] == pytest.approx(x["time_s"] * x["nodes"] / 3600)
        assert x["time_lo"] <= x["time_s"] * (1 + 1e-9) and x["time_hi"] >= x["time_s"] * (1 - 1e-9)
    for b in data["best"]:
        assert b["time_s"] == min(x["time_s"] for x in rows if x["P"] == b["P"])
    front = data["frontier"]
    key = lambda x: (x["P"], x["B"])  # noqa: E731
    dominated = {key(x) for x in rows for y in rows
                 if y["time_s"] <= x["time_s"] and y["node_hours"] <= x["node_hours"]
                 and (y["time_s"] < x["time_s"] or y["node_hours"] < x["node_hours"])}
    assert {key(x) for x in front} == {key(x) for x in rows} - dominated
    assert is_png(os.path.join(out, "plan.png"))
    assert "## Frontier" in open(os.path.join(out, "plan.md")).read()


def test_swept_batches_take_their_seed_means_others_the_fit(tmp_path, benches, mpitrain):
    # Seed means 320, 180, 160, 110 at B = 64 ... 512: off the line S_min + E_min/B, so a swept B's
    # steps (the measurement) and the fit there differ; an unswept B (1024 ...) takes the fit.
    import json as js
    import numpy as np
    from fake_sweep import run as fake_run
    out = str(tmp_path / "sweep")
    os.makedirs(out)
    seeds = {64: [300, 320, 340], 128: [170, 180, 190], 256: [150, 160, 170], 512: [100, 110, 120]}
    plan = [fake_run(out, b, 0.01 * b / 64, 1, "reached", s, 50, seed=i + 1)
            for b, v in seeds.items() for i, s in enumerate(v)]
    with open(os.path.join(out, "sweep.json"), "w") as f:
        js.dump(dict(name="off-line", target="test_acc>=0.8", runs=plan), f)
    r, data, _ = run_plan(tmp_path, benches, mpitrain, "--sweep", out)
    assert r.returncode == 0, r.stderr
    bs = sorted(seeds)
    (s_min, e_min), *_ = np.linalg.lstsq(np.column_stack([np.ones(4), 1.0 / np.array(bs, float)]),
                                         np.array([np.mean(seeds[b]) for b in bs]), rcond=None)
    for x in data["rows"]:
        if x["B"] in seeds:
            assert x["steps"] == pytest.approx(np.mean(seeds[x["B"]]))
            assert abs(x["steps"] - (s_min + e_min / x["B"])) > 1  # the fit would have given another value
        else:
            assert x["steps"] == pytest.approx(s_min + e_min / x["B"])
        assert x["time_lo"] <= x["time_s"] * (1 + 1e-9) and x["time_hi"] >= x["time_s"] * (1 - 1e-9)
    assert "seed mean" in r.stdout


def test_one_run_with_its_noise_scale(tmp_path, benches, mpitrain):
    # B=128 x1 of the fake sweep: 200 steps to the target, B_simple 80 at its last epoch line (the target).
    sweep = make_fake_sweep(str(tmp_path / "fake"))
    r, data, _ = run_plan(tmp_path, benches, mpitrain, "--noise-run", os.path.join(sweep, "B0128-lr0.02-np2"))
    assert r.returncode == 0, r.stderr
    s_min = 200 / (1 + 80 / 128)
    assert all(x["steps"] == pytest.approx(s_min * (1 + 80 / x["B"])) for x in data["rows"])
    assert all(x["time_lo"] is None for x in data["rows"]) and "no interval" in r.stdout


def test_refusals(tmp_path, benches, mpitrain):
    sweep = make_fake_sweep(str(tmp_path / "fake"))
    # The fake sweep's missed run never reached its target; 3 B reached it in make_fake_sweep, so cut it to 2.
    two = str(tmp_path / "two")
    os.makedirs(two)
    for name in ("B0128-lr0.02-np2", "B0256-lr0.08-np2"):
        os.symlink(os.path.join(sweep, name), os.path.join(two, name))
    r, _, _ = run_plan(tmp_path, benches, mpitrain, "--sweep", two)
    assert r.returncode != 0 and "fewer than 3 batch sizes" in r.stderr
    r, _, _ = run_plan(tmp_path, benches, mpitrain, "--noise-run", os.path.join(sweep, "B0064-lr0.01-np2"))
    assert r.returncode != 0 and "no run that reached its target" in r.stderr
