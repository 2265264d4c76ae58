"""scripts/report.py on hand-made sweeps (fake_sweep.py): its files, and the
numbers in summary.md and report.json against the inputs."""

import json
import os
import shutil

import pytest

from fake_sweep import add_eval_lines, add_one_rank_run, make_fake_sweep, make_seed_sweep, set_deterministic
from helpers import in_process, is_png, one_error_line, table_rows
from mpitrain_study import report as report_tool
from mpitrain_study import runs

PNGS = ("steps_to_target", "samples_to_target", "noise_scale", "time_split")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_fake_sweep(str(tmp_path_factory.mktemp("fake") / "sweep"))


@pytest.fixture(scope="module")
def report(fake, tool, tmp_path_factory):
    """The report of the one-seed sweep."""
    out = str(tmp_path_factory.mktemp("fake-report"))
    r = tool("report", fake, "--out", out)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(out, "summary.md")) as f:
        summary = f.read()
    with open(os.path.join(out, "report.json")) as f:
        data = json.load(f)
    return dict(out=out, stdout=r.stdout, summary=summary, json=data, rows=table_rows(summary))


def best_rows(rows):
    """The table of the best rate per B (the table of every rate has 'k of n' in column 5, not 4)."""
    return {r[0]: r for r in rows if len(r) == 9 and r[0].isdigit() and (" of " in r[3] or r[3] == "-")}


def run_rows(rows):
    return {r[0]: r for r in rows if len(r) == 15 and r[0].startswith("B")}


def slope_rows(rows):
    return {r[0]: r for r in rows if len(r) == 4 and "->" in r[0]}


def test_report_files(report):
    for png in PNGS:
        assert is_png(os.path.join(report["out"], f"{png}.png")), png
    # One rank count: no vs-ranks plots, and the summary says why.
    assert not os.path.exists(os.path.join(report["out"], "ranks.png"))
    assert not os.path.exists(os.path.join(report["out"], "time_to_target_vs_ranks.png"))
    assert "one rank count" in report["summary"]
    assert "report: one rank count: the vs-ranks plots are skipped" in report["stdout"]


def test_best_rate_per_batch(report):
    best = best_rows(report["rows"])
    assert [best[b][4] for b in ("64", "128", "256", "512")] == ["300", "200", "150", "125"]
    assert [best[b][1] for b in ("64", "128", "256", "512")] == ["0.02", "0.02", "0.08", "0.08"]
    assert [best[b][5] for b in ("64", "128", "256", "512")] == ["19200", "25600", "38400", "64000"]
    assert [best[b][3] for b in ("64", "128", "256", "512")] == ["1 of 1"] * 4
    assert "no rate reached the target" in best["1024"][8]


def test_one_seed_gives_point_slopes_and_no_intervals(report):
    # log(200/300)/log 2 = -0.58, log(150/200)/log 2 = -0.42, log(125/150)/log 2 = -0.26: no interval.
    slopes = slope_rows(report["rows"])
    assert [slopes[k][1:3] for k in ("64 -> 128", "128 -> 256", "256 -> 512")] == \
        [["-0.58", "- (one seed)"], ["-0.42", "- (one seed)"], ["-0.26", "- (one seed)"]]
    assert slopes["64 -> 128"][3] == "diminishing returns (point slope, no interval)"
    assert "No intervals: every B has one seed" in report["summary"]
    assert report["json"]["bootstrap"]["resampled"] is False


def test_fit_in_the_summary(report):
    rows = {r[0]: r[1:] for r in report["rows"] if len(r) == 3}
    assert rows["S_min (fewest steps, B -> inf)"] == ["100", "100"]
    assert rows["E_min (fewest samples, B -> 0)"] == ["12800", "12800"]
    assert rows["B_crit = E_min / S_min"] == ["128", "128"]
    fit = report["json"]["fit"]
    assert fit["b_crit"] == pytest.approx(128, abs=1e-6) and fit["problem"] is None
    assert "fit S(B) = 100 + 1.28e+04/B: S_min 100, E_min 1.28e+04, B_crit 128 (R^2 1.000)" in report["stdout"]


