"""The seed bootstrap of the fit (bootstrap.py), the local slopes and their
regimes (slopes.py), seed aggregation (runs.py), and the coverage of the
intervals on simulated sweeps with a known answer (simulate.py)."""

import math

import numpy as np
import pytest

from mpitrain_study.bootstrap import bootstrap_fit, fit_many, percentile_interval, resample_means, rounded
from mpitrain_study.fit import fit_steps_to_target
from mpitrain_study.runs import STATUS_MISSED, STATUS_REACHED, aggregate_seeds, best_per_batch
from mpitrain_study.simulate import coverage, simulate_sweep
from mpitrain_study.slopes import (DIMINISHING, MAXIMAL, PERFECT, UNDECIDED, local_slopes, regime_of_interval,
                                   regime_ranges)

B = [64, 128, 256, 512, 1024]


def test_closed_form_fit_matches_least_squares():
    rng = np.random.default_rng(0)
    s = [100 + 12800 / b * (1 + 0.1 * rng.standard_normal()) for b in B]
    for relative in (False, True):
        ref = fit_steps_to_target(B, s, relative=relative)
        s_min, e_min = fit_many(B, [s], relative)
        assert (s_min[0], e_min[0]) == pytest.approx((ref["s_min"], ref["e_min"]), rel=1e-9)


def test_resampling_stays_within_each_batch_and_keeps_one_seed_fixed():
    steps = {64: [280, 300, 320], 128: [200], 256: [140, 160]}
    batches, means = resample_means(steps, n_boot=500, rng_seed=3)
    assert batches == [64, 128, 256]
    assert np.all(means[:, 1] == 200)
    # Deviations scaled by sqrt(n/(n-1)): B=64's means range over 300 +- 20*sqrt(1.5).
    assert means[:, 0].min() >= 300 - 20 * math.sqrt(1.5) - 1e-9 and means[:, 0].max() <= 300 + 20 * math.sqrt(1.5) + 1e-9
    assert means[:, 0].mean() == pytest.approx(300, abs=2)
    # Variance of the mean: s^2/n = 400/3 for B=64.
    assert means[:, 0].var() == pytest.approx(400 / 3, rel=0.15)


def test_bootstrap_is_reproducible_and_covers_the_point():
    steps = {b: [(100 + 12800 / b) * f for f in (0.9, 1.0, 1.1)] for b in B}
    a, b = bootstrap_fit(steps), bootstrap_fit(steps)
    assert a == b
    for w in ("unweighted", "relative"):
        assert a[w]["b_crit"] == pytest.approx(128)
        lo, hi = a[w]["b_crit_ci"]
        assert lo < 128 < hi
    assert a["seeds"] == {b: 3 for b in B} and a["resampled"]
    assert bootstrap_fit({64: [1], 128: [2]}) is None


def test_one_seed_per_batch_gives_zero_width_intervals():
    boot = bootstrap_fit({b: [100 + 12800 / b] for b in B}, n_boot=200)
    assert not boot["resampled"]
    assert boot["unweighted"]["b_crit_ci"] == pytest.approx((128, 128))


def test_unbounded_replicates_give_an_infinite_upper_end():
    # Steps still halving at the largest B: some replicates have S_min <= 0, B_crit = inf.
    steps = {64: [400, 420, 380], 128: [200, 230, 170], 256: [100, 130, 70]}
    boot = bootstrap_fit(steps, n_boot=500)
    assert boot["unweighted"]["unbounded"] > 0
    assert math.isinf(boot["unweighted"]["b_crit_ci"][1])
    assert rounded(1000, 500, float("inf")).endswith("-inf)")


def test_percentile_interval_and_rounding():
    assert percentile_interval(np.arange(101), 0.9) == (5, 95)
    assert rounded(1619.3, 1160.2, 2540.9) == "1620 (1160-2540)"
    assert rounded(1619.3, 900, 4000) == "1620 (900-4000)"  # the smaller half-width, 719, sets the place
    assert rounded(0.4321, 0.41, 0.45) == "0.432 (0.410-0.450)"
    assert rounded(1619.3) == "1620"
    assert rounded(44.2, 30.1, 60.7) == "44 (30-61)"


def test_regimes_from_slope_intervals():
    assert regime_of_interval(-1.2, -0.9) == PERFECT
    assert regime_of_interval(-0.2, 0.1) == MAXIMAL
    assert regime_of_interval(-0.8, -0.3) == DIMINISHING
    assert regime_of_interval(-1.3, 0.2) == UNDECIDED
    segs = [dict(b_lo=64, b_hi=128, regime=PERFECT), dict(b_lo=128, b_hi=256, regime=PERFECT),
            dict(b_lo=256, b_hi=512, regime=MAXIMAL)]
    assert regime_ranges(segs) == [(64, 256, PERFECT), (256, 512, MAXIMAL)]


