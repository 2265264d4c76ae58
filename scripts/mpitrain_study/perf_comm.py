"""The all-reduce term's per-hop alpha and beta (docs/perf-model.md), for
the performance model (perf_predictor.py): from a multi-rank bench (its fit,
its time at the trainer's bucket size, or its step pattern) or from the
--calibration runs' own all-reduce time. n = grad_bytes, the gradient's bytes
per step, in `buckets` all-reduces."""

import math

import numpy as np

from .formatting import seconds_text
from .perf_equations import allreduce_time, loglog_interp, nearest
from .perf_inputs import die


def derive_alpha_beta(b, how, grad_bytes, buckets):
    """Per-hop alpha and beta of a P-rank bench from its all-reduce
    t(n) = a + b n = 2(P-1) alpha + 2(P-1)/P n beta.

    how = 'bench': a and b are the bench's own fit (weighted by relative
    error over all its message sizes). how = 'at-size' (default): a is the
    bench's fit, and b makes a + b n equal the bench's measured time at the
    trainer's bucket size n (log-log interpolation between its rows), so
    the model reproduces the bench where the trainer actually works; the
    bench's fit is used when its rows do not bracket n."""
    P = b["ranks"]
    n = grad_bytes / buckets
    a, slope = b["a_fit"], b["b_fit"]
    fitted = a + slope * n
    text = f"all-reduce fit t(n) = {seconds_text(a)} + n x {slope:.3e} s/B"
    measured = None
    if len(b["allreduce"]) >= 2:
        xs = np.array([r[0] for r in b["allreduce"]])
        ys = np.array([r[1] for r in b["allreduce"]])
        value, clamped = loglog_interp(n, xs, ys)
        if not clamped:
            measured = value
    if measured is not None:
        text += (f"; at a bucket of {n / 1e3:.0f} kB it gives {seconds_text(fitted)}, the bench measured "
                 f"{seconds_text(measured)} ({100 * (fitted - measured) / measured:+.0f} %)")
    if how == "in-step":
        k = buckets
        ts = b["allreduce_step"]
        b["step_beta"] = [max(0.0, (t - k * a) * P / (2 * (P - 1) * grad_bytes)) for t in ts]
        slope = b["step_beta"][-1] * 2 * (P - 1) / P
        text += ("; in the step pattern (--comm-fit in-step) the trainer's gradient all-reduce took "
                 + ", ".join(f"{seconds_text(t)} at shard {s:.0f}" for s, t in zip(b["step_shards"], ts))
                 + ": beta per hop follows it at each shard (interpolated in b), alpha is the fit's; "
                 f"at shard {b['step_shards'][-1]:.0f}: t(n) = {seconds_text(a)} + n x {slope:.3e} s/B")
    elif how == "at-size":
        if measured is not None:
            slope = max(0.0, (measured - a) / n)
            text += f"; with t({n / 1e3:.0f} kB) as measured (--comm-fit at-size): t(n) = {seconds_text(a)} + n x {slope:.3e} s/B"
        else:
            text += "; its rows do not bracket the bucket size, so the fit is used"
    b["alpha"] = a / (2 * (P - 1))
    b["beta"] = slope * P / (2 * (P - 1))
    b["comm_text"] = text


def calibrated_comm(calibration, comm_benches, allreduce, grad_bytes, buckets):
    """Per-hop alpha and beta at each P of the calibration runs, from the
    trainer's measured all-reduce time (time_comm_s per step)."""
    if not comm_benches:
        die("--comm-source calibration needs a bench at P > 1 (for alpha)")
    out = []
    for P in sorted({r["P"] for r in calibration if r["P"] > 1 and r["comm_s"]}):
        t = float(np.median([r["comm_s"] for r in calibration if r["P"] == P and r["comm_s"]]))
        b = nearest(comm_benches, lambda x: x["ranks"], P)
        alpha = b["alpha"]
        if allreduce == "binomial":
            rounds = math.ceil(math.log2(P))
            beta = (t / (2 * rounds) - buckets * alpha) / grad_bytes
        else:
            beta = (t - buckets * 2 * (P - 1) * alpha) / (2 * (P - 1) / P * grad_bytes)
        beta = max(0.0, beta)
        bench_t = allreduce_time("ring", b["ranks"], buckets, grad_bytes, b["alpha"], b["beta"])
        out.append(dict(ranks=P, t=t, alpha=alpha, beta=beta, bench_t=bench_t if b["ranks"] == P else None))
    if not out:
        die("--comm-source calibration needs --calibration runs at P > 1 with time_comm_s in their metrics")
    return out
