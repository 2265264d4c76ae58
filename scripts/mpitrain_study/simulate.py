"""Simulated sweeps with a known answer, to validate the report's intervals:
steps to the target at each B drawn around a true S(B) = S_min + E_min/B with
multiplicative (log-normal) seed noise, several seeds per B."""

import numpy as np


def true_steps(batches, s_min, e_min):
    """S(B) = S_min + E_min/B at each B."""
    return {int(b): s_min + e_min / b for b in batches}


def simulate_sweep(rng, batches, s_min, e_min, seeds=3, noise=0.15):
    """{B: [steps to the target of each seed]}: true S(B) times exp(noise * N(0,1)),
    divided by the mean of that factor (exp(noise^2/2)) so the expected steps are S(B)."""
    truth = true_steps(batches, s_min, e_min)
    bias = np.exp(noise ** 2 / 2)
    return {b: (s * np.exp(noise * rng.standard_normal(seeds)) / bias).tolist() for b, s in truth.items()}


def coverage(n_sweeps=60, batches=(64, 128, 256, 512, 1024, 2048, 4096, 8192), s_min=60.0, e_min=100000.0,
             seeds=3, noise=0.15, n_boot=400, level=0.95, rng_seed=1):
    """The share of n_sweeps simulated sweeps whose bootstrap interval holds
    the true S_min, E_min and B_crit, under each weighting:
    {weighting: {quantity: share}}."""
    from .bootstrap import bootstrap_fit
    rng = np.random.default_rng(rng_seed)
    truth = dict(s_min=s_min, e_min=e_min, b_crit=e_min / s_min)
    hits = {w: {q: 0 for q in truth} for w in ("unweighted", "relative")}
    for i in range(n_sweeps):
        boot = bootstrap_fit(simulate_sweep(rng, batches, s_min, e_min, seeds, noise), n_boot=n_boot,
                             rng_seed=1000 + i, level=level)
        for w in hits:
            for q, v in truth.items():
                lo, hi = boot[w][f"{q}_ci"]
                hits[w][q] += lo <= v <= hi
    return {w: {q: n / n_sweeps for q, n in h.items()} for w, h in hits.items()}
