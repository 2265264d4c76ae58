"""Local slopes of log S vs log B between neighbouring batch sizes, their
seed-bootstrap intervals, and the scaling regimes read from them (Shallue et
al. 2018, arXiv:1811.03600): perfect scaling where the interval holds -1
(steps halve when B doubles), maximal data parallelism where it holds 0
(steps no longer fall), diminishing returns in between."""

import math

import numpy as np

from .bootstrap import LEVEL, N_BOOT, RNG_SEED, percentile_interval, resample_means

PERFECT = "perfect scaling"
DIMINISHING = "diminishing returns"
MAXIMAL = "maximal data parallelism"
UNDECIDED = "undecided (holds -1 and 0)"
FASTER = "faster than perfect (< -1)"
RISING = "steps rise with B (> 0)"
# Without an interval (one seed per B) the regime is read off the point slope
# with this tolerance around -1 and 0.
POINT_TOLERANCE = 0.2


def regime_of_interval(lo, hi):
    """The regime a slope interval [lo, hi] supports."""
    holds_perfect, holds_flat = lo <= -1 <= hi, lo <= 0 <= hi
    if holds_perfect and holds_flat:
        return UNDECIDED
    if holds_perfect:
        return PERFECT
    if holds_flat:
        return MAXIMAL
    if hi < -1:
        return FASTER
    if lo > 0:
        return RISING
    return DIMINISHING


def regime_of_point(slope, tol=POINT_TOLERANCE):
    """The regime of a slope without an interval: within tol of -1 or 0."""
    return regime_of_interval(slope - tol, slope + tol)


def local_slopes(seed_steps, n_boot=N_BOOT, rng_seed=RNG_SEED, level=LEVEL):
    """[dict(b_lo, b_hi, slope, ci (or None), regime, from_interval)] between
    neighbouring B of {B: [steps of each seed]}; slope = d log S / d log B of
    the seed means, the interval from the same seed bootstrap as the fit
    (bootstrap.resample_means). A pair where neither B has two seeds has no
    interval, and its regime is read off the point slope (POINT_TOLERANCE)."""
    if len(seed_steps) < 2:
        return []
    batches, means = resample_means(seed_steps, n_boot, rng_seed)
    mean = [float(np.mean(seed_steps[b])) for b in batches]
    out = []
    for j in range(len(batches) - 1):
        b0, b1 = batches[j], batches[j + 1]
        dlogb = math.log(b1) - math.log(b0)
        slope = (math.log(mean[j + 1]) - math.log(mean[j])) / dlogb
        if len(seed_steps[b0]) >= 2 or len(seed_steps[b1]) >= 2:
            with np.errstate(divide="ignore", invalid="ignore"):
                reps = (np.log(means[:, j + 1]) - np.log(means[:, j])) / dlogb
            ci = percentile_interval(reps, level)
            regime, from_interval = regime_of_interval(*ci), True
        else:
            ci, regime, from_interval = None, regime_of_point(slope), False
        out.append(dict(b_lo=int(b0), b_hi=int(b1), slope=slope, ci=ci, regime=regime, from_interval=from_interval))
    return out


def regime_ranges(slopes):
    """Neighbouring segments of the same regime merged: [(b_lo, b_hi, regime)]."""
    ranges = []
    for s in slopes:
        if ranges and ranges[-1][2] == s["regime"] and ranges[-1][1] == s["b_lo"]:
            ranges[-1] = (ranges[-1][0], s["b_hi"], s["regime"])
        else:
            ranges.append((s["b_lo"], s["b_hi"], s["regime"]))
    return ranges
