"""mpitrain_study/eval_cost.py, the training time an evaluation costs besides
its own: the formula against values worked by hand from synthetic runs, the
evaluations a run does before a step, the refusals, and plan.py adding the
term to every row's time (one run's cost at the nearest P)."""
import math
import os

import pytest

from fake_sweep import make_seed_sweep
from helpers import in_process
from mpitrain_study import plan as plan_tool
from mpitrain_study.eval_cost import eval_costs, evaluations_before
from mpitrain_study.perf_inputs import load_measured
from test_perf_model import BENCH1, BENCH4, write_json, write_lines

STEPS = 100  # per epoch


def run_dir(path, P, B, epoch_s, data_s, prefetch, evals_per_epoch):
    """Three epochs of STEPS steps at (P, B); the first is slow and must not count."""
    lines = [dict(type="header", ranks=P, nodes=1, threads_per_rank=1, model="16-32-4", params=676,
                  config={"global-batch": str(B), "prefetch": "true" if prefetch else "false",
                          "eval-every-steps": str(STEPS // evals_per_epoch) if evals_per_epoch else "0"})]
    for e in (1, 2, 3):
        for k in range(evals_per_epoch):
            lines.append(dict(type="eval", epoch=e, step=(e - 1) * STEPS + (k + 1) * 10, test_acc=0.5))
        lines.append(dict(type="epoch", epoch=e, step=e * STEPS, steps_in_epoch=STEPS, global_batch=B,
                          epoch_time_s=(5 if e == 1 else 1) * epoch_s, time_data_s=data_s,
                          time_compute_s=0.5 * epoch_s, time_allreduce_s=0.0, time_comm_s=0.0,
                          test_acc=0.5 if evals_per_epoch else None))
    return write_lines(path, lines)


@pytest.fixture()
def pair(tmp_path):
    # With evaluation: 120 ms per epoch, 9 mid-epoch evaluations per epoch; without (no prefetch):
    # 110 ms per epoch, 5 ms of it reads.
    a = run_dir(tmp_path / "eval-np2", 2, 64, 0.120, 0.001, True, 9)
    c = run_dir(tmp_path / "cal-np2", 2, 64, 0.110, 0.005, False, 0)
    return a, c


def test_cost_per_evaluation_by_hand(pair):
    a, c = pair
    costs = eval_costs([a], [load_measured(c, "--calibration")])
    # Steady epochs 2 and 3: 200 steps, 18 mid-epoch evaluations + the ends of epochs 1 and 2 = 20.
    # (1.2 ms - (1.1 ms - 0.05 ms)) x 200 / 20 = 1.5 ms per evaluation.
    assert set(costs) == {2}
    assert costs[2][0] == pytest.approx(1.5e-3)
    assert "20 evaluations in 200 steps" in costs[2][1]


def test_a_faster_run_with_evaluation_costs_nothing(tmp_path):
    a = run_dir(tmp_path / "eval", 4, 128, 0.090, 0.001, True, 9)
    c = run_dir(tmp_path / "cal", 4, 128, 0.110, 0.005, False, 0)
    assert eval_costs([a], [load_measured(c)])[4][0] == 0.0


def test_evaluations_before():
    assert evaluations_before(100, 10, 30) == 10 + 3
    assert evaluations_before(99, 10, 30) == 9 + 3
    assert evaluations_before(100, 0, 30) == 3
    assert evaluations_before(100, None, None) == 0


def test_refusals(tmp_path, pair):
    a, c = pair
    other = run_dir(tmp_path / "cal-B128", 2, 128, 0.110, 0.005, False, 0)
    with pytest.raises(SystemExit) as e:
        eval_costs([a], [load_measured(other)])
    assert "P = 2, B = 64, and no --calibration run is" in str(e.value)
    prefetched = run_dir(tmp_path / "cal-prefetch", 2, 64, 0.110, 0.005, True, 0)
    with pytest.raises(SystemExit) as e:
        eval_costs([a], [load_measured(prefetched)])
    assert "--prefetch false" in str(e.value)
    silent = run_dir(tmp_path / "no-eval", 2, 64, 0.110, 0.005, True, 0)
    with pytest.raises(SystemExit) as e:
        eval_costs([silent], [load_measured(c)])
    assert "evaluated nowhere" in str(e.value)


def test_plan_adds_the_evaluations_aftermath(tmp_path, pair, mpitrain):
    a, c = pair
    sweep = make_seed_sweep(str(tmp_path / "sweep"))
    benches = [write_json(tmp_path / "b1.json", BENCH1), write_json(tmp_path / "b4.json", BENCH4)]
    out = str(tmp_path / "plan")
    common = ["--sweep", sweep, "--bench", *benches, "--mpitrain", mpitrain, "--comm-fit", "bench",
              "--ranks", "1,2,4", "--batch-min", "64", "--batch-max", "1024", "--calibration", c, "--no-plot"]
    r = in_process(plan_tool.main, [*common, "--eval-runs", a, "--out", out])
    assert r.returncode == 0, r.stderr
    import json
    with open(os.path.join(out, "plan.json")) as f:
        rows = json.load(f)["rows"]
    r0 = in_process(plan_tool.main, [*common, "--out", out + "-none"])
    assert r0.returncode == 0, r0.stderr
    with open(os.path.join(out + "-none", "plan.json")) as f:
        rows0 = {(x["P"], x["B"]): x for x in json.load(f)["rows"]}
    for x in rows:
        # The fake sweep's runs evaluate at epoch ends only (12800 rows); the cost is P = 2's at every P.
        evals = math.floor(x["steps"] / math.ceil(12800 / x["B"]))
        assert evals > 0
        assert x["eval_s"] == pytest.approx(evals * 1.5e-3)
        assert x["time_s"] == pytest.approx(rows0[(x["P"], x["B"])]["time_s"] + evals * 1.5e-3)
        assert x["time_lo"] <= x["time_s"] <= x["time_hi"]
    assert "1.5 ms per evaluation" in r.stdout
    assert "not counted (no --eval-runs)" in r0.stdout