def test_every_run_is_listed(report):
    every = run_rows(report["rows"])
    assert len(every) == 10
    assert every["B0512-lr0.16-np2"][6] == "**diverged** at step 7"
    assert every["B0064-lr0.01-np2"][6] == "**not reached**" and every["B0064-lr0.01-np2"][8] == "(2000)"
    assert every["B1024-lr0.16-np2"][6] == "**unfinished**"
    assert every["B1024-lr0.32-np2"][6] == "**not run**"
    assert "Runs: 10: 6 reached the target, 1 did not, 1 diverged, 1 unfinished, 1 not run." in report["summary"]
    assert {r["name"]: r["status"] for r in report["json"]["runs"]}["B0512-lr0.16-np2"] == runs.STATUS_DIVERGED


def test_the_summary_says_whether_runs_were_deterministic(report):
    # The fake runs' headers have no "deterministic" (a trainer from before the option): not deterministic.
    assert "Deterministic (`--deterministic`): **no**, none of the 9 runs." in report["summary"]
    assert report["json"]["all_deterministic"] is False
    assert {r["deterministic"] for r in report["json"]["runs"]} == {False, None}  # None: the run never started


def test_require_deterministic(fake, tmp_path):
    # Not deterministic (no "deterministic" in the headers): refused, naming the runs, nothing written.
    r = in_process(report_tool.main, [fake, "--require-deterministic", "--out", tmp_path / "refused"])
    assert r.returncode != 0
    assert one_error_line(r.stderr, "report: error:", "--require-deterministic: 9 of 9 runs were not trained with "
                          "--deterministic (metrics header \"deterministic\" missing or false): B0064-lr0.01-np2, "), \
        r.stderr
    assert "and 1 more" in r.stderr and not os.path.exists(tmp_path / "refused")
    # Every run deterministic: accepted, and the summary says so.
    sweep = str(tmp_path / "sweep")
    shutil.copytree(fake, sweep)
    set_deterministic(sweep, 32)
    r = in_process(report_tool.main, [sweep, "--require-deterministic", "--out", tmp_path / "out"])
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "out" / "summary.md") as f:
        assert "Deterministic (`--deterministic`): **all** 9 runs (units of 32 rows)" in f.read()
    with open(tmp_path / "out" / "report.json") as f:
        data = json.load(f)
    assert data["all_deterministic"] is True
    assert {r["name"]: r["deterministic_unit"] for r in data["runs"]}["B0128-lr0.02-np2"] == 32
    # One run trained without --deterministic ("deterministic": false): refused, naming that run only.
    set_deterministic(sweep, 0, ["B0128-lr0.02-np2"])
    r = in_process(report_tool.main, [sweep, "--require-deterministic", "--out", tmp_path / "again"])
    assert r.returncode != 0 and one_error_line(r.stderr, "report: error:", "1 of 9 runs were not trained with "
                                                "--deterministic (metrics header \"deterministic\" missing or "
                                                "false): B0128-lr0.02-np2"), r.stderr
    assert not os.path.exists(tmp_path / "again")
    # Without the option the report is written, and says which run was not deterministic.
    r = in_process(report_tool.main, [sweep, "--out", tmp_path / "mixed"])
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "mixed" / "summary.md") as f:
        assert ("Deterministic (`--deterministic`): **not all**, 8 of 9 runs (units of 32 rows); "
                "not: B0128-lr0.02-np2.") in f.read()


def test_noise_scale_at_the_target(report):
    # The best runs' last epoch line holds noise_scale = 100 each.
    assert "Median B_simple at the target over the B values: **100**." in report["summary"]


