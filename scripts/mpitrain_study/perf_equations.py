"""The performance model's equations: the all-reduce's cost from per-hop
alpha and beta, log-log interpolation over a bench's shard sizes, and the
nearest item on a log scale."""

import math

import numpy as np


def allreduce_time(algorithm, P, buckets, n, alpha, beta):
    """Seconds of the all-reduce of n bytes in `buckets` collectives over P
    ranks, from per-hop alpha (s) and beta (s/byte)."""
    if P <= 1:
        return 0.0
    if algorithm == "binomial":
        rounds = math.ceil(math.log2(P))
        return 2 * rounds * (buckets * alpha + n * beta)
    return buckets * 2 * (P - 1) * alpha + 2 * (P - 1) / P * n * beta


def loglog_interp(x, xs, ys):
    """ys(x) interpolated linearly in log-log space; clamped to the end values
    outside [xs[0], xs[-1]]. Returns (value, clamped)."""
    if x <= xs[0]:
        return float(ys[0]), bool(x < xs[0])
    if x >= xs[-1]:
        return float(ys[-1]), bool(x > xs[-1])
    return float(np.exp(np.interp(math.log(x), np.log(xs), np.log(ys)))), False


def loglog_positive(x, xs, ys):
    """ys(x) like loglog_interp, where some ys may be 0: the segment around x
    is log-log if both its ends are > 0, else linear in log x."""
    if x <= xs[0]:
        return float(ys[0])
    if x >= xs[-1]:
        return float(ys[-1])
    i = int(np.searchsorted(xs, x))  # xs[i-1] < x <= xs[i]
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    f = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
    if y0 > 0 and y1 > 0:
        return float(math.exp(math.log(y0) + f * (math.log(y1) - math.log(y0))))
    return float(y0 + f * (y1 - y0))


def nearest(items, key, x):
    """The item whose key is nearest to x on a log scale (ties: the larger)."""
    return min(items, key=lambda it: (abs(math.log(key(it)) - math.log(x)), -key(it)))
