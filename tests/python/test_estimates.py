"""The three estimates of the critical batch (estimates.py) and B_simple read
at matched training loss (noise_curves.py): the eps_opt(B) fit on exact
synthetic rates, the matched-loss reader on constructed step lines, the
report's summary and report.json, and the edge cases (no step lines, one
B, one rate per B)."""

import json
import math
import os

import numpy as np
import pytest

from fake_sweep import make_fake_sweep, run as fake_run
from helpers import in_process, is_png, table_rows
from mpitrain_study import report as report_tool
from mpitrain_study.estimates import _replicate_best, fit_lr_opt, lr_opt_estimate, three_estimates
from mpitrain_study.noise_curves import crossing, curves, matched_loss, smooth, value_at
from mpitrain_study.runs import STATUS_REACHED, seed_groups

B = [64, 128, 256, 512, 1024, 2048, 4096, 8192]


# --- eps_opt(B) = eps_max / (1 + B_noise/B) ---

@pytest.mark.parametrize("b_noise", [150.0, 900.0, 3000.0])
def test_lr_fit_recovers_b_noise_from_exact_rates(b_noise):
    rates = [0.4 / (1 + b_noise / b) for b in B]
    fit = fit_lr_opt(B, rates)
    assert fit["bound"] is None
    assert fit["b_noise"] == pytest.approx(b_noise, rel=1e-4)
    assert fit["eps_max"] == pytest.approx(0.4, rel=1e-4)
    assert fit["rmse_log"] < 1e-6


def test_lr_fit_at_the_ends_of_its_search():
    # Rates still linear in B across the sweep: B_noise above it (inf); rates flat: 0.
    up = fit_lr_opt(B, [1e-4 * b for b in B])
    assert up["bound"] == "upper" and math.isinf(up["b_noise"]) and up["eps_per_b"] == pytest.approx(1e-4)
    flat = fit_lr_opt(B, [0.1] * len(B))
    assert flat["bound"] == "lower" and flat["b_noise"] == 0.0 and flat["eps_max"] == pytest.approx(0.1)
    assert fit_lr_opt([64, 128], [0.01, 0.02]) is None  # two B fit exactly and say nothing


def test_lr_fit_on_a_x2_grid_is_near_the_truth():
    # The best rate on a x2 grid: the grid rate nearest (in log) to the true optimum.
    grid = 0.4 * 2.0 ** np.arange(-10, 1)
    truth = 1000.0
    rates = [grid[np.argmin(abs(np.log(grid) - math.log(0.4 / (1 + truth / b))))] for b in B]
    fit = fit_lr_opt(B, rates)
    assert truth / 2 < fit["b_noise"] < truth * 2


# --- Best rate re-picked within bootstrap replicates ---

def group(b, lr, steps, n_seeds=None):
    return (b, lr), dict(B=b, lr=lr, seed_S=[float(s) for s in steps if s is not None], n_seeds=len(steps),
                         n_reached=sum(s is not None for s in steps))


def test_replicates_repick_the_best_rate():
    rng = np.random.default_rng(0)
    clear = dict([group(64, 0.01, [300, 310, 290]), group(64, 0.02, [100, 110, 90])])
    assert set(_replicate_best(clear, 64, 300, rng).tolist()) == {0.02}
    close = dict([group(64, 0.01, [100, 140, 60]), group(64, 0.02, [105, 145, 65])])
    picks = _replicate_best(close, 64, 500, rng).tolist()
    assert 0.1 < picks.count(0.01) / len(picks) < 0.9
    # A rate whose drawn seeds include a miss ranks behind one whose all reached.
    missed = dict([group(64, 0.01, [300, 310, 290]), group(64, 0.02, [100, None, 90])])
    picks = _replicate_best(missed, 64, 500, rng).tolist()
    frac = picks.count(0.02) / len(picks)
    assert frac == pytest.approx((2 / 3) ** 3, abs=0.08)  # no miss among 3 draws


# --- The matched-loss reader ---