def test_local_slopes_and_their_intervals():
    # Perfect scaling from 64 to 256 (steps halve), flat from 1024 to 2048.
    steps = {64: [1000, 1050, 950], 128: [500, 520, 480], 256: [250, 260, 240], 1024: [100, 105, 95],
             2048: [100, 104, 96]}
    slopes = local_slopes(steps, n_boot=1000)
    got = {(s["b_lo"], s["b_hi"]): s for s in slopes}
    assert got[(64, 128)]["slope"] == pytest.approx(-1)
    lo, hi = got[(64, 128)]["ci"]
    assert lo < -1 < hi and got[(64, 128)]["regime"] == PERFECT
    assert got[(1024, 2048)]["regime"] == MAXIMAL
    assert got[(256, 1024)]["slope"] == pytest.approx(math.log(0.4) / math.log(4))
    assert got[(256, 1024)]["regime"] == DIMINISHING
    # One seed: a point slope, its regime within 0.2 of -1 or 0.
    one = local_slopes({64: [1000], 128: [520]})
    assert one[0]["ci"] is None and one[0]["regime"] == PERFECT and not one[0]["from_interval"]


def fake_run(name, seed, status, S=None, P=2, lr=0.1):
    return dict(name=name, B=256, P=P, lr=lr, multiplier=1, seed=seed, status=status, S=S,
                E=None if S is None else S * 256, T=None if S is None else S / 100, steps_run=S or 2000)


def test_seeds_are_aggregated_by_the_mean_with_missed_seeds_listed():
    runs = [fake_run("a", 1, STATUS_REACHED, 340), fake_run("b", 2, STATUS_REACHED, 560),
            fake_run("c", 3, STATUS_REACHED, 510), fake_run("d", 4, STATUS_MISSED),
            fake_run("e", 1, STATUS_REACHED, 340, P=4)]  # seed 1 again on 4 ranks: still one seed
    agg = aggregate_seeds(runs)
    assert agg["n_seeds"] == 4 and agg["n_reached"] == 3
    assert agg["S"] == pytest.approx(470) and agg["S_sd"] == pytest.approx(np.std([340, 560, 510], ddof=1))
    assert agg["missed"] == [dict(seed=4, name="d", status=STATUS_MISSED, steps_run=2000)]
    assert agg["run"]["name"] == "c"  # the seed closest to the mean


def test_the_best_rate_is_chosen_by_the_seed_mean():
    fast_once = [fake_run(f"x{s}", s, STATUS_REACHED, v, lr=0.2) for s, v in ((1, 120), (2, 170), (3, 175))]
    steady = [fake_run(f"y{s}", s, STATUS_REACHED, v, lr=0.1) for s, v in ((1, 140), (2, 150), (3, 160))]
    best = best_per_batch(fast_once + steady)
    assert best[256]["lr"] == 0.1 and best[256]["S"] == pytest.approx(150) and best[256]["seed_S"] == [140, 150, 160]


def test_simulated_sweep_is_centred_on_the_truth():
    rng = np.random.default_rng(5)
    sweep = simulate_sweep(rng, [64, 4096], 60, 100000, seeds=4000, noise=0.15)
    assert np.mean(sweep[64]) == pytest.approx(60 + 100000 / 64, rel=0.01)
    assert np.mean(sweep[4096]) == pytest.approx(60 + 100000 / 4096, rel=0.01)


def test_intervals_cover_the_true_values_on_simulated_sweeps():
    # 100 simulated sweeps (B = 64 ... 8192, S_min 60, E_min 100000, B_crit 1667, 15% seed noise): the 95%
    # intervals hold the true S_min, E_min and B_crit in >= 80% of them under both weightings. With 5 seeds
    # per B they do in 81-95% (the within-B bootstrap of 3-5 seeds is short of its nominal level; the docs
    # give the figures); with 3 seeds B_crit's intervals still do.
    five = coverage(n_sweeps=100, seeds=5, noise=0.15, n_boot=400, rng_seed=1)
    for w, qs in five.items():
        for q, share in qs.items():
            assert share >= 0.8, (w, q, share)
    three = coverage(n_sweeps=100, seeds=3, noise=0.15, n_boot=400, rng_seed=1)
    assert three["unweighted"]["b_crit"] >= 0.8 and three["relative"]["b_crit"] >= 0.8, three
