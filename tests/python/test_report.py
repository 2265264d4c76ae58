"""scripts/report.py on hand-made sweeps (fake_sweep.py): its files, and the
numbers in summary.md and report.json against the inputs."""

import json
import os
import shutil

import pytest

from fake_sweep import add_one_rank_run, make_fake_sweep, set_deterministic
from helpers import in_process, is_png, one_error_line, table_rows
from mpitrain_study import report as report_tool
from mpitrain_study import runs

PNGS = ("steps_to_target", "samples_to_target", "noise_scale", "time_split")


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_fake_sweep(str(tmp_path_factory.mktemp("fake") / "sweep"))


@pytest.fixture(scope="module")
def report(fake, tool, tmp_path_factory):
    """The report at --regime-factor 3: perfect scaling up to 42.7 and maximal
    data parallelism from 384 around B_crit 128 (factor 4 would put B=512 on
    the boundary)."""
    out = str(tmp_path_factory.mktemp("fake-report"))
    r = tool("report", fake, "--out", out, "--regime-factor", "3")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(out, "summary.md")) as f:
        summary = f.read()
    with open(os.path.join(out, "report.json")) as f:
        data = json.load(f)
    return dict(out=out, stdout=r.stdout, summary=summary, json=data, rows=table_rows(summary))


def best_rows(rows):
    return {r[0]: r for r in rows if len(r) == 9 and r[0].isdigit()}


def run_rows(rows):
    return {r[0]: r for r in rows if len(r) == 14 and r[0].startswith("B")}


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
    assert [best[b][3] for b in ("64", "128", "256", "512")] == ["300", "200", "150", "125"]
    assert [best[b][1] for b in ("64", "128", "256", "512")] == ["0.02", "0.02", "0.08", "0.08"]
    assert [best[b][4] for b in ("64", "128", "256", "512")] == ["19200", "25600", "38400", "64000"]
    assert "no rate reached the target" in best["1024"][8]
    assert [best[b][8] for b in ("64", "128", "256", "512")] == ["diminishing returns"] * 3 + \
        ["maximal data parallelism"]


def test_fit_in_the_summary(report):
    rows = {r[0]: r[1] for r in report["rows"] if len(r) == 2}
    assert rows["S_min (fewest steps, B -> inf)"] == "100"
    assert rows["E_min (fewest samples, B -> 0)"] == "12800"
    assert rows["B_crit = E_min / S_min"] == "128"
    fit = report["json"]["fit"]
    assert fit["b_crit"] == pytest.approx(128, abs=1e-6) and fit["problem"] is None
    assert "fit S(B) = 100 + 1.28e+04/B: S_min 100, E_min 1.28e+04, B_crit 128 (R^2 1.000)" in report["stdout"]


def test_every_run_is_listed(report):
    every = run_rows(report["rows"])
    assert len(every) == 10
    assert every["B0512-lr0.16-np2"][5] == "**diverged** at step 7"
    assert every["B0064-lr0.01-np2"][5] == "**not reached**" and every["B0064-lr0.01-np2"][7] == "(2000)"
    assert every["B1024-lr0.16-np2"][5] == "**unfinished**"
    assert every["B1024-lr0.32-np2"][5] == "**not run**"
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
    assert run_rows(table_rows(summary))["B0064-lr0.02-np2"][7:9] == ["300", "250"]


def test_report_errors(fake, tmp_path):
    r = in_process(report_tool.main, [tmp_path / "absent"])
    assert r.returncode != 0 and one_error_line(r.stderr, "report: error:", "is not a directory")
    r = in_process(report_tool.main, [fake, "--regime-factor", "1", "--out", tmp_path / "x"])
    assert r.returncode != 0 and one_error_line(r.stderr, "report: error:", "--regime-factor must be > 1")
    empty = tmp_path / "empty"
    empty.mkdir()
    r = in_process(report_tool.main, [empty])
    assert r.returncode != 0 and one_error_line(r.stderr, "report: error:", "no run directories in")
