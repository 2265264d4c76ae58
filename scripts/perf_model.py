#!/usr/bin/env python3
"""A performance model of mpitrain's data-parallel step: predicted step time,
throughput, scaling efficiency and time to the target for P = 1 ... 1024 ranks,
from `mpitrain bench --json` measurements, checked against real runs.

  python3 scripts/perf_model.py --bench bench-np2.json [more] --global-batch 256,1024 \\
      [--ranks 1,2,4,...] [--steps-to-target N | --sweep DIR...] [--measured RUN_DIR...] \\
      [--calibration RUN_DIR...] [--allreduce ring|binomial] [--comm-source bench|calibration] \\
      [--compute-stat step|avg|max] [--comm-fit in-step|at-size|bench] \\
      [--overlap F] [--alpha S --beta S_PER_BYTE] [--out DIR]

The model of one step at global batch B on P ranks (every term per step, the
slowest rank's view; b = ceil(B/P) rows on the busiest rank):

  compute    = b * t_sample(b)          t_sample interpolated log-log over the
                                         bench's shard sizes (clamped outside
                                         them). By default (--compute-stat
                                         step, benches with step rows) from the
                                         bench's step pattern: steps back to
                                         back, forward + loss + backward with
                                         the gradient all-reduce, gradient norm
                                         and optimizer update, the step minus
                                         the all-reduce; so it holds the
                                         optimizer, the ranks' imbalance and
                                         their sharing of the cores. avg / max:
                                         forward + loss + backward per rank
  allreduce  = k * 2(P-1) alpha + 2(P-1)/P * n * beta
                                         ring all-reduce of n gradient bytes in
                                         k buckets (0 on one rank); with
                                         --allreduce binomial instead
                                         2 ceil(log2 P) (k alpha + n beta)
  data       = r * b * d_row             rows read: the whole read per row of
                                         --calibration runs without prefetch
                                         (with r > 1 ranks per core: from a
                                         calibration with a core per rank, and
                                         times r), else the wait per row
                                         measured in the runs, else 0
  optimizer  = 0 inside the step pattern; else --optimizer-s, a bench/run
                                         field, else time_compute_s minus the
                                         bench's forward/backward of the
                                         --calibration runs (else of the other
                                         measured runs), else ignored (said so)
  step       = compute + data + (1 - overlap) * allreduce + optimizer

alpha and beta are per hop. A bench at P ranks fitted its own all-reduce as
t(n) = a + b n, which the ring formula calls 2(P-1) alpha + 2(P-1)/P n beta,
so alpha = a / (2(P-1)); beta = b P / (2(P-1)) with b, by default
(--comm-fit in-step), such that the formula gives the trainer's all-reduce
as the step pattern timed it at that shard size (interpolated log-log
between shard sizes): on TCP an all-reduce between computes costs other than
back-to-back calls. --comm-fit at-size / bench use the back-to-back timings. The trainer reduces its
gradient buckets with blocking MPI_Allreduce (on its communication thread),
the call the bench times. (--allreduce binomial models a binomial reduce +
broadcast instead, what Open MPI 4.1's libnbc runs for MPI_Iallreduce;
--comm-source calibration takes beta from the trainer's own all-reduce time,
time_comm_s of the --calibration runs, at their P.) A bench at P = 1 has no
communication: then --alpha and --beta must be given for P > 1. With benches
at several P, each P of the table uses the bench nearest to it (log scale)
for the compute and the nearest multi-rank bench for alpha and beta.

Time to the target = steps to the target at B (--steps-to-target, or the best
rate's steps in the run directories of a sweep, as scripts/report.py finds
them) x the predicted step time (evaluation not included).

With --measured, every run directory (metrics.jsonl, epochs after the first)
gives a measured step time (epoch_time_s / steps_in_epoch) that is compared
with the prediction for its P and B; errors above --tolerance (15 %) are
flagged. Writes into --out (default: perf-model/):

  perf_model.png   step time vs P (log-log), one predicted curve per B,
                   measured runs as points; efficiency (or time to target) vs P
  perf_model.md    the assumptions, the table of predictions, predicted vs measured
  perf_model.json  the same numbers, for scripts

Needs numpy and matplotlib (Debian: python3-numpy python3-matplotlib).
"""

import argparse
import json
import math
import os
import sys


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from system_python import require_numpy_matplotlib
    require_numpy_matplotlib("perf_model", "MPITRAIN_PERF_MODEL_REEXEC")

import numpy as np  # noqa: E402

STAT_SLOTS = 16               # Arena::kStatSlots: floats that ride in the gradient all-reduce
TRAINER_BUCKET_BYTES = 262144  # the trainer's default --bucket-bytes (256 KiB)
DEFAULT_TOLERANCE = 0.15


def die(msg):
    raise SystemExit(f"perf_model: error: {msg}")