def test_too_few_points_and_several_rank_counts(fake, tmp_path):
    few = str(tmp_path / "few")
    shutil.copytree(fake, few)
    for d in os.listdir(few):
        if d.startswith(("B0256-", "B0512-")):
            shutil.rmtree(os.path.join(few, d))
    add_one_rank_run(few)
    r = in_process(report_tool.main, [few])
    assert r.returncode == 0, r.stderr
    assert "no fit: only 2 global batch size(s) reached the target; the fit needs at least 3" in r.stdout
    assert is_png(os.path.join(few, "report", "ranks.png"))
    assert is_png(os.path.join(few, "report", "time_to_target_vs_ranks.png"))
    with open(os.path.join(few, "report", "summary.md")) as f:
        summary = f.read()
    # B=128: 21333 samples/s on 1 rank, 32000 on 2: speed-up 1.5, efficiency 0.75.
    assert "| 128 | 1 | 21333 | 1.00 |" in summary and "| 128 | 2 | 32000 | 0.75 |" in summary
    assert "| 128 | 1 | 3.00 |" in summary and "| 128 | 2 | 2.00 |" in summary
    assert "No fit: only 2" in summary


def test_interpolated_steps(fake, tmp_path):
    # B=64 x2 reached test_acc >= 0.8 at epoch 2 (step 300, 19200 samples,
    # 1.0 s); with 0.70 after epoch 1 (step 200, 12800 samples, 0.5 s) and
    # 0.90 after epoch 2, --interpolate puts the crossing half-way.
    sweep = str(tmp_path / "sweep")
    shutil.copytree(fake, sweep)
    path = os.path.join(sweep, "B0064-lr0.02-np2", "metrics.jsonl")
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    for line in lines:
        if line["type"] == "epoch":
            line["test_acc"] = {1: 0.70, 2: 0.90}[line["epoch"]]
    with open(path, "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
    r = in_process(report_tool.main, [sweep, "--out", tmp_path / "out", "--interpolate"])
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "out" / "report.json") as f:
        data = json.load(f)
    assert data["interpolated"] is True
    run = {x["name"]: x for x in data["runs"]}["B0064-lr0.02-np2"]
    assert (run["S"], run["E"], run["T"]) == pytest.approx((250, 16000, 0.75))
    with open(tmp_path / "out" / "summary.md") as f:
        summary = f.read()
    assert "**interpolated**" in summary
    # The table of every run keeps the recorded steps beside the interpolated ones.
    assert run_rows(table_rows(summary))["B0064-lr0.02-np2"][8:10] == ["300", "250"]
    assert "interpolated** (`--interpolate`): the target is checked at the end of the epoch" in summary


def test_report_errors(fake, tmp_path):
    r = in_process(report_tool.main, [tmp_path / "absent"])
    assert r.returncode != 0 and one_error_line(r.stderr, "report: error:", "is not a directory")
    r = in_process(report_tool.main, [fake, "--bootstrap", "10", "--out", tmp_path / "x"])
    assert r.returncode != 0 and one_error_line(r.stderr, "report: error:", "--bootstrap must be >= 100")
    r = in_process(report_tool.main, [fake, "--level", "1", "--out", tmp_path / "x"])
    assert r.returncode != 0 and one_error_line(r.stderr, "report: error:", "--level must be in [0.5, 1)")
    empty = tmp_path / "empty"
    empty.mkdir()
    r = in_process(report_tool.main, [empty])
    assert r.returncode != 0 and one_error_line(r.stderr, "report: error:", "no run directories in")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """The report of the 3-seed sweep (fake_sweep.SEED_STEPS)."""
    sweep = make_seed_sweep(str(tmp_path_factory.mktemp("seeds") / "sweep"))
    out = str(tmp_path_factory.mktemp("seeds-report"))
    r = in_process(report_tool.main, [sweep, "--out", out])
    assert r.returncode == 0, r.stderr
    with open(os.path.join(out, "summary.md")) as f:
        summary = f.read()
    with open(os.path.join(out, "report.json")) as f:
        data = json.load(f)
    return dict(sweep=sweep, out=out, stdout=r.stdout, summary=summary, json=data, rows=table_rows(summary))