def test_smooth_crossing_and_interpolation():
    s = np.arange(1, 11) * 100.0
    v = np.array([1.0, 3.0] * 5)
    assert smooth(s, v, 250).tolist()[1:-1] == pytest.approx([5 / 3, 7 / 3] * 4)  # three lines each
    assert smooth(s, v, 0).tolist() == v.tolist()
    assert crossing([0, 10, 20], [3.0, 2.0, 1.0], 1.5) == (15.0, False)
    assert crossing([0, 10, 20], [3.0, 2.0, 1.0], 5.0) == (0.0, True)
    assert crossing([0, 10, 20], [3.0, 2.0, 1.0], 0.5) is None
    assert value_at(np.array([0.0, 10.0]), np.array([100.0, 200.0]), 2.5) == pytest.approx(125)


def true_loss(samples, b):
    """Training loss over samples: slower per sample at larger B (as B grows past the noise scale)."""
    return 0.2 + 2.0 * np.exp(-samples / (20000.0 * (1 + b / 512.0)))


def true_noise(loss):
    """B_simple as a function of the loss alone: the same at matched loss whatever B."""
    return 100.0 + 400.0 * (2.2 - loss)


def step_lines(b, steps, every=1, jitter=0.0, rng=None):
    out = []
    for st in range(every, steps + 1, every):
        smp = st * b
        loss = float(true_loss(smp, b))
        noisy = loss + (jitter * rng.standard_normal() if jitter else 0.0)
        out.append(dict(type="step", step=st, samples=smp, loss=noisy, noise_scale=float(true_noise(loss)),
                        noise_small_sq=1.0, noise_b_small=b / 2, noise_big_sq=0.5, noise_b_big=b))
    return out


def fake_run_dict(b, lr, seed, steps, status=STATUS_REACHED, **extra):
    return dict(dict(name=f"B{b}-lr{lr}-s{seed}", B=b, lr=lr, seed=seed, status=status, steps_run=steps[-1]["step"]
                     if steps else 0, steps=steps, epochs=[], noise_window_samples=25600), **extra)


def test_matched_loss_reads_the_same_b_simple_at_every_b():
    rng = np.random.default_rng(1)
    runs, best = [], {}
    lengths = {64: 1500, 256: 600, 1024: 200, 4096: 80}
    for b, n in lengths.items():
        for seed in (1, 2, 3):
            runs.append(fake_run_dict(b, 0.1, seed, step_lines(b, n, every=2, jitter=0.05, rng=rng)))
        best[b] = dict(lr=0.1, run=runs[-3])
    m = matched_loss(runs, best, window=25600, n_boot=300)
    assert m["available"] and m["sources"] == {"step": 12}
    # L*: the largest of the runs' smallest smoothed losses; every run reaches it.
    mins = [float(np.min(curves(r, 25600)["loss"])) for r in runs]
    assert m["level"] == pytest.approx(max(mins))
    assert not m["not_reached"]
    expect = true_noise(m["level"])
    for b, row in m["per_b"].items():
        assert len(row["values"]) == 3
        assert row["mean"] == pytest.approx(expect, rel=0.08), b
    assert m["spread"] < 1.2
    lo, hi = m["median_ci"]
    assert lo <= m["median"] <= hi
    # Read at a given loss: each B crosses where its own curve reaches it.
    m2 = matched_loss(runs, best, window=0, level=1.0, n_boot=300)
    for b, row in m2["per_b"].items():
        assert row["mean"] == pytest.approx(true_noise(1.0), rel=0.06)
        # Samples at L*: solve true_loss(s, b) = 1.0.
        s_true = -20000.0 * (1 + b / 512.0) * math.log(0.8 / 2.0)
        assert row["samples_mean"] == pytest.approx(s_true, rel=0.15)
    assert m2["rule"].startswith("given")


