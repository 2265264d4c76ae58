"""Three estimates of the critical batch, side by side (report.py;
docs/scaling-study.md, "Three estimates of the critical batch"):

(a) the fitted B_crit = E_min/S_min of S(B) = S_min + E_min/B, unweighted and
    weighted by 1/S, with their seed-bootstrap intervals (bootstrap.py);
(b) the online B_simple read at a matched training loss, the median over B,
    with a seed-bootstrap interval (noise_curves.py);
(c) B_noise implied by the optimal learning rates: McCandlish et al. (2018,
    section 2) give eps_opt(B) = eps_max / (1 + B_noise/B) for SGD. It is fitted
    to the best rate at each B by least squares in log space: for a given
    B_noise, log eps_max is the mean of log eps(B) + log(1 + B_noise/B) (closed
    form), so a 1-D search over log B_noise suffices. The interval comes from
    the same seed bootstrap as the fit's, with the best rate re-picked at each
    B within each replicate (the seeds of every rate resampled).
"""

import math
import warnings

import numpy as np

from .bootstrap import LEVEL, N_BOOT, RNG_SEED, percentile_interval
from .runs import STATUS_NOT_RUN, seed_groups

# The search over B_noise spans this factor below the smallest and above the
# largest B of the fit; an optimum at either end is reported as 0 or inf.
SEARCH_FACTOR = 1000.0
GRID_POINTS = 801


def _sse(b_noise, log_b, y):
    """Sum of squared log residuals at each b_noise (array) and log eps_max (closed form)."""
    bn = np.atleast_1d(np.asarray(b_noise, dtype=float))
    z = y[None, :] + np.log1p(bn[:, None] / np.exp(log_b)[None, :])  # log eps + log(1 + Bn/B)
    log_emax = z.mean(1)
    return ((z - log_emax[:, None]) ** 2).sum(1), log_emax


def fit_lr_opt(batches, rates):
    """Least squares of log eps(B) = log eps_max - log(1 + B_noise/B) over (B, best rate).

    Returns None with fewer than 3 distinct B, else dict(b_noise, eps_max, rmse_log (rms of the log
    residuals), n, bound: None, 'upper' (the rates still grow like B across the sweep: B_noise above
    it, reported as inf) or 'lower' (the rates do not grow with B: B_noise 0))."""
    b = np.asarray(batches, dtype=float)
    eps = np.asarray(rates, dtype=float)
    if len(set(b.tolist())) < 3 or np.any(eps <= 0) or np.any(b <= 0):
        return None
    log_b, y = np.log(b), np.log(eps)
    grid = np.geomspace(b.min() / SEARCH_FACTOR, b.max() * SEARCH_FACTOR, GRID_POINTS)
    sse, _ = _sse(grid, log_b, y)
    i = int(np.argmin(sse))
    bound = None
    if i == len(grid) - 1:
        bound, bn = "upper", math.inf
    elif i == 0:
        bound, bn = "lower", 0.0
    else:  # golden section in log B_noise between the grid neighbours
        lo, hi = math.log(grid[i - 1]), math.log(grid[i + 1])
        g = (math.sqrt(5) - 1) / 2
        c, d = hi - g * (hi - lo), lo + g * (hi - lo)
        fc, fd = _sse(math.exp(c), log_b, y)[0][0], _sse(math.exp(d), log_b, y)[0][0]
        for _ in range(80):
            if fc < fd:
                hi, d, fd = d, c, fc
                c = hi - g * (hi - lo)
                fc = _sse(math.exp(c), log_b, y)[0][0]
            else:
                lo, c, fc = c, d, fd
                d = lo + g * (hi - lo)
                fd = _sse(math.exp(d), log_b, y)[0][0]
        bn = math.exp((lo + hi) / 2)
    if math.isinf(bn):  # eps = eps_max B / B_noise: only their ratio is fitted
        ratio = float(np.exp(np.mean(y - log_b)))
        resid = y - log_b - math.log(ratio)
        return dict(b_noise=bn, eps_max=math.inf, eps_per_b=ratio, rmse_log=float(np.sqrt(np.mean(resid ** 2))),
                    n=int(len(b)), bound=bound)
    sse, log_emax = _sse(bn, log_b, y)
    return dict(b_noise=float(bn), eps_max=float(np.exp(log_emax[0])), rmse_log=float(np.sqrt(sse[0] / len(b))),
                n=int(len(b)), bound=bound)


def eps_opt(b, b_noise, eps_max):
    """eps_max / (1 + B_noise/B)."""
    return eps_max / (1.0 + b_noise / b)


def rate_table(runs, best):
    """{B: dict(rates (every rate with a finished run at B), best (lr), edge: None, 'lowest' or 'highest')}
    for each B with a best rate."""
    tried = {}
    for r in runs:
        if r["status"] != STATUS_NOT_RUN and r["lr"]:
            tried.setdefault(r["B"], set()).add(r["lr"])
    out = {}
    for b, agg in best.items():
        rates = sorted(tried.get(b, {agg["lr"]}))
        edge = None
        if len(rates) >= 2:
            edge = "lowest" if agg["lr"] == rates[0] else ("highest" if agg["lr"] == rates[-1] else None)
        out[b] = dict(rates=rates, best=agg["lr"], edge=edge)
    return out