def test_seeds_are_averaged_not_minimised(seeds):
    best = best_rows(seeds["rows"])
    # B=256: lr 0.08 (mean 150) beats lr 0.16 (mean 155), although lr 0.16's seed 1 took 120 steps.
    assert best["256"][1:6] == ["0.08", "1", "3 of 3", "150 ± 10", "38400 ± 2560"]
    assert [best[b][4] for b in ("64", "128", "512")] == ["300 ± 20", "200 ± 10", "125 ± 10"]
    data = seeds["json"]["best"]["256"]
    assert data["S"] == pytest.approx(150) and data["S_sd"] == pytest.approx(10) and data["seed_S"] == [140, 150, 160]


def test_a_rate_with_a_missed_seed_is_listed_and_not_chosen(seeds):
    # B=64 lr 0.04: 250 and 240 steps (mean 245 < 300), but seed 2 missed: lr 0.02 is the best rate.
    assert best_rows(seeds["rows"])["64"][1] == "0.02"
    rates = {(r[0], r[1]): r for r in seeds["rows"] if len(r) == 9 and r[0].isdigit() and "of" in r[4]}
    assert rates[("64", "0.04")][4:] == ["2 of 3", "245 ± 7", "1: 250, 3: 240", "",
                                         "seed 2: not reached (2000 steps)"]
    assert rates[("64", "0.02")][7] == "yes"
    assert run_rows(seeds["rows"])["B0064-lr0.04-np2-s2"][5:7] == ["2", "**not reached**"]


def test_bootstrap_intervals_under_both_weightings(seeds):
    rows = {r[0]: r[1:] for r in seeds["rows"] if len(r) == 3}
    # The seed means follow S = 100 + 12800/B exactly; the intervals come from the seeds' spread.
    unweighted, weighted = rows["B_crit = E_min / S_min"]
    assert unweighted.startswith("128 (") and weighted.startswith("128 (")
    boot = seeds["json"]["bootstrap"]
    for name in ("unweighted", "relative"):
        b = boot[name]
        assert b["b_crit"] == pytest.approx(128)
        assert b["b_crit_ci"][0] < 128 < b["b_crit_ci"][1]
        assert b["s_min_ci"][0] < 100 < b["s_min_ci"][1] and b["e_min_ci"][0] < 12800 < b["e_min_ci"][1]
    assert boot["seeds"] == {"64": 3, "128": 3, "256": 3, "512": 3}
    assert "95% intervals from 2000 bootstrap replicates that resample the seeds within each B" in seeds["summary"]
    assert "report: unweighted: B_crit 128 (" in seeds["stdout"]


def test_the_report_is_reproducible(seeds, tmp_path):
    r = in_process(report_tool.main, [seeds["sweep"], "--out", tmp_path])
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "summary.md") as f:
        assert f.read().replace(str(tmp_path), "OUT") == seeds["summary"].replace(seeds["out"], "OUT")


def test_slopes_with_intervals_and_regimes(seeds):
    slopes = slope_rows(seeds["rows"])
    assert set(slopes) == {"64 -> 128", "128 -> 256", "256 -> 512"}
    for row in slopes.values():
        lo, hi = (float(x) for x in row[2].split(" to "))
        assert lo < float(row[1]) < hi
    assert slopes["64 -> 128"][3] == "diminishing returns"
    assert "Regimes: **diminishing returns** for B 64 -> 512." in seeds["summary"]