def test_matched_loss_smoothing_removes_batch_noise():
    # Without smoothing the first noisy line below L* decides; with it the crossing is near the truth.
    rng = np.random.default_rng(5)
    b = 64
    steps = step_lines(b, 3000, jitter=0.3, rng=rng)
    runs = [fake_run_dict(b, 0.1, 1, steps)]
    best = {b: dict(lr=0.1, run=runs[0])}
    s_true = -20000.0 * (1 + b / 512.0) * math.log(0.8 / 2.0)
    raw = matched_loss(runs, best, window=0, level=1.0)["per_b"][b]["samples_mean"]
    smoothed = matched_loss(runs, best, window=25600, level=1.0)["per_b"][b]["samples_mean"]
    assert abs(smoothed - s_true) < 0.1 * s_true
    assert abs(smoothed - s_true) < abs(raw - s_true)


def test_matched_loss_edge_cases():
    # No step lines: the epoch lines' train_loss at mid-epoch, B_simple at the epoch ends.
    epochs = [dict(type="epoch", epoch=e, step=10 * e, samples=1000 * e, train_loss=2.0 / e, noise_scale=100.0 * e)
              for e in (1, 2, 3)]
    r = fake_run_dict(100, 0.1, 1, [], epochs=epochs)
    c = curves(r)
    assert c["source"] == "epoch" and c["loss_samples"].tolist() == [500, 1500, 2500]
    m = matched_loss([r], {100: dict(lr=0.1, run=r)})
    assert m["available"] and m["sources"] == {"epoch": 1} and m["level"] == pytest.approx(2 / 3)
    assert m["per_b"][100]["values"] == [pytest.approx(250.0)]  # at 2500 samples, between epochs 2 and 3
    assert m["median_ci"] is None  # one seed
    # Neither step lines with a loss nor epoch lines with train_loss: unavailable, with the reason.
    bare = fake_run_dict(100, 0.1, 1, [], epochs=[dict(type="epoch", epoch=1, step=10, samples=1000)])
    m = matched_loss([bare], {100: dict(lr=0.1, run=bare)})
    assert not m["available"] and "no run of a best rate" in m["reason"]
    assert not matched_loss([], {})["available"]
    # A given L* that a run never reaches: that run is left out and listed.
    runs = [fake_run_dict(64, 0.1, 1, step_lines(64, 1000)), fake_run_dict(64, 0.1, 2, step_lines(64, 50))]
    m = matched_loss(runs, {64: dict(lr=0.1, run=runs[0])}, level=1.0, window=0)
    assert m["per_b"][64]["seeds"] == [1] and [x[1] for x in m["not_reached"]] == [2]


def test_three_estimates_say_why_one_is_unavailable():
    rows = three_estimates(None, None, dict(available=False, reason="no step lines"),
                           dict(available=False, reason="one rate per B"))
    assert [r["available"] for r in rows] == [False] * 4
    assert "no fit" in rows[0]["reason"] and rows[2]["reason"] == "no step lines"
    assert rows[3]["reason"] == "one rate per B"


# --- The report ---

# {(B, lr): [steps of seeds 1, 2, 3]}: two rates at each of 4 B. The best rates are 0.02, 0.04, 0.08, 0.08;
# at B=128 the two rates' seeds overlap, so the bootstrap sometimes picks 0.02 there.
RATE_SWEEP = {(64, 0.02): [300, 320, 280], (64, 0.04): [360, 380, 350],
              (128, 0.02): [195, 215, 205], (128, 0.04): [190, 200, 210],
              (256, 0.04): [170, 180, 190], (256, 0.08): [140, 150, 160],
              (512, 0.08): [115, 125, 135], (512, 0.16): [150, 160, 170]}


