"""The steps-to-target fit S(B) = S_min + E_min / B (McCandlish et al. 2018,
arXiv:1812.06162). Its intervals are in bootstrap.py; the scaling regimes are
read from local slopes (slopes.py), not from the fit."""

import numpy as np


def fit_steps_to_target(batches, steps, relative=False):
    """Least squares of S = S_min + E_min * (1/B) over the points (B, S).

    relative=True weights each residual by 1/S (relative errors), so every B
    counts the same on the log-log plot instead of the small batches, with
    their thousands of steps, deciding the fit.

    McCandlish et al. (2018), eq. 2.11: (S/S_min - 1)(E/E_min - 1) = 1 with
    E = B*S is S = S_min + E_min/B, a straight line in 1/B. Returns a dict
    with s_min, e_min, b_crit = E_min/S_min, r2 and n, and `problem` (None, or
    why the fit is not meaningful); None when there are fewer than 3 distinct
    B (two points always fit exactly and say nothing).
    """
    b = np.asarray(batches, dtype=float)
    s = np.asarray(steps, dtype=float)
    if len(set(b.tolist())) < 3:
        return None
    design = np.column_stack([np.ones_like(b), 1.0 / b])
    w = 1.0 / s if relative else np.ones_like(s)
    (s_min, e_min), *_ = np.linalg.lstsq(design * w[:, None], s * w, rcond=None)
    predicted = design @ np.array([s_min, e_min])
    ss_res = float(np.sum((s - predicted) ** 2))
    ss_tot = float(np.sum((s - s.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    problem = None
    if e_min <= 0:
        problem = "E_min <= 0: steps to the target do not fall with B, so there is no perfect-scaling regime"
    elif s_min <= 0:
        problem = ("S_min <= 0: the largest batches still scale perfectly, so the sweep has not reached "
                   "B_crit; extend it to larger B")
    b_crit = float(e_min / s_min) if s_min > 0 and e_min > 0 else float("nan")
    return dict(s_min=float(s_min), e_min=float(e_min), b_crit=b_crit, r2=r2, n=int(len(b)), problem=problem)