def test_eval_lines_count_and_interpolate(tmp_path):
    # B=64 x2 (one seed): epoch 1 ends at step 200 with test_acc 0.55; evaluations every 25 steps after it
    # reach 0.78 at step 250 and 0.82 at step 275, where the target (0.8) is recorded. --interpolate places
    # the crossing between those two evaluations, at step 262.5, not between the epoch ends.
    sweep = str(tmp_path / "sweep")
    shutil.copytree(make_fake_sweep(str(tmp_path / "fake")), sweep)
    add_eval_lines(os.path.join(sweep, "B0064-lr0.02-np2"), [(225, 0.7), (250, 0.78), (275, 0.82)], 25)
    r = in_process(report_tool.main, [sweep, "--out", tmp_path / "plain"])
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "plain" / "summary.md") as f:
        summary = f.read()
    assert "at the evaluation steps (`--eval-every-steps 25`) for 1 of 9 runs" in summary
    recorded, interpolated = run_rows(table_rows(summary))["B0064-lr0.02-np2"][8:10]
    assert recorded == "275" and interpolated in ("262", "263")  # 262.5, up to rounding
    r = in_process(report_tool.main, [sweep, "--out", tmp_path / "interp", "--interpolate"])
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "interp" / "report.json") as f:
        run = {x["name"]: x for x in json.load(f)["runs"]}["B0064-lr0.02-np2"]
    assert run["counted_at"] == "eval"
    assert (run["S"], run["E"]) == pytest.approx((262.5, 262.5 * 64))


def test_the_summary_says_counts_are_at_eval_steps(tmp_path):
    sweep = make_fake_sweep(str(tmp_path / "sweep"))
    for d in sorted(os.listdir(sweep)):
        if os.path.exists(os.path.join(sweep, d, "summary.json")) and "B0512-lr0.16" not in d:
            add_eval_lines(os.path.join(sweep, d), [], 10)
    r = in_process(report_tool.main, [sweep, "--out", tmp_path / "out"])
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "out" / "summary.md") as f:
        summary = f.read()
    assert "counted at the evaluation steps (`--eval-every-steps 10`" in summary, summary[:1500]
    assert "at the end of the epoch" not in summary


def test_target_hold_from_the_sweep_plan(tmp_path):
    # sweep.py --target-hold K: B=64 x2 has test_acc 0.81, 0.82, 0.83 at the eval steps 225, 250, 275 and
    # 0.60 at the epoch end (step 300): it holds 3 evaluations from step 225, never 4.
    for hold, status, steps in ((3, runs.STATUS_REACHED, 225), (4, runs.STATUS_MISSED, None)):
        sweep = make_fake_sweep(str(tmp_path / f"hold{hold}"))
        add_eval_lines(os.path.join(sweep, "B0064-lr0.02-np2"), [(225, 0.81), (250, 0.82), (275, 0.83)], 25)
        with open(os.path.join(sweep, "sweep.json")) as f:
            plan = json.load(f)
        for r in plan["runs"]:
            r["target_hold"] = hold
        with open(os.path.join(sweep, "sweep.json"), "w") as f:
            json.dump(plan, f)
        r = in_process(report_tool.main, [sweep, "--out", tmp_path / f"out{hold}"])
        assert r.returncode == 0, r.stderr
        with open(tmp_path / f"out{hold}" / "report.json") as f:
            run = {x["name"]: x for x in json.load(f)["runs"]}["B0064-lr0.02-np2"]
        assert (run["status"], run["S"]) == (status, steps)
        with open(tmp_path / f"out{hold}" / "summary.md") as f:
            assert f"held for {hold} consecutive evaluations" in f.read()


def test_the_best_rate_is_chosen_by_recorded_steps_as_the_sweep_does():
    # Evaluations every 20 steps: x1 records 220 (interpolated 201), x2 records 200 (interpolated 205).
    # The sweep's grid extension ranked x2 first by the recorded counts; --interpolate must not swap them.
    def reached(lr, mult, recorded, interpolated):
        r = dict(name=f"B0128-lr{lr}-np2", B=128, lr=lr, multiplier=mult, seed=None, status=runs.STATUS_REACHED,
                 S=recorded, E=recorded * 128, T=recorded * 0.01, steps_run=recorded,
                 S_interp=interpolated, E_interp=interpolated * 128, T_interp=interpolated * 0.01)
        return r
    rs = [reached(0.02, 1, 220, 201), reached(0.04, 2, 200, 205)]
    runs.use_interpolated(rs)
    best = runs.best_per_batch(rs)[128]
    assert (best["lr"], best["S"], best["S_recorded"]) == (0.04, 205, 200)