def add_step_lines(run_dir, every=5):
    """Step lines (loss, noise_scale, raw statistics) into a hand-made run's metrics.jsonl, before its epoch lines."""
    path = os.path.join(run_dir, "metrics.jsonl")
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    b = int(lines[0]["config"]["global-batch"])
    out, done = [lines[0]], 0
    for line in lines[1:]:
        if line["type"] == "epoch":
            for st in range(done + every, line["step"] + 1, every):
                loss = float(true_loss(st * b, b))
                out.append(dict(type="step", epoch=line["epoch"], step=st, samples=st * b, loss=loss,
                                noise_scale=float(true_noise(loss)), noise_small_sq=1.0, noise_b_small=b / 2,
                                noise_big_sq=0.5, noise_b_big=b))
            done = line["step"]
        out.append(line)
    with open(path, "w") as f:
        f.writelines(json.dumps(x) + "\n" for x in out)


def make_rate_sweep(out, steps=True, rates=RATE_SWEEP):
    os.makedirs(out, exist_ok=True)
    plan = []
    for (b, lr), seeds in rates.items():
        for seed, s in enumerate(seeds, start=1):
            plan.append(fake_run(out, b, lr, 1, "reached", s, 50, seed=seed))
            if steps:
                add_step_lines(os.path.join(out, plan[-1]["name"]))
    with open(os.path.join(out, "sweep.json"), "w") as f:
        json.dump(dict(name="rates", target="test_acc>=0.8", runs=plan), f)
    return out


def report_of(sweep, out, *args):
    r = in_process(report_tool.main, [sweep, "--out", out, "--bootstrap", "300", *args])
    assert r.returncode == 0, r.stderr
    with open(os.path.join(out, "summary.md")) as f:
        summary = f.read()
    with open(os.path.join(out, "report.json")) as f:
        data = json.load(f)
    return dict(out=out, stdout=r.stdout, summary=summary, json=data, rows=table_rows(summary))


def estimate_rows(rows):
    return {r[0]: r[1] for r in rows if len(r) == 3 and r[0].startswith(("fitted B_crit", "online B_simple",
                                                                           "B_noise"))}


@pytest.fixture(scope="module")
def rate_report(tmp_path_factory):
    sweep = make_rate_sweep(str(tmp_path_factory.mktemp("rates") / "sweep"))
    # A window shorter than the shortest run (B=64: 19,200 samples).
    return report_of(sweep, str(tmp_path_factory.mktemp("rates-report")), "--loss-window-samples", "2560")


def test_the_summary_shows_the_three_estimates(rate_report):
    s = rate_report["summary"]
    assert "## Three estimates of the critical batch" in s
    est = estimate_rows(rate_report["rows"])
    assert set(est) == {"fitted B_crit (unweighted)", "fitted B_crit (weighted by 1/S)",
                        "online B_simple at matched training loss (median over B)",
                        "B_noise from the optimal learning rates"}
    for label, value in est.items():  # every one with an interval
        assert value != "unavailable" and "(" in value and value.endswith(")"), (label, value)
    assert est["fitted B_crit (unweighted)"].startswith("128 (")
    data = rate_report["json"]
    assert [e["key"] for e in data["estimates"]] == ["fit_unweighted", "fit_relative", "b_simple_matched_loss",
                                                     "b_noise_lr_opt"]
    assert all(e["available"] and e["ci"] for e in data["estimates"])
    # The matched-loss reading: B_simple is a function of the loss, so every B reads the same value.
    m = data["matched_loss"]
    assert m["sources"] == {"step": 12} and set(m["per_b"]) == {"64", "128", "256", "512"}
    for row in m["per_b"].values():
        assert row["mean"] == pytest.approx(true_noise(m["level"]), rel=0.05)
    assert "### B_simple at matched training loss" in s and "smoothed by a centred moving average over 2560 samples" in s
    # The rates: best 0.02, 0.04, 0.08, 0.08 -> a finite B_noise between the B.
    lr = data["lr_opt"]
    assert lr["available"] and lr["used"] == [64, 128, 256, 512] and lr["fit"]["bound"] is None
    assert 64 < lr["fit"]["b_noise"] < 2048
    assert lr["b_noise_ci"][0] <= lr["fit"]["b_noise"] <= lr["b_noise_ci"][1]
    assert "re-picked" in s
    assert "report: B_noise from the optimal learning rates:" in rate_report["stdout"]
    for png in ("noise_vs_samples", "noise_vs_loss"):
        assert is_png(os.path.join(rate_report["out"], f"{png}.png")), png
        assert f"`{png}.png`" in s


