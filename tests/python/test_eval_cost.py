"""mpitrain_study/eval_cost.py, the training time an evaluation costs besides
its own: the formula against values worked by hand from a synthetic pair of
runs (with and without evaluation), the evaluations a run does before a step
(epoch ends taking the place of mid-epoch ones), the refusals, and plan.py
adding the term to every row's time (the one P's cost at every P)."""
import math
import os

import pytest

from fake_sweep import make_seed_sweep
from helpers import in_process
from mpitrain_study import plan as plan_tool
from mpitrain_study.eval_cost import eval_costs, evaluations_before
from test_perf_model import BENCH1, BENCH4, write_json, write_lines

STEPS = 100  # per epoch


def run_dir(path, P, B, epoch_s, data_s, prefetch, evals_per_epoch):
    """Three epochs of STEPS steps at (P, B); the first is slow and must not count."""
    lines = [dict(type="header", ranks=P, nodes=1, threads_per_rank=1, model="16-32-4", params=676,
                  config={"global-batch": str(B), "prefetch": "true" if prefetch else "false",
                          "eval-every-steps": "10" if evals_per_epoch else "0"})]
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
    # With evaluation: 120 ms per epoch, 9 mid-epoch evaluations per epoch; without: 110 ms per epoch.
    a = run_dir(tmp_path / "eval-np2", 2, 64, 0.120, 0.001, True, 9)
    q = run_dir(tmp_path / "quiet-np2", 2, 64, 0.110, 0.001, True, 0)
    return a, q


def test_cost_per_evaluation_by_hand(pair):
    costs = eval_costs(list(pair))
    # Steady epochs 2 and 3: 200 steps, 18 mid-epoch evaluations + the ends of epochs 1 and 2 = 20.
    # (1.2 ms - 1.1 ms) x 200 / 20 = 1.0 ms per evaluation.
    assert set(costs) == {2}
    assert costs[2][0] == pytest.approx(1.0e-3)
    assert "20 evaluations in 200 steps" in costs[2][1]


def test_a_faster_run_with_evaluation_costs_nothing(tmp_path):
    a = run_dir(tmp_path / "eval", 4, 128, 0.090, 0.001, True, 9)
    q = run_dir(tmp_path / "quiet", 4, 128, 0.110, 0.001, True, 0)
    cost, note = eval_costs([a, q])[4]
    assert cost == 0.0 and "counted as 0" in note


def test_evaluations_before():
    # Evaluations at steps 1 .. S-1 (the one at S finds the target): every 10 global steps and at
    # each epoch end (30 steps), one evaluation where both fall (30, 60, 90).
    assert evaluations_before(100, 10, 30) == 9 + 3 - 3
    assert evaluations_before(101, 10, 30) == 10 + 3 - 3
    assert evaluations_before(100, 7, 30) == 14 + 3 - 0
    assert evaluations_before(100, 0, 30) == 3
    assert evaluations_before(31, None, 30) == 1
    assert evaluations_before(30, None, 30) == 0
    assert evaluations_before(100, None, None) == 0


def test_refusals(tmp_path, pair):
    a, q = pair
    other = run_dir(tmp_path / "quiet-B128", 2, 128, 0.110, 0.001, True, 0)
    with pytest.raises(SystemExit) as e:
        eval_costs([a, other])
    assert "P = 2, B = 64: 1 run(s) with evaluations and 0 without" in str(e.value)
    twice = run_dir(tmp_path / "eval-again", 2, 64, 0.120, 0.001, True, 9)
    with pytest.raises(SystemExit) as e:
        eval_costs([a, twice, q])
    assert "2 run(s) with evaluations and 1 without" in str(e.value)
    unfetched = run_dir(tmp_path / "quiet-noprefetch", 2, 64, 0.110, 0.005, False, 0)
    with pytest.raises(SystemExit) as e:
        eval_costs([a, unfetched])
    assert "differ in --prefetch" in str(e.value)


def test_plan_adds_the_evaluations_aftermath(tmp_path, pair, mpitrain):
    # The cost measured at P = 2 (1 ms) applies at every P; the sweep's runs evaluate every 7 steps
    # and at epoch ends (12800 rows per epoch).
    import json
    sweep = make_seed_sweep(str(tmp_path / "sweep"))
    for name in os.listdir(sweep):
        path = os.path.join(sweep, name, "metrics.jsonl")
        if os.path.isfile(path):
            with open(path) as f:
                lines = [json.loads(line) for line in f]
            lines[0]["config"]["eval-every-steps"] = "7"
            with open(path, "w") as f:
                f.writelines(json.dumps(line) + "\n" for line in lines)
    benches = [write_json(tmp_path / "b1.json", BENCH1), write_json(tmp_path / "b4.json", BENCH4)]
    out = str(tmp_path / "plan")
    common = ["--sweep", sweep, "--bench", *benches, "--mpitrain", mpitrain, "--comm-fit", "bench",
              "--ranks", "1,2,4", "--batch-min", "64", "--batch-max", "1024", "--no-plot"]
    r = in_process(plan_tool.main, [*common, "--eval-runs", *pair, "--out", out])
    assert r.returncode == 0, r.stderr
    with open(os.path.join(out, "plan.json")) as f:
        rows = json.load(f)["rows"]
    r0 = in_process(plan_tool.main, [*common, "--out", out + "-none"])
    assert r0.returncode == 0, r0.stderr
    with open(os.path.join(out + "-none", "plan.json")) as f:
        rows0 = {(x["P"], x["B"]): x for x in json.load(f)["rows"]}
    for x in rows:
        evals = evaluations_before(x["steps"], 7, math.ceil(12800 / x["B"]))
        assert evals > x["steps"] / 7 - 2
        assert x["eval_s"] == pytest.approx(evals * 1.0e-3)
        assert x["time_s"] == pytest.approx(rows0[(x["P"], x["B"])]["time_s"] + evals * 1.0e-3)
        assert x["time_lo"] <= x["time_s"] <= x["time_hi"]
    assert "1 ms per evaluation" in r.stdout
    assert "not counted (no --eval-runs)" in r0.stdout
