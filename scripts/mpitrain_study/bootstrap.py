"""Seed-bootstrap intervals of the steps-to-target fit S(B) = S_min + E_min/B
and of the local slopes of log S vs log B (report.py; docs/scaling-study.md).

The data are, at each global batch B, the steps to the target of the seeds
of the best learning rate. One bootstrap replicate resamples the seeds
*within* each B (with replacement, as many as there are), takes the mean at
each B and refits. The deviations from the mean are scaled by sqrt(n/(n-1))
before resampling, so that the replicates' means have the sample variance
s^2/n of the mean rather than the plain bootstrap's (n-1)/n of it, which
matters with 3-5 seeds. A B with a single seed is held fixed. The RNG seed
is fixed, so the same runs give the same intervals.

Intervals are percentile intervals (order statistics, which stay defined
when a replicate's B_crit is unbounded: S_min <= 0 gives B_crit = inf, and
E_min <= 0 gives B_crit = 0).
"""

import math

import numpy as np

RNG_SEED = 20181206  # fixed: the same runs give the same intervals
N_BOOT = 2000
LEVEL = 0.95


def fit_many(batches, steps, relative=False):
    """The fit S = S_min + E_min/B for each row of `steps` (replicates x B),
    in closed form; returns (s_min, e_min) arrays. relative=True weights each
    residual by 1/S, as fit.fit_steps_to_target does."""
    x = 1.0 / np.asarray(batches, dtype=float)
    y = np.atleast_2d(np.asarray(steps, dtype=float))
    w2 = 1.0 / y ** 2 if relative else np.ones_like(y)
    sw, sx, sxx = w2.sum(1), (w2 * x).sum(1), (w2 * x * x).sum(1)
    sy, sxy = (w2 * y).sum(1), (w2 * x * y).sum(1)
    det = sw * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        s_min = (sxx * sy - sx * sxy) / det
        e_min = (sw * sxy - sx * sy) / det
    return s_min, e_min


def b_crit_of(s_min, e_min):
    """E_min/S_min, with inf where S_min <= 0 < E_min (the sweep has not reached
    B_crit) and 0 where E_min <= 0 (no perfect-scaling regime)."""
    s_min, e_min = np.asarray(s_min, dtype=float), np.asarray(e_min, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(e_min <= 0, 0.0, np.where(s_min <= 0, np.inf, e_min / s_min))
    return out


def percentile_interval(values, level=LEVEL):
    """(lo, hi): order statistics at (1-level)/2 and (1+level)/2; infinities allowed."""
    v = np.sort(np.asarray(values, dtype=float))
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return (float("nan"), float("nan"))
    a = (1.0 - level) / 2.0
    lo = v[int(math.floor(a * (len(v) - 1) + 1e-9))]
    hi = v[int(math.ceil((1.0 - a) * (len(v) - 1) - 1e-9))]
    return (float(lo), float(hi))


def resample_means(seed_steps, n_boot=N_BOOT, rng_seed=RNG_SEED):
    """(batches, means): batches sorted, means an (n_boot x len(batches)) array
    of bootstrap means of the per-seed steps at each B (see the module doc)."""
    rng = np.random.default_rng(rng_seed)
    batches = sorted(seed_steps)
    means = np.empty((n_boot, len(batches)))
    for j, b in enumerate(batches):
        v = np.asarray(seed_steps[b], dtype=float)
        n = len(v)
        if n < 2:
            means[:, j] = v.mean()
            continue
        m = v.mean()
        dev = (v - m) * math.sqrt(n / (n - 1.0))
        idx = rng.integers(0, n, size=(n_boot, n))
        means[:, j] = m + dev[idx].mean(1)
    return batches, means


def bootstrap_fit(seed_steps, n_boot=N_BOOT, rng_seed=RNG_SEED, level=LEVEL):
    """Intervals of S_min, E_min and B_crit under both weightings.

    seed_steps: {B: [steps to the target of each seed]} (at least 3 B).
    Returns None without 3 B, else dict(level, n_boot, seeds={B: n},
    resampled (bool: some B has >= 2 seeds), unweighted=..., relative=...),
    each weighting dict(s_min, e_min, b_crit (the fit on the seed means),
    s_min_ci, e_min_ci, b_crit_ci, unbounded (share of replicates with
    S_min <= 0), no_scaling (share with E_min <= 0))."""
    if len(seed_steps) < 3:
        return None
    batches, means = resample_means(seed_steps, n_boot, rng_seed)
    point = np.array([[float(np.mean(seed_steps[b])) for b in batches]])
    out = dict(level=level, n_boot=n_boot, rng_seed=rng_seed, seeds={int(b): len(seed_steps[b]) for b in batches},
               resampled=any(len(seed_steps[b]) >= 2 for b in batches))
    for name, relative in (("unweighted", False), ("relative", True)):
        s0, e0 = fit_many(batches, point, relative)
        s, e = fit_many(batches, means, relative)
        bc = b_crit_of(s, e)
        out[name] = dict(s_min=float(s0[0]), e_min=float(e0[0]), b_crit=float(b_crit_of(s0, e0)[0]),
                         s_min_ci=percentile_interval(s, level), e_min_ci=percentile_interval(e, level),
                         b_crit_ci=percentile_interval(bc, level),
                         unbounded=float(np.mean(s <= 0)), no_scaling=float(np.mean(e <= 0)))
    return out


def rounded(value, lo=None, hi=None):
    """A value (and its interval) as text rounded to what the interval supports:
    two significant digits of the smaller half-width, e.g. '1620 (1160-2540)';
    three significant digits without an interval. 'inf' for an unbounded end."""
    if value is None or not math.isfinite(value):
        return "-"
    if lo is None or hi is None or not (math.isfinite(lo) or math.isfinite(hi)) or hi <= lo:
        return f"{sig(value, 3)}"
    halves = [abs(value - x) for x in (lo, hi) if math.isfinite(x) and abs(value - x) > 0]
    width = min(halves) if halves else (hi - lo)
    place = 10.0 ** (math.floor(math.log10(width)) - 1)
    # At least 2 significant digits of the value itself.
    if value != 0:
        place = min(place, 10.0 ** (math.floor(math.log10(abs(value))) - 1))
    return f"{at_place(value, place)} ({at_place(lo, place)}-{at_place(hi, place)})"


def at_place(x, place):
    """x rounded to a multiple of `place` (a power of 10), as short text."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "?"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    digits = max(0, -int(round(math.log10(place))))
    r = round(x / place) * place
    return f"{r:.{digits}f}"


def sig(x, n):
    """x with n significant digits, in plain notation for |x| >= 1e-3."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    place = 10.0 ** (math.floor(math.log10(abs(x))) - n + 1)
    return at_place(x, place)