def test_without_step_lines_the_epoch_lines_are_read(tmp_path):
    sweep = make_rate_sweep(str(tmp_path / "sweep"), steps=False)
    rep = report_of(sweep, str(tmp_path / "out"))
    assert rep["json"]["matched_loss"]["sources"] == {"epoch": 12}  # the best rate's 3 seeds at 4 B
    assert "no step lines" in rep["summary"]


def test_one_batch_size(tmp_path):
    sweep = make_rate_sweep(str(tmp_path / "sweep"),
                            rates={k: v for k, v in RATE_SWEEP.items() if k[0] == 128})
    rep = report_of(sweep, str(tmp_path / "out"))
    est = estimate_rows(rep["rows"])
    assert est["fitted B_crit (unweighted)"] == "unavailable"
    assert est["B_noise from the optimal learning rates"] == "unavailable"
    assert "only 1 global batch size(s) reached the target" in rep["summary"]
    # B_simple at matched loss still reads at the one B.
    assert rep["json"]["matched_loss"]["available"] and list(rep["json"]["matched_loss"]["per_b"]) == ["128"]
    for png in ("noise_vs_samples", "noise_vs_loss"):
        assert is_png(os.path.join(rep["out"], f"{png}.png"))


def test_one_rate_per_batch_and_no_loss(tmp_path):
    # Only the best rate at each B: one rate per B.
    one = {(64, 0.02), (128, 0.04), (256, 0.08), (512, 0.08)}
    sweep = make_rate_sweep(str(tmp_path / "sweep"), steps=False,
                            rates={k: v for k, v in RATE_SWEEP.items() if k in one})
    for name in os.listdir(sweep):  # no train_loss in the epoch lines either
        path = os.path.join(sweep, name, "metrics.jsonl")
        if os.path.isfile(path):
            with open(path) as f:
                lines = [json.loads(x) for x in f]
            for x in lines:
                x.pop("train_loss", None)
            with open(path, "w") as f:
                f.writelines(json.dumps(x) + "\n" for x in lines)
    rep = report_of(sweep, str(tmp_path / "out"))
    est = estimate_rows(rep["rows"])
    assert est["online B_simple at matched training loss (median over B)"] == "unavailable"
    assert est["B_noise from the optimal learning rates"] == "unavailable"
    s = rep["summary"]
    assert "had one learning rate" in s and "no run of a best rate has a training loss" in s
    assert est["fitted B_crit (unweighted)"] != "unavailable"


def test_the_one_seed_sweep_reports_without_intervals(tmp_path):
    sweep = make_fake_sweep(str(tmp_path / "fake"))
    rep = report_of(sweep, str(tmp_path / "out"))
    est = estimate_rows(rep["rows"])
    assert "(" not in est["B_noise from the optimal learning rates"]
    assert "No interval: one seed per rate." in rep["summary"]
    assert rep["json"]["lr_opt"]["available"] and rep["json"]["lr_opt"]["b_noise_ci"] is None
    assert lr_opt_estimate([], {})["available"] is False
    assert seed_groups([]) == {}


def test_seeds_that_never_change_the_best_rate_give_no_interval(tmp_path):
    # The rates' seeds do not overlap at any B: every replicate picks the same best rates.
    clear = dict(RATE_SWEEP)
    clear[(128, 0.02)] = [230, 240, 250]
    rep = report_of(make_rate_sweep(str(tmp_path / "sweep"), steps=False, rates=clear), str(tmp_path / "out"))
    lr = rep["json"]["lr_opt"]
    assert lr["distinct_picks"] == 1 and lr["b_noise_ci"][0] == lr["b_noise_ci"][1]
    assert "(" not in estimate_rows(rep["rows"])["B_noise from the optimal learning rates"]
    assert "the seeds do not move the fit" in rep["summary"]