def _replicate_best(groups, b, n_boot, rng):
    """The best rate at B in each of n_boot replicates: every rate's seeds resampled with replacement
    (reached ones with deviations scaled by sqrt(k/(k-1)) about their mean, as bootstrap.resample_means),
    then ranked as runs.best_per_batch ranks them: a draw with a seed that missed ranks behind, then the
    fewest mean steps. Returns an array of rates."""
    rates, keys = [], []
    for (bb, lr), agg in groups.items():
        if bb != b or not agg["n_reached"]:
            continue
        v = np.asarray(agg["seed_S"], dtype=float)
        k, n = len(v), agg["n_seeds"]
        m = v.mean()
        dev = (v - m) * (math.sqrt(k / (k - 1.0)) if k >= 2 else 0.0)
        vals = np.concatenate([m + dev, np.full(n - k, np.nan)])  # missed seeds: nan
        idx = rng.integers(0, n, size=(n_boot, n))
        draw = vals[idx]
        missed = np.isnan(draw).any(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(draw, axis=1)  # nan where every drawn seed missed
        key = np.where(np.isnan(mean), np.inf, mean + np.where(missed, 1e18, 0.0))
        rates.append(lr)
        keys.append(key)
    if not rates:
        return None
    return np.asarray(rates)[np.argmin(np.vstack(keys), axis=0)]


def lr_opt_estimate(runs, best, n_boot=N_BOOT, level=LEVEL, rng_seed=RNG_SEED):
    """Estimate (c): the fit of eps_opt(B) to the best rates, with its bootstrap interval.

    Uses the B with at least two rates tried (with one rate the best rate is the only one and says
    nothing about the optimum). Returns dict(available, reason, table (rate_table), used [B], fit
    (fit_lr_opt), b_noise_ci, eps_max_ci, resampled (some rate has >= 2 seeds), n_boot, level,
    edges [B whose best rate is at the edge of its rates])."""
    table = rate_table(runs, best)
    used = [b for b, t in sorted(table.items()) if len(t["rates"]) >= 2]
    out = dict(available=False, reason="", table=table, used=used, fit=None, b_noise_ci=None, eps_max_ci=None,
               resampled=False, n_boot=n_boot, level=level, edges=[b for b in used if table[b]["edge"]])
    if len(best) < 3:
        out["reason"] = f"only {len(best)} global batch size(s) reached the target; the fit needs at least 3"
        return out
    if len(used) < 3:
        one = len(best) - len(used)
        out["reason"] = (f"{one} of the {len(best)} batch sizes that reached the target had one learning rate, "
                         "whose best rate is then the only one tried; the fit needs at least 3 batch sizes with "
                         "two or more rates (`sweep.py --lr-multipliers`)")
        return out
    fit = fit_lr_opt(used, [table[b]["best"] for b in used])
    out.update(available=True, fit=fit)
    groups = seed_groups(runs)
    out["resampled"] = any(a["n_seeds"] >= 2 for (b, _), a in groups.items() if b in used)
    if not out["resampled"]:
        return out
    rng = np.random.default_rng(rng_seed)
    picks = np.column_stack([_replicate_best(groups, b, n_boot, rng) for b in used])
    cache, bn, em = {}, np.empty(n_boot), np.empty(n_boot)
    for i, row in enumerate(picks):
        key = tuple(row.tolist())
        if key not in cache:
            f = fit_lr_opt(used, key)
            cache[key] = (f["b_noise"], f["eps_max"])
        bn[i], em[i] = cache[key]
    out["b_noise_ci"] = percentile_interval(bn, level)
    out["eps_max_ci"] = percentile_interval(em, level)
    out["distinct_picks"] = len(cache)
    return out


def three_estimates(fit, boot, matched, lr_opt):
    """The three estimates as rows: [dict(key, label, value, ci (or None), available, reason)]."""
    rows = []
    fit_ok = fit is not None
    for name, label in (("unweighted", "fitted B_crit (unweighted)"), ("relative", "fitted B_crit (weighted by 1/S)")):
        f = None if not fit_ok else (fit if name == "unweighted" else fit.get("relative"))
        row = dict(key=f"fit_{name}", label=label, value=None, ci=None, available=False, reason="")
        if f is None:
            row["reason"] = "no fit (fewer than 3 global batch sizes reached the target)"
        elif f.get("problem"):
            row["reason"] = f"the fit is not meaningful: {f['problem']}"
        else:
            row.update(value=f["b_crit"], available=True)
            if boot and boot["resampled"]:
                row["ci"] = tuple(boot[name]["b_crit_ci"])
            else:
                row["reason"] = "no interval: one seed at every B"
        rows.append(row)
    row = dict(key="b_simple_matched_loss", label="online B_simple at matched training loss (median over B)",
               value=None, ci=None, available=bool(matched and matched["available"]), reason="")
    if row["available"]:
        row.update(value=matched["median"], ci=matched["median_ci"])
        if matched["median_ci"] is None:
            row["reason"] = "no interval: one seed at every B"
    else:
        row["reason"] = matched["reason"] if matched else "not computed"
    rows.append(row)
    row = dict(key="b_noise_lr_opt", label="B_noise from the optimal learning rates", value=None, ci=None,
               available=bool(lr_opt and lr_opt["available"]), reason="")
    if row["available"]:
        row.update(value=lr_opt["fit"]["b_noise"], ci=lr_opt["b_noise_ci"])
        if lr_opt["b_noise_ci"] is None:
            row["reason"] = "no interval: one seed per rate"
        elif lr_opt["distinct_picks"] == 1:
            row["reason"] = ("no interval: the seed bootstrap never changes the best rate at any B; the rate grid's "
                             "step is the uncertainty")
    else:
        row["reason"] = lr_opt["reason"] if lr_opt else "not computed"
    rows.append(row)
    return rows


def for_json(lr_opt):
    """Estimate (c) for report.json (B keys as strings)."""
    out = dict(lr_opt)
    out["table"] = {str(b): t for b, t in lr_opt["table"].items()}
    return out