def _num(value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def parse_int_list(items, what):
    """['256,1024', '4096'] -> [256, 1024, 4096] (sorted, unique, each >= 1)."""
    out = []
    for item in items:
        for v in str(item).replace(" ", "").split(","):
            if not v:
                continue
            try:
                n = int(v)
            except ValueError:
                die(f"{what} takes whole numbers, e.g. 256,1024 (got '{v}')")
            if n < 1:
                die(f"{what} values must be >= 1 (got {n})")
            out.append(n)
    if not out:
        die(f"{what} is empty")
    return sorted(set(out))


def fmt_s(seconds):
    """Seconds as a short human number: 3.21 ms, 45.6 us, 12.3 s."""
    if seconds is None:
        return "-"
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"


# ---------------------------------------------------------------- the model's parts

def dense_buckets(model_spec, bucket_bytes):
    """Sizes in floats of the gradient all-reduce's buckets, as the trainer's
    GradientReducer cuts them: Dense layers register W (in x out) then b (out),
    each starting at a multiple of 16 floats; the reduce buffer is 16 stat
    slots then the parameters; buckets close, walking from the last parameter
    to the first, once they hold >= bucket_bytes/4 floats, and the first
    bucket takes the stats and whatever is left. None if the spec is not a
    list of widths."""
    try:
        widths = [int(w) for w in str(model_spec).split("-")]
    except ValueError:
        return None
    if len(widths) < 2 or any(w < 1 for w in widths):
        return None
    offsets, count = [], 0
    for a, b in zip(widths, widths[1:]):
        for n in (a * b, b):
            count = (count + 15) // 16 * 16
            offsets.append(count)
            count += n
    total = count + STAT_SLOTS
    limit = max(bucket_bytes // 4, 1) if bucket_bytes > 0 else total
    sizes, end = [], total
    for off in reversed(offsets[1:]):
        begin = STAT_SLOTS + off
        if end - begin >= limit:
            sizes.append(end - begin)
            end = begin
    sizes.append(end)
    return sizes[::-1]


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


def load_bench(path):
    """One `mpitrain bench --json` file, checked; exits with one clear message
    if it is missing, not JSON, or lacks what the model needs."""
    what = f"--bench {path}"
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        die(f"{what}: cannot read it ({e.strerror}); write it with `mpirun -np P mpitrain bench --json FILE`")
    obj = None
    lines = [l for l in text.splitlines() if l.strip()]
    for candidate in [text] + lines[-1:]:
        try:
            obj = json.loads(candidate)
            break
        except ValueError:
            continue
    if not isinstance(obj, dict):
        die(f"{what} is not the JSON object `mpitrain bench --json` writes"
            + (" (the file is empty)" if not text.strip() else " (it does not parse)"))
    ranks = obj.get("ranks")
    if not isinstance(ranks, int) or ranks < 1:
        die(f"{what}: no valid 'ranks' field (got {ranks!r}): not a `mpitrain bench --json` file?")
    rows = obj.get("compute")
    pts = []
    if isinstance(rows, list):
        for r in rows:
            if isinstance(r, dict):
                s, t = _num(r.get("shard")), _num(r.get("s_per_sample_avg"))
                if s and s > 0 and t and t > 0:
                    t_max = _num(r.get("s_per_sample_max"))
                    pts.append((s, t, t_max if t_max and t_max >= t else t))
    if not pts:
        die(f"{what}: no 'compute' rows with a shard and s_per_sample_avg > 0")
    pts.sort()
    params = _num(obj.get("params"))
    if not params or params <= 0:
        die(f"{what}: no valid 'params' field")
    a_fit, b_fit = _num(obj.get("alpha_s")), _num(obj.get("beta_s_per_byte"))
    if ranks > 1 and (a_fit is None or b_fit is None or a_fit < 0 or b_fit < 0):
        die(f"{what}: a {ranks}-rank bench without a valid alpha_s / beta_s_per_byte fit")
    ar = []
    for r in obj.get("allreduce") or []:
        if isinstance(r, dict) and _num(r.get("bytes")) and _num(r.get("s")):
            ar.append((float(r["bytes"]), float(r["s"])))
    ar.sort()
    # The bench's training-step pattern (steps back to back: forward +
    # backward with the gradient all-reduce, optimizer update): the compute
    # as the whole job sees it, per sample, and the all-reduce between
    # computes of that shard.
    steps = []
    for r in obj.get("step") or []:
        if isinstance(r, dict):
            s, t, a = _num(r.get("shard")), _num(r.get("s_per_sample")), _num(r.get("allreduce_s"))
            if s and s > 0 and t and t > 0 and a is not None and a >= 0:
                steps.append((s, t, a))
    steps.sort()
    b = dict(path=path, ranks=ranks, threads=obj.get("threads_per_rank"), model=obj.get("model"),
             params=int(params), shards=np.array([p[0] for p in pts]), t_sample=np.array([p[1] for p in pts]),
             t_sample_max=np.array([p[2] for p in pts]),
             a_fit=a_fit, b_fit=b_fit, allreduce=ar,
             step_shards=np.array([p[0] for p in steps]), t_sample_step=np.array([p[1] for p in steps]),
             allreduce_step=np.array([p[2] for p in steps]),
             step_optimizer=obj.get("step_optimizer") if steps else None)
    # Ranks per core on the bench's busiest node (> 1: oversubscribed).
    rn, cn = _num(obj.get("ranks_on_node")), _num(obj.get("cores_on_node"))
    b["ranks_per_core"] = max(1.0, rn / cn) if rn and cn and rn > 0 and cn > 0 else 1.0
    # A per-step optimizer time, if a newer bench measures one.
    for key in ("optimizer_s_per_step", "optimizer_s", "time_optimizer_s"):
        if _num(obj.get(key)) is not None:
            b["optimizer_s"] = _num(obj.get(key))
            break
    return b


def load_measured(path, what="--measured"):
    """A training run directory (or a metrics.jsonl): its header, the steady
    epochs (after the first) and the measured step time and its split."""
    mpath = os.path.join(path, "metrics.jsonl") if os.path.isdir(path) else path
    if not os.path.isfile(mpath):
        die(f"{what} {path}: no metrics.jsonl (give training run directories, e.g. from --run-dir)")
    lines = []
    with open(mpath, errors="replace") as f:
        for text in f:
            try:
                d = json.loads(text)
            except ValueError:
                continue  # a run killed mid-write leaves a partial last line
            if isinstance(d, dict):
                lines.append(d)
    header = next((d for d in lines if d.get("type") == "header"), lines[0] if lines else {})
    config = header.get("config") or {}
    epochs = [d for d in lines if d.get("type") == "epoch" and _num(d.get("epoch_time_s"))]
    if not epochs:
        die(f"{what} {path}: no epoch lines with epoch_time_s in {mpath}")
    steady = epochs[1:] if len(epochs) > 1 else epochs
    prev_step = {e.get("epoch"): e.get("step") for e in epochs}

    def steps_of(e):
        n = _num(e.get("steps_in_epoch"))
        if n:
            return n
        before = prev_step.get((e.get("epoch") or 0) - 1, 0) or 0
        return (_num(e.get("step")) or 0) - before

    steps = sum(steps_of(e) for e in steady)
    train_s = sum(_num(e.get("epoch_time_s")) or 0.0 for e in steady)
    if steps <= 0 or train_s <= 0:
        die(f"{what} {path}: the epoch lines have no steps or no time")

    def per_step(key):
        vals = [_num(e.get(key)) for e in steady]
        return sum(vals) / steps if all(v is not None for v in vals) else None

    B = int(_num(steady[-1].get("global_batch")) or _num(config.get("global-batch")) or 0)
    P = int(_num(header.get("ranks")) or 0)
    if B < 1 or P < 1:
        die(f"{what} {path}: the metrics do not say the global batch and ranks (header line missing?)")
    run = dict(path=path, name=os.path.basename(os.path.normpath(path if os.path.isdir(path) else os.path.dirname(path))),
               P=P, B=B, nodes=header.get("nodes"), threads=header.get("threads_per_rank"), model=header.get("model"),
               params=_num(header.get("params")), epochs_used=[e.get("epoch") for e in steady],
               steps=steps, step_s=train_s / steps,
               data_s=per_step("time_data_s"), compute_s=per_step("time_compute_s"),
               wait_s=per_step("time_allreduce_s"), comm_s=per_step("time_comm_s"),
               optimizer_s=per_step("time_optimizer_s") if any("time_optimizer_s" in e for e in steady) else None,
               bucket_bytes=_num(config.get("bucket-bytes")),
               hosts=[h.get("host") for h in header.get("hosts") or [] if isinstance(h, dict)])
    run["overlap"] = None
    if run["comm_s"] and run["comm_s"] > 0 and run["wait_s"] is not None:
        run["overlap"] = min(1.0, max(0.0, 1.0 - run["wait_s"] / run["comm_s"]))
    rows = math.ceil(B / P)
    run["data_s_per_row"] = run["data_s"] / rows if run["data_s"] is not None else None
    # Without prefetch time_data_s is the whole read; with it, only the wait.
    run["prefetch"] = str(config.get("prefetch", "true")).lower() not in ("false", "0", "no", "off")
    return run


def steps_from_sweeps(dirs):
    """{B: (steps to the target, how)} from sweep directories, as report.py
    reads them: the best rate's steps at each B, and the fit S(B) for others."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    import report  # noqa: E402 (scripts/report.py)
    runs = report.load_sweeps(dirs)
    best = report.best_per_batch(runs)
    fit = report.fit_steps_to_target(list(best), [r["S"] for r in best.values()])
    if fit and fit["problem"]:
        fit = None
    return best, fit


def nearest(items, key, x):
    """The item whose key is nearest to x on a log scale (ties: the larger)."""
    return min(items, key=lambda it: (abs(math.log(key(it)) - math.log(x)), -key(it)))


class Model:
    def __init__(self, benches, measured, args, calibration=()):
        self.benches = sorted(benches, key=lambda b: b["ranks"])
        self.comm_benches = [b for b in self.benches if b["ranks"] > 1]
        self.measured = measured
        self.calibration = list(calibration)
        self.args = args
        self.notes = []       # assumptions, printed at the top
        self.warnings = []
        with_steps = all(len(b["step_shards"]) for b in self.benches)
        if args.compute_stat is None:
            args.compute_stat = "step" if with_steps else "avg"
        if args.compute_stat == "step" and not with_steps:
            die("--compute-stat step needs benches with 'step' rows (from a newer `mpitrain bench`): "
                + ", ".join(b["path"] for b in self.benches if not len(b["step_shards"])) + " has none")
        self.stat = {"max": "t_sample_max", "step": "t_sample_step"}.get(args.compute_stat, "t_sample")
        comm_steps = all(len(b["step_shards"]) for b in self.comm_benches)
        if args.comm_fit is None:
            args.comm_fit = "in-step" if self.comm_benches and comm_steps else "at-size"
        if args.comm_fit == "in-step" and not comm_steps:
            die("--comm-fit in-step needs benches with 'step' rows (from a newer `mpitrain bench`)")
        params = {b["params"] for b in self.benches}
        if len(params) > 1:
            die(f"the bench files time different models ({', '.join(map(str, sorted(params)))} parameters)")
        self.params = params.pop()
        self.model_spec = self.benches[0].get("model")
        for r in list(measured) + self.calibration:
            if r["params"] and int(r["params"]) != self.params:
                die(f"--measured {r['path']} trained a model of {int(r['params'])} parameters, "
                    f"the bench timed {self.params}")
        # Bucket size: option, else the runs' own (all the same), else the trainer's default.
        if args.bucket_bytes is not None:
            self.bucket_bytes, how = args.bucket_bytes, "--bucket-bytes"
        else:
            seen = {int(r["bucket_bytes"]) for r in measured if r["bucket_bytes"] is not None}
            if len(seen) == 1:
                self.bucket_bytes, how = seen.pop(), "the measured runs' --bucket-bytes"
            else:
                self.bucket_bytes, how = TRAINER_BUCKET_BYTES, "the trainer's default --bucket-bytes"
                if len(seen) > 1:
                    self.warnings.append(f"the measured runs use different --bucket-bytes {sorted(seen)}: "
                                         f"the model uses {TRAINER_BUCKET_BYTES}; pass --bucket-bytes")
        sizes = dense_buckets(self.model_spec, self.bucket_bytes)
        if sizes and sum(sizes) - STAT_SLOTS >= self.params:
            self.grad_bytes = 4 * sum(sizes)
            self.buckets = len(sizes)
            bucket_text = (f"{self.buckets} bucket(s) of {', '.join(f'{4 * s / 1e3:.0f}' for s in sizes)} kB, "
                           f"cut as the trainer cuts model {self.model_spec}")
        else:
            self.grad_bytes = 4 * (self.params + STAT_SLOTS)
            self.buckets = max(1, math.ceil(self.grad_bytes / self.bucket_bytes)) if self.bucket_bytes > 0 else 1
            bucket_text = f"{self.buckets} bucket(s) (n / bucket size, rounded up)"
        self.notes.append(f"Gradient all-reduce: n = {self.grad_bytes} bytes ({self.params} parameters + "
                          f"{STAT_SLOTS} stat slots, float32) per step, bucket size {self.bucket_bytes} bytes "
                          f"({how}): {bucket_text}. Each bucket pays the latency term.")

        # Per-hop alpha and beta of each multi-rank bench.
        for b in self.comm_benches:
            self.derive_alpha_beta(b, args.comm_fit)
        # Compute.
        for b in self.benches:
            self.notes.append(
                f"Bench `{b['path']}`: P = {b['ranks']}, {b['threads']} BLAS thread(s) per rank, "
                + (f"t_sample (in the step pattern, --compute-stat step) " if args.compute_stat == "step" else
                   f"t_sample ({args.compute_stat} over ranks) ")
                + f"{fmt_s(self.curve(b)[1][0])} at shard {self.curve(b)[0][0]:.0f} .. "
                f"{fmt_s(self.curve(b)[1][-1])} at shard {self.curve(b)[0][-1]:.0f}"
                + (f"; {b['comm_text']} -> per hop alpha = {fmt_s(b['alpha'])}, beta = {b['beta']:.3e} s/B "
                   f"({1e-9 / b['beta'] if b['beta'] > 0 else float('inf'):.3g} GB/s)"
                   if b["ranks"] > 1 else "; no communication (one rank)") + ".")
        if len(self.benches) > 1:
            self.notes.append("Each P uses the bench nearest to it on a log scale for t_sample, and the nearest "
                              "multi-rank bench for alpha and beta (column *bench* of the table).")
        for b in self.benches:
            if b["ranks_per_core"] > 1:
                self.notes.append(
                    f"The bench at P = {b['ranks']} ran {b['ranks_per_core']:g} ranks per core (oversubscribed): "
                    "every P that uses it inherits that sharing of the cores, in t_sample and in the reads.")
        self.notes.append("Compute per step = b x t_sample(b), b = ceil(B/P) rows on the busiest rank "
                          "(at least 1), t_sample interpolated log-log over the bench's shard sizes and "
                          "clamped outside them (a warning says when).")
        if args.compute_stat == "step":
            self.notes.append(
                "t_sample comes from the bench's step pattern (steps back to back, forward + backward with the "
                "gradient all-reduce and the optimizer update, as the trainer runs them; --compute-stat step): "
                "the step of the slowest rank minus the all-reduce time of the rank that waited least. It holds the ranks' imbalance and, with more "
                "ranks than cores, their sharing of the cores, including the cycles ranks that are done spend "
                "polling in the all-reduce. (The per-rank averages, --compute-stat avg, miss that: one rank's "
                "short compute fits in one scheduler slice.)")
        # Communication.
        if args.alpha is not None or args.beta is not None:
            if args.alpha is None or args.beta is None:
                die("--alpha and --beta go together (per-hop seconds and seconds per byte)")
            self.notes.append(f"alpha = {fmt_s(args.alpha)} and beta = {args.beta:.3e} s/B per hop from the "
                              "command line (--alpha/--beta), for every P.")
        elif args.comm_source == "calibration":
            self.cal_comm = self.calibrated_comm()
            self.notes.append(
                "Communication from the --calibration runs (--comm-source calibration): at each of their P the "
                "trainer's own all-reduce, time_comm_s per step (in flight, median), sets beta through the "
                f"{args.allreduce} formula below, with alpha from the bench nearest in P; "
                + "; ".join(f"P = {c['ranks']}: {fmt_s(c['t'])} per step ("
                            + (f"the bench's blocking MPI_Allreduce of n bytes: {fmt_s(c['bench_t'])}"
                               if c["bench_t"] is not None else "no bench at this P")
                            + f") -> beta = {c['beta']:.3e} s/B" for c in self.cal_comm) + ".")
        elif not self.comm_benches:
            self.notes.append("The bench files are all at P = 1: they hold no communication measurement.")
        if args.allreduce == "ring":
            self.notes.append("All-reduce per step (ring, --allreduce ring) = k x 2(P-1) alpha + 2(P-1)/P x n x beta, "
                              "0 on one rank (the trainer's blocking MPI_Allreduce per bucket).")
        else:
            self.notes.append("All-reduce per step (binomial reduce + binomial broadcast, --allreduce binomial: what "
                              "Open MPI 4.1's libnbc runs for MPI_Iallreduce) = "
                              "2 ceil(log2 P) x (k alpha + n beta), 0 on one rank; alpha and beta per hop as above.")
        # Overlap.
        if args.overlap is not None:
            self.notes.append(f"Overlap: {args.overlap:g} of the all-reduce is hidden behind backward (--overlap).")
        elif any(r["overlap"] is not None for r in measured if r["P"] > 1):
            self.notes.append("Overlap: as measured, 1 - time_allreduce_s / time_comm_s of the measured run "
                              "nearest in P (then B) with P > 1.")
        else:
            self.notes.append("Overlap: 0 (no --overlap, and no measured run with time_comm_s): the whole "
                              "all-reduce is exposed.")
        # Data.
        if args.data_s_per_row is not None:
            self.notes.append(f"Data wait: {fmt_s(args.data_s_per_row)} per row on the busiest rank "
                              "(--data-s-per-row).")
        elif self.read_runs():
            self.notes.append("Data per step = b x the read time per row of the --calibration runs at the nearest "
                              "P (trained without --prefetch, so time_data_s is the whole read). The reads are "
                              "counted in full: with the trainer's default threads (cores per node / ranks per "
                              "node) every core runs BLAS, so the prefetch thread's reads take CPU from the "
                              "compute instead of hiding behind it. With more ranks than cores on a node (the "
                              "bench's ranks_on_node / cores_on_node = r > 1) the reads share the cores as the "
                              "compute does: the read time per row is then taken from the calibration runs at "
                              "the nearest P that had a core per rank (an oversubscribed calibration's own short "
                              "reads are partly contended, partly not) and multiplied by r.")
        elif any(r["data_s_per_row"] is not None for r in measured):
            self.notes.append("Data wait per step = b x the measured wait per row (time_data_s / steps / "
                              "ceil(B/P)) of the measured run nearest in P, then B.")
        else:
            self.notes.append("Data wait: 0 (no measured runs): the model assumes prefetch hides every read.")
        # Optimizer.
        self.optimizer, self.optimizer_residual = None, False
        in_step = self.stat == "t_sample_step" and all(b.get("step_optimizer") for b in self.benches)
        if in_step and args.optimizer_s is not None:
            self.warnings.append("--optimizer-s is added on top of t_sample, whose step pattern already holds an "
                                 "optimizer update: use --compute-stat avg with --optimizer-s, or leave it out")
        if args.optimizer_s is not None:
            self.optimizer, how = args.optimizer_s, "--optimizer-s"
        elif in_step:
            self.optimizer = 0.0
        elif any("optimizer_s" in b for b in self.benches):
            self.optimizer = next(b["optimizer_s"] for b in self.benches if "optimizer_s" in b)
            how = "the bench"
        elif any(r["optimizer_s"] is not None for r in measured):
            self.optimizer = float(np.median([r["optimizer_s"] for r in measured if r["optimizer_s"] is not None]))
            how = "the measured runs' time_optimizer_s (median)"
        elif any(r["compute_s"] is not None for r in self.calibration or measured):
            self.optimizer_residual = True
        if self.optimizer_residual and self.calibration:
            self.notes.append(
                "Optimizer update (and the other per-step work of the compute timer: gradient norms, noise scale): "
                "neither the bench nor the runs time it apart, so it is estimated from the --calibration runs "
                "as their time_compute_s per step (forward, backward and optimizer) minus the bench's "
                "b x t_sample(b), the median over those at the nearest P. The calibration runs are not compared. "
                "--optimizer-s sets it instead.")
        elif self.optimizer_residual:
            self.notes.append(
                "Optimizer update (and the other per-step work of the compute timer: gradient norms, noise scale): "
                "neither the bench nor the runs time it apart, so it is estimated from the measured runs as their "
                "time_compute_s per step (forward, backward and optimizer) minus the bench's b x t_sample(b), "
                "the median over the runs at the nearest P; a measured run is predicted from the *other* runs' "
                "estimate (leave-one-out), never from its own. --calibration (runs at a small B) or "
                "--optimizer-s set it instead.")
        elif in_step and args.optimizer_s is None:
            self.notes.append("Optimizer update: part of t_sample: the bench's step pattern includes the gradient "
                              f"norm and a {self.benches[0]['step_optimizer']} update (mpitrain bench --optimizer).")
        elif self.optimizer is None:
            self.notes.append("Optimizer update: ignored (neither the bench nor the runs time it separately; "
                              "--optimizer-s sets it). It is O(params) per step and the same at every P and B.")
        else:
            self.notes.append(f"Optimizer update: {fmt_s(self.optimizer)} per step ({how}), "
                              f"{self.optimizer / self.params:.3g} s per parameter, the same at every P and B.")
        for r in measured:
            cb = nearest(self.benches, lambda x: x["ranks"], r["P"])
            if r["threads"] is not None and cb["threads"] is not None and r["threads"] != cb["threads"]:
                self.warnings.append(f"run {r['name']} used {r['threads']} BLAS thread(s) per rank, the bench at "
                                     f"P = {cb['ranks']} {cb['threads']}: t_sample depends on them")
            if cb["ranks"] != r["P"]:
                self.warnings.append(f"run {r['name']} is at P = {r['P']} and no bench is: its compute comes "
                                     f"from the bench at P = {cb['ranks']}")

    def derive_alpha_beta(self, b, how):
        """Per-hop alpha and beta of a P-rank bench from its all-reduce
        t(n) = a + b n = 2(P-1) alpha + 2(P-1)/P n beta.

        how = 'bench': a and b are the bench's own fit (weighted by relative
        error over all its message sizes). how = 'at-size' (default): a is the
        bench's fit, and b makes a + b n equal the bench's measured time at the
        trainer's bucket size n (log-log interpolation between its rows), so
        the model reproduces the bench where the trainer actually works; the
        bench's fit is used when its rows do not bracket n."""
        P = b["ranks"]
        n = self.grad_bytes / self.buckets
        a, slope = b["a_fit"], b["b_fit"]
        fitted = a + slope * n
        text = f"all-reduce fit t(n) = {fmt_s(a)} + n x {slope:.3e} s/B"
        measured = None
        if len(b["allreduce"]) >= 2:
            xs = np.array([r[0] for r in b["allreduce"]])
            ys = np.array([r[1] for r in b["allreduce"]])
            value, clamped = loglog_interp(n, xs, ys)
            if not clamped:
                measured = value
        if measured is not None:
            text += (f"; at a bucket of {n / 1e3:.0f} kB it gives {fmt_s(fitted)}, the bench measured "
                     f"{fmt_s(measured)} ({100 * (fitted - measured) / measured:+.0f} %)")
        if how == "in-step":
            k = self.buckets
            ts = b["allreduce_step"]
            b["step_beta"] = [max(0.0, (t - k * a) * P / (2 * (P - 1) * self.grad_bytes)) for t in ts]
            slope = b["step_beta"][-1] * 2 * (P - 1) / P
            text += ("; in the step pattern (--comm-fit in-step) the trainer's gradient all-reduce took "
                     + ", ".join(f"{fmt_s(t)} at shard {s:.0f}" for s, t in zip(b["step_shards"], ts))
                     + ": beta per hop follows it at each shard (interpolated in b), alpha is the fit's; "
                     f"at shard {b['step_shards'][-1]:.0f}: t(n) = {fmt_s(a)} + n x {slope:.3e} s/B")
        elif how == "at-size":
            if measured is not None:
                slope = max(0.0, (measured - a) / n)
                text += f"; with t({n / 1e3:.0f} kB) as measured (--comm-fit at-size): t(n) = {fmt_s(a)} + n x {slope:.3e} s/B"
            else:
                text += "; its rows do not bracket the bucket size, so the fit is used"
        b["alpha"] = a / (2 * (P - 1))
        b["beta"] = slope * P / (2 * (P - 1))
        b["comm_text"] = text

    def calibrated_comm(self):
        """Per-hop alpha and beta at each P of the calibration runs, from the
        trainer's measured all-reduce time (time_comm_s per step)."""
        if not self.comm_benches:
            die("--comm-source calibration needs a bench at P > 1 (for alpha)")
        out = []
        for P in sorted({r["P"] for r in self.calibration if r["P"] > 1 and r["comm_s"]}):
            t = float(np.median([r["comm_s"] for r in self.calibration if r["P"] == P and r["comm_s"]]))
            b = nearest(self.comm_benches, lambda x: x["ranks"], P)
            alpha = b["alpha"]
            if self.args.allreduce == "binomial":
                rounds = math.ceil(math.log2(P))
                beta = (t / (2 * rounds) - self.buckets * alpha) / self.grad_bytes
            else:
                beta = (t - self.buckets * 2 * (P - 1) * alpha) / (2 * (P - 1) / P * self.grad_bytes)
            beta = max(0.0, beta)
            bench_t = allreduce_time("ring", b["ranks"], self.buckets, self.grad_bytes, b["alpha"], b["beta"])
            out.append(dict(ranks=P, t=t, alpha=alpha, beta=beta, bench_t=bench_t if b["ranks"] == P else None))
        if not out:
            die("--comm-source calibration needs --calibration runs at P > 1 with time_comm_s in their metrics")
        return out

    def comm_params(self, P, b_rows):
        """(alpha, beta, bench) for P ranks with b_rows rows per rank."""
        if self.args.alpha is not None:
            return self.args.alpha, self.args.beta, None
        if self.args.comm_source == "calibration":
            c = nearest(self.cal_comm, lambda x: x["ranks"], P)
            return c["alpha"], c["beta"], dict(ranks=f"{c['ranks']} (calibration)")
        if not self.comm_benches:
            die(f"the bench files are all at P = 1 and hold no communication measurement, so P = {P} cannot "
                "be predicted: give --alpha and --beta (per hop), or a bench at P > 1")
        b = nearest(self.comm_benches, lambda x: x["ranks"], P)
        if self.args.comm_fit == "in-step":
            beta = loglog_positive(b_rows, b["step_shards"], b["step_beta"])
            return b["alpha"], beta, b
        return b["alpha"], b["beta"], b

    def read_runs(self):
        """The calibration runs that timed whole reads (no prefetch)."""
        return [r for r in self.calibration if not r["prefetch"] and r["data_s_per_row"] is not None]

    def nearest_run(self, P, B, key):
        cands = [r for r in self.measured if r[key] is not None and (key != "overlap" or r["P"] > 1)]
        if not cands:
            return None
        closest_p = nearest(cands, lambda r: r["P"], P)["P"]
        return nearest([r for r in cands if r["P"] == closest_p], lambda r: r["B"], B)

    def curve(self, b):
        """(shard sizes, t_sample) of bench b for the chosen --compute-stat."""
        if self.stat == "t_sample_step":
            return b["step_shards"], b["t_sample_step"]
        return b["shards"], b[self.stat]

    def compute_at(self, P, B):
        """(seconds of forward + backward per step, t_sample, clamped, bench) on the busiest rank."""
        b_rows = max(1, math.ceil(B / P))
        cb = nearest(self.benches, lambda x: x["ranks"], P)
        t_sample, clamped = loglog_interp(b_rows, *self.curve(cb))
        return b_rows * t_sample, t_sample, clamped, cb

    def optimizer_at(self, P, exclude=None):
        """(optimizer seconds per step, note) at P; `exclude`: the run being predicted."""
        if not self.optimizer_residual:
            return self.optimizer or 0.0, ""
        pool = self.calibration or self.measured
        cands = [r for r in pool if r["compute_s"] is not None and r is not exclude]
        note = ""
        if not cands:  # the only run: its own estimate, said so
            if exclude is None:
                return 0.0, ""
            cands, note = [exclude], "from this run itself (no other run)"
        closest = nearest(cands, lambda r: r["P"], P)["P"]
        residuals = []
        for r in cands:
            if r["P"] == closest:
                fwd_bwd = self.compute_at(r["P"], r["B"])[0]
                residuals.append(max(0.0, r["compute_s"] - fwd_bwd))
        return float(np.median(residuals)), note or f"median of {len(residuals)} run(s) at P={closest}"

    def predict(self, P, B, exclude=None):
        b_rows = max(1, math.ceil(B / P))
        compute, t_sample, clamped, cb = self.compute_at(P, B)
        if P > 1:
            alpha, beta, comm_b = self.comm_params(P, b_rows)
            allreduce = allreduce_time(self.args.allreduce, P, self.buckets, self.grad_bytes, alpha, beta)
        else:
            allreduce, comm_b = 0.0, None
        if self.args.overlap is not None:
            overlap = self.args.overlap if P > 1 else 0.0
        else:
            r = self.nearest_run(P, B, "overlap") if P > 1 else None
            overlap = r["overlap"] if r else 0.0
        if self.args.data_s_per_row is not None:
            data = b_rows * self.args.data_s_per_row
        elif self.read_runs():
            runs = self.read_runs()
            share = cb["ranks_per_core"]
            if share > 1:  # uncontended reads, shared by r ranks per core
                own = [r for r in runs if nearest(self.benches, lambda x: x["ranks"], r["P"])["ranks_per_core"] <= 1]
                runs = own or runs
            closest = nearest(runs, lambda r: r["P"], P)["P"]
            data = share * b_rows * float(np.median([r["data_s_per_row"] for r in runs if r["P"] == closest]))
        else:
            r = self.nearest_run(P, B, "data_s_per_row")
            data = b_rows * r["data_s_per_row"] if r else 0.0
        optimizer, opt_note = self.optimizer_at(P, exclude)
        step = compute + data + (1.0 - overlap) * allreduce + optimizer
        benches = f"P={cb['ranks']}" + (f", P={comm_b['ranks']}" if comm_b and comm_b is not cb else "")
        return dict(P=P, B=B, rows=b_rows, t_sample=t_sample, clamped=clamped, compute_s=compute, data_s=data,
                    allreduce_s=allreduce, overlap=overlap, exposed_s=(1.0 - overlap) * allreduce,
                    optimizer_s=optimizer, optimizer_note=opt_note, step_s=step, samples_per_s=B / step,
                    bench=benches)


# ---------------------------------------------------------------- output

def plot(plt, table, batches, ranks, measured_rows, ttt, allreduce, path):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.6))
    cmap = plt.get_cmap("viridis")
    for i, B in enumerate(batches):
        color = cmap(i / max(1, len(batches) - 1) * 0.85)
        rows = [table[(P, B)] for P in ranks]
        a1.plot(ranks, [r["step_s"] * 1e3 for r in rows], ".-", color=color, label=f"predicted B={B}")
        pts = [m for m in measured_rows if m["B"] == B]
        if pts:
            a1.scatter([m["P"] for m in pts], [m["measured_s"] * 1e3 for m in pts], marker="o", s=40,
                       facecolors="none", edgecolors=color, linewidths=1.6, zorder=3, label=f"measured B={B}")
        if ttt:
            ys = [r.get("time_to_target_s") for r in rows]
            if any(y for y in ys):
                a2.plot(ranks, ys, "-", color=color, label=f"B={B}")
        else:
            a2.plot(ranks, [r["efficiency"] for r in rows], "-", color=color, label=f"B={B}")
    other = [m for m in measured_rows if m["B"] not in batches]
    if other:
        a1.scatter([m["P"] for m in other], [m["measured_s"] * 1e3 for m in other], marker="x", color="tab:red",
                   zorder=3, label="measured (other B)")
    from matplotlib.ticker import FuncFormatter
    for a in (a1, a2):
        a.set_xscale("log", base=2)
        a.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        a.set_xlabel("ranks P")
        a.grid(True, which="major", alpha=0.3)
        a.legend(fontsize=7)
    from matplotlib.ticker import LogLocator, NullFormatter
    a1.set_yscale("log")
    a1.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    a1.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    a1.yaxis.set_minor_formatter(NullFormatter())
    a1.set_ylabel("step time (ms)")
    a1.set_title(f"predicted step time ({allreduce} all-reduce, lines) vs measured runs (circles)", fontsize=9)
    if ttt:
        a2.set_yscale("log")
        a2.set_ylabel("predicted time to the target (s)")
        a2.set_title("time to the target = steps(B) x step time", fontsize=10)
    else:
        a2.axhline(1.0, color="k", ls=":", lw=1)
        a2.set_ylabel("scaling efficiency T(1) / (P T(P))")
        a2.set_title("predicted efficiency at fixed B", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="The model, its inputs and its outputs: see the top of this file.")
    ap.add_argument("--bench", nargs="+", action="extend", required=True, metavar="FILE",
                    help="`mpitrain bench --json` files (one per rank count)")
    ap.add_argument("--global-batch", nargs="+", action="extend", required=True, metavar="B",
                    help="global batch sizes, e.g. 256,1024 or 256 1024")
    ap.add_argument("--ranks", nargs="+", action="extend", metavar="P",
                    help="rank counts (default: powers of two 1..1024, plus the measured runs' P)")
    tt = ap.add_mutually_exclusive_group()
    tt.add_argument("--steps-to-target", metavar="N|B:N,...",
                    help="steps to the target: one N for every B, or per B as B:N,B:N")
    tt.add_argument("--sweep", nargs="+", metavar="DIR",
                    help="sweep directories (scripts/sweep.py): the best rate's steps to the target at each B")
    ap.add_argument("--measured", nargs="+", action="extend", default=[], metavar="RUN_DIR",
                    help="training run directories to compare with (metrics.jsonl, epochs after the first)")
    ap.add_argument("--calibration", nargs="+", action="extend", default=[], metavar="RUN_DIR",
                    help="run directories (best at a small B, trained with --prefetch false) used only for the "
                         "per-step optimizer cost (time_compute_s minus the bench's forward/backward) and the read "
                         "time per row (time_data_s); not compared")
    ap.add_argument("--overlap", type=float, help="fraction of the all-reduce hidden behind backward "
                    "(default: measured, 1 - time_allreduce_s/time_comm_s, else 0)")
    ap.add_argument("--allreduce", choices=["ring", "binomial"], default="ring",
                    help="the all-reduce's cost: ring (default; the trainer's blocking MPI_Allreduce per bucket) or "
                         "binomial reduce + broadcast (Open MPI 4.1 libnbc's MPI_Iallreduce)")
    ap.add_argument("--comm-source", choices=["bench", "calibration"], default="bench",
                    help="where beta comes from: the benches' all-reduce (default), or the trainer's own all-reduce "
                         "time in the --calibration runs (time_comm_s), at their P")
    ap.add_argument("--comm-fit", choices=["in-step", "at-size", "bench"],
                    help="alpha-beta of each bench: its fit's alpha with beta through the trainer's gradient "
                         "all-reduce timed in the bench's step pattern at the shard size (in-step, default when "
                         "the benches have step rows), through its back-to-back time at the trainer's bucket "
                         "size (at-size, the default otherwise), or its own fit (bench)")
    ap.add_argument("--compute-stat", choices=["step", "avg", "max"],
                    help="t_sample from the bench's step pattern (step, default when the benches have step "
                         "rows), its average over ranks (avg, the default otherwise) or its slowest rank (max)")
    ap.add_argument("--alpha", type=float, help="per-hop latency in seconds (overrides the benches)")
    ap.add_argument("--beta", type=float, help="per-hop seconds per byte (overrides the benches)")
    ap.add_argument("--data-s-per-row", type=float, help="data wait per row on the busiest rank "
                    "(default: from the measured runs, else 0)")
    ap.add_argument("--optimizer-s", type=float, help="optimizer update per step in seconds (default: a bench "
                    "or run field, else estimated from the other measured runs, else ignored)")
    ap.add_argument("--bucket-bytes", type=int, help="the trainer's --bucket-bytes (default: the measured "
                    f"runs', else {TRAINER_BUCKET_BYTES}; 0: one all-reduce)")
    ap.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                    help="flag measured runs whose step time is off by more than this (default 0.15)")
    ap.add_argument("--check", action="store_true", help="exit with 1 if a measured run is off by more than "
                    "--tolerance")
    ap.add_argument("--out", default="perf-model", help="output directory (default perf-model)")
    ap.add_argument("--no-plot", action="store_true", help="write the tables only (no PNG, no matplotlib)")
    args = ap.parse_args(argv)
    for name in ("overlap",):
        v = getattr(args, name)
        if v is not None and not 0.0 <= v <= 1.0:
            die(f"--{name} must be in [0, 1] (got {v})")
    for name in ("alpha", "beta", "data_s_per_row", "optimizer_s"):
        v = getattr(args, name)
        if v is not None and not (math.isfinite(v) and v >= 0):
            die(f"--{name.replace('_', '-')} must be a number >= 0 (got {v})")
    if args.bucket_bytes is not None and args.bucket_bytes < 0:
        die("--bucket-bytes must be >= 0")

    benches = [load_bench(p) for p in args.bench]
    by_p = {}
    for b in benches:
        if b["ranks"] in by_p:
            die(f"two bench files at P = {b['ranks']}: {by_p[b['ranks']]['path']} and {b['path']}")
        by_p[b["ranks"]] = b
    measured = [load_measured(p) for p in args.measured]
    batches = parse_int_list(args.global_batch, "--global-batch")
    ranks = parse_int_list(args.ranks, "--ranks") if args.ranks else \
        sorted({2 ** i for i in range(11)} | {r["P"] for r in measured})
    calibration = [load_measured(p, "--calibration") for p in args.calibration]
    model = Model(benches, measured, args, calibration)

    # Steps to the target.
    steps_at, ttt_note = {}, None
    if args.steps_to_target:
        text = args.steps_to_target.replace(" ", "")
        try:
            if ":" in text:
                for item in text.split(","):
                    b, n = item.split(":")
                    steps_at[int(b)] = (float(n), "--steps-to-target")
            else:
                steps_at = {B: (float(text), "--steps-to-target") for B in batches}
        except ValueError:
            die(f"--steps-to-target takes N or B:N,B:N (got '{args.steps_to_target}')")
        ttt_note = "Steps to the target from --steps-to-target."
    elif args.sweep:
        best, fit = steps_from_sweeps(args.sweep)
        for B in batches:
            if B in best:
                steps_at[B] = (float(best[B]["S"]), f"sweep, best rate lr {best[B]['lr']:g}")
            elif fit:
                steps_at[B] = (fit["s_min"] + fit["e_min"] / B, "sweep fit S_min + E_min/B")
        ttt_note = (f"Steps to the target from the sweep(s) {', '.join(args.sweep)}: the best rate's steps at B "
                    "(or the fit S(B) = S_min + E_min/B where B was not run).")
        if not steps_at:
            model.warnings.append("the sweep has no B of --global-batch that reached the target, and no fit: "
                                  "no time to the target")
    if ttt_note:
        model.notes.append(ttt_note + " Time to the target = steps x predicted step time (evaluation excluded).")

    # The table.
    table = {}
    clamped = set()
    for B in batches:
        base = model.predict(1, B)  # the efficiency's reference
        for P in ranks:
            r = model.predict(P, B)
            r["efficiency"] = base["step_s"] / (P * r["step_s"])
            if B in steps_at:
                r["steps_to_target"], r["steps_how"] = steps_at[B]
                r["time_to_target_s"] = r["steps_to_target"] * r["step_s"]
            if r["clamped"]:
                clamped.add((r["rows"], r["bench"]))
            table[(P, B)] = r
    if clamped:
        rows = sorted({c[0] for c in clamped})
        model.warnings.append(f"t_sample clamped for {len(rows)} shard size(s) outside the bench's "
                              f"({', '.join(map(str, rows[:8]))}{' ...' if len(rows) > 8 else ''} rows): "
                              "bench those sizes with --shard-sizes for a better estimate")
    top = max(b["ranks"] for b in benches)
    if max(ranks) > top:
        model.notes.append(f"Beyond P = {top} the model extrapolates with the bench at P = {top} (its t_sample "
                           "and per-hop alpha, beta): if those ranks shared cores (oversubscribed) or one "
                           "machine's memory, the larger P inherit that, which a cluster of separate nodes "
                           "would not have.")
    if P_over := [P for P in ranks for B in batches if P > B]:
        model.notes.append(f"Where P > B (e.g. P = {min(P_over)}), ranks without rows still join the "
                           "all-reduce: compute is one row, communication grows with P.")

    # Measured vs predicted.
    mrows = []
    for run in measured:
        p = model.predict(run["P"], run["B"], exclude=run)
        err = (p["step_s"] - run["step_s"]) / run["step_s"]
        mrows.append(dict(run=run["name"], path=run["path"], P=run["P"], B=run["B"], nodes=run["nodes"],
                          predicted_s=p["step_s"], measured_s=run["step_s"], error=err,
                          flagged=abs(err) > args.tolerance, epochs_used=run["epochs_used"],
                          predicted=p, measured={k: run[k] for k in ("data_s", "compute_s", "wait_s", "comm_s",
                                                                      "overlap")}))

    # Print.
    out = []
    w = out.append
    w("# Performance model of the data-parallel step\n")
    w("step = compute + data + (1 - overlap) x allreduce + optimizer, with compute = b t_sample(b), b = ceil(B/P), "
      + ("allreduce = k 2(P-1) alpha + 2(P-1)/P n beta (ring).\n" if args.allreduce == "ring" else
         "allreduce = 2 ceil(log2 P) (k alpha + n beta) (binomial reduce + broadcast).\n"))
    w("## Assumptions\n")
    for n in model.notes:
        w(f"- {n}")
    for n in model.warnings:
        w(f"- **Warning:** {n}")
    w("")
    w("## Predicted\n")
    has_ttt = any("time_to_target_s" in r for r in table.values())
    head = "| B | P | step | compute | data | all-reduce | exposed | samples/s | efficiency |" + \
        (" steps to target | time to target |" if has_ttt else "") + " bench |"
    w(head)
    w("|" + "---|" * (head.count("|") - 1))
    for B in batches:
        for P in ranks:
            r = table[(P, B)]
            line = (f"| {B} | {P} | {fmt_s(r['step_s'])} | {fmt_s(r['compute_s'])}{'*' if r['clamped'] else ''} "
                    f"| {fmt_s(r['data_s'])} | {fmt_s(r['allreduce_s'])} | {fmt_s(r['exposed_s'])} "
                    f"| {r['samples_per_s']:.4g} | {r['efficiency']:.2f} |")
            if has_ttt:
                line += (f" {r['steps_to_target']:.0f} | {fmt_s(r['time_to_target_s'])} |" if "steps_to_target" in r
                         else " - | - |")
            w(line + f" {r['bench']} |")
    w("")
    if any(r["clamped"] for r in table.values()):
        w("\\* t_sample clamped: the shard is outside the bench's shard sizes.\n")
    if mrows:
        w(f"## Predicted vs measured (tolerance {100 * args.tolerance:.0f} %)\n")
        w("| run | P | B | nodes | predicted | measured | error | |")
        w("|---|---|---|---|---|---|---|---|")
        for m in mrows:
            w(f"| {m['run']} | {m['P']} | {m['B']} | {m['nodes'] if m['nodes'] is not None else '-'} "
              f"| {fmt_s(m['predicted_s'])} | {fmt_s(m['measured_s'])} | {100 * m['error']:+.1f} % "
              f"| {'**> ' + format(100 * args.tolerance, '.0f') + ' %**' if m['flagged'] else 'ok'} |")
        w("")
        w("Measured split per step (max over ranks) against the model's:\n")
        w("| run | compute+optimizer (model / run) | data (model / run) | all-reduce exposed (model / run) "
          "| in flight (model / run) | overlap (used) |")
        w("|---|---|---|---|---|---|")
        for m in mrows:
            p, q = m["predicted"], m["measured"]
            w(f"| {m['run']} | {fmt_s(p['compute_s'] + p['optimizer_s'])} / {fmt_s(q['compute_s'])} "
              f"| {fmt_s(p['data_s'])} / {fmt_s(q['data_s'])} | {fmt_s(p['exposed_s'])} / {fmt_s(q['wait_s'])} "
              f"| {fmt_s(p['allreduce_s'])} / {fmt_s(q['comm_s'])} | {p['overlap']:.2f} |")
        w("")
    text = "\n".join(out).rstrip() + "\n"
    print(text, end="")

    os.makedirs(args.out, exist_ok=True)
    written = []
    if not args.no_plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        png = os.path.join(args.out, "perf_model.png")
        plot(plt, table, batches, ranks, mrows, has_ttt, args.allreduce, png)
        written.append(png)
    with open(os.path.join(args.out, "perf_model.md"), "w") as f:
        f.write(text + ("" if args.no_plot else "\n![predicted vs measured](perf_model.png)\n"))
    with open(os.path.join(args.out, "perf_model.json"), "w") as f:
        json.dump(dict(assumptions=model.notes, warnings=model.warnings, tolerance=args.tolerance,
                       allreduce=args.allreduce, comm_fit=args.comm_fit, compute_stat=args.compute_stat,
                       grad_bytes=model.grad_bytes, buckets=model.buckets, params=model.params,
                       optimizer_s=model.optimizer,
                       benches=[dict(path=b["path"], ranks=b["ranks"], threads=b["threads"], alpha_fit=b["a_fit"],
                                     beta_fit=b["b_fit"], alpha=b.get("alpha"), beta=b.get("beta"))
                                for b in benches],
                       predictions=[dict(r) for r in table.values()],
                       measured=[{k: v for k, v in m.items()} for m in mrows]), f, indent=1)
        f.write("\n")
    written += [os.path.join(args.out, "perf_model.md"), os.path.join(args.out, "perf_model.json")]
    print(f"perf_model: wrote {', '.join(written)}")
    bad = [m for m in mrows if m["flagged"]]
    if mrows:
        print(f"perf_model: {len(mrows) - len(bad)} of {len(mrows)} measured run(s) within "
              f"{100 * args.tolerance:.0f} %" + (f"; off: {', '.join(m['run'] for m in bad)}" if bad else ""))
    return 1 if (args.check and bad) else 0


if __name__ == "__main__":
    sys.exit(main())
