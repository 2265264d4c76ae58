"""The performance model of mpitrain's data-parallel step (docs/perf-model.md):

  step = compute + data + (1 - overlap) x allreduce + optimizer

from `mpitrain bench --json` files, measured and calibration runs and the
options of perf_model.py; every choice it makes is written to `notes`. The
all-reduce's per-hop alpha and beta are derived in perf_comm.py."""

import math

import numpy as np

from .formatting import seconds_text
from .model_layout import LayoutError, model_layout
from .perf_comm import calibrated_comm, derive_alpha_beta
from .perf_equations import allreduce_time, loglog_interp, loglog_positive, nearest
from .perf_inputs import die


def layer_profile_text(b):
    """Where a bench's compute goes, layer by layer (its per-layer profile at
    its first shard size): the model does not need it, a reader does."""
    shard = b["layer_profile"][0].get("shard")
    rows = [r for r in b["layer_profile"] if r.get("shard") == shard]
    total = sum((r.get("forward_s") or 0) + (r.get("backward_s") or 0) for r in rows)
    if total <= 0:
        return f"Bench `{b['path']}`: its per-layer profile is empty."
    parts = []
    for r in sorted(rows, key=lambda r: -((r.get("forward_s") or 0) + (r.get("backward_s") or 0))):
        t = (r.get("forward_s") or 0) + (r.get("backward_s") or 0)
        sg = r.get("sgemm_s") or 0
        parts.append(f"{r.get('name')} {100 * t / total:.0f} %" + (f" (sgemm alone {sg / t:.2f} of it)" if sg else ""))
    return (f"Bench `{b['path']}` per layer at shard {shard} (rank 0, forward + backward, "
            f"{seconds_text(total)} per step): " + ", ".join(parts) + ".")


class PerfModel:
    def __init__(self, benches, measured, args, calibration=()):
        self.benches = sorted(benches, key=lambda b: b["ranks"])
        self.comm_benches = [b for b in self.benches if b["ranks"] > 1]
        self.measured = measured
        self.calibration = list(calibration)
        self.args = args
        self.notes = []       # assumptions, printed at the top, in this order
        self.warnings = []
        self.choose_stats()
        self.check_params()
        self.cut_buckets()
        for b in self.comm_benches:  # per-hop alpha and beta of each multi-rank bench
            derive_alpha_beta(b, args.comm_fit, self.grad_bytes, self.buckets)
        self.note_compute()
        self.note_comm()
        self.note_overlap_and_data()
        self.choose_optimizer()
        self.warn_about_runs()

    def choose_stats(self):
        """t_sample's source (--compute-stat) and how beta is fitted (--comm-fit)."""
        args = self.args
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

    def check_params(self):
        """The benches and runs must all be of one model."""
        measured = self.measured
        params = {b["params"] for b in self.benches}
        if len(params) > 1:
            die(f"the bench files time different models ({', '.join(map(str, sorted(params)))} parameters)")
        self.params = params.pop()
        self.model_spec = self.benches[0].get("model")
        for r in list(measured) + self.calibration:
            if r["params"] and int(r["params"]) != self.params:
                die(f"--measured {r['path']} trained a model of {int(r['params'])} parameters, "
                    f"the bench timed {self.params}")

    def cut_buckets(self):
        """The gradient's bytes and buckets, from the binary."""
        args = self.args
        measured = self.measured
        # Bucket size: option, else the runs' own (all the same), else the trainer's default.
        seen = {int(r["bucket_bytes"]) for r in measured if r["bucket_bytes"] is not None}
        if args.bucket_bytes is not None:
            bucket_bytes, how = args.bucket_bytes, "--bucket-bytes"
        elif len(seen) == 1:
            bucket_bytes, how = seen.pop(), "the measured runs' --bucket-bytes"
        else:
            bucket_bytes, how = None, "the trainer's default --bucket-bytes"
        # Without overlap the trainer reduces the whole gradient in one call
        # (--overlap auto turns it off when ranks x (threads + 1) exceed a
        # node's cores, as 2 ranks on 2 cores do): the runs' headers say so,
        # else the bench's gradient all-reduce (timed as the trainer cuts it).
        overlaps = [r["allreduce_overlap"] for r in list(measured) + self.calibration]
        bench_buckets = {b["grad_buckets"] for b in self.benches if b.get("grad_buckets") is not None}
        one_call = (all(o is False for o in overlaps) if overlaps and all(o is not None for o in overlaps)
                    else not measured and not self.calibration and bench_buckets == {1})
        if one_call and args.bucket_bytes is None:
            bucket_bytes = 0
            how = ("the runs' headers: overlap off, one all-reduce of the whole gradient" if overlaps else
                   "the bench's gradient all-reduce: one call, overlap off")
        layout = self.layout(bucket_bytes)
        self.bucket_bytes = layout["bucket_bytes"]
        if bucket_bytes is None and len(seen) > 1:
            self.warnings.append(f"the measured runs use different --bucket-bytes {sorted(seen)}: "
                                 f"the model uses {self.bucket_bytes}; pass --bucket-bytes")
        # The buckets exactly as the trainer cuts them (mpitrain inspect --model).
        sizes = [b["floats"] for b in layout["buckets"]]
        self.grad_bytes = 4 * layout["reduce_floats"]
        self.buckets = len(sizes)
        bucket_text = (f"{self.buckets} bucket(s) of {', '.join(f'{4 * s / 1e3:.0f}' for s in sizes)} kB, "
                       f"cut as the trainer cuts model {self.model_spec}")
        self.notes.append(f"Gradient all-reduce: n = {self.grad_bytes} bytes ({self.params} parameters + "
                          f"{layout['stat_slots']} stat slots, float32) per step, bucket size {self.bucket_bytes} "
                          f"bytes ({how}): {bucket_text}. Each bucket pays the latency term.")

    def layout(self, bucket_bytes):
        """`mpitrain inspect --model` of the benches' model at bucket_bytes (None: the trainer's default)."""
        if not self.model_spec:
            die("the bench files do not say their model ('model' field): not from `mpitrain bench --json`?")
        try:
            layout = model_layout(self.args.mpitrain, self.model_spec, bucket_bytes=bucket_bytes)
        except LayoutError as e:
            die(f"the gradient buckets of model {self.model_spec} come from `mpitrain inspect --model`: {e}")
        if layout["param_count"] != self.params:
            die(f"the bench timed a model of {self.params} parameters, but {self.args.mpitrain} builds "
                f"{self.model_spec} with {layout['param_count']}: pass the --mpitrain that ran the bench")
        return layout

    def note_compute(self):
        """Notes on each bench and on the compute term."""
        args = self.args
        for b in self.benches:
            self.notes.append(
                f"Bench `{b['path']}`: P = {b['ranks']}, {b['threads']} BLAS thread(s) per rank, "
                + ("t_sample (in the step pattern, --compute-stat step) " if args.compute_stat == "step" else
                   f"t_sample ({args.compute_stat} over ranks) ")
                + f"{seconds_text(self.curve(b)[1][0])} at shard {self.curve(b)[0][0]:.0f} .. "
                f"{seconds_text(self.curve(b)[1][-1])} at shard {self.curve(b)[0][-1]:.0f}"
                + (f"; {b['comm_text']} -> per hop alpha = {seconds_text(b['alpha'])}, beta = {b['beta']:.3e} s/B "
                   f"({1e-9 / b['beta'] if b['beta'] > 0 else float('inf'):.3g} GB/s)"
                   if b["ranks"] > 1 else "; no communication (one rank)") + ".")
        for b in self.benches:
            if b.get("layer_profile"):
                self.notes.append(layer_profile_text(b))
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

    def note_comm(self):
        """Where alpha and beta come from, and the all-reduce formula."""
        args = self.args
        if args.alpha is not None or args.beta is not None:
            if args.alpha is None or args.beta is None:
                die("--alpha and --beta go together (per-hop seconds and seconds per byte)")
            self.notes.append(f"alpha = {seconds_text(args.alpha)} and beta = {args.beta:.3e} s/B per hop from the "
                              "command line (--alpha/--beta), for every P.")
        elif args.comm_source == "calibration":
            self.cal_comm = calibrated_comm(self.calibration, self.comm_benches, args.allreduce, self.grad_bytes,
                                            self.buckets)
            self.notes.append(
                "Communication from the --calibration runs (--comm-source calibration): at each of their P the "
                "trainer's own all-reduce, time_comm_s per step (in flight, median), sets beta through the "
                f"{args.allreduce} formula below, with alpha from the bench nearest in P; "
                + "; ".join(f"P = {c['ranks']}: {seconds_text(c['t'])} per step ("
                            + (f"the bench's blocking MPI_Allreduce of n bytes: {seconds_text(c['bench_t'])}"
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

    def note_overlap_and_data(self):
        """Notes on the overlap and the data terms."""
        args = self.args
        measured = self.measured
        if args.overlap is not None:
            self.notes.append(f"Overlap: {args.overlap:g} of the all-reduce is hidden behind backward (--overlap).")
        elif any(r["overlap"] is not None for r in measured if r["P"] > 1):
            self.notes.append("Overlap: as measured, 1 - time_allreduce_s / time_comm_s of the measured run "
                              "nearest in P (then B) with P > 1.")
        else:
            self.notes.append("Overlap: 0 (no --overlap, and no measured run with time_comm_s): the whole "
                              "all-reduce is exposed.")
        if args.data_s_per_row is not None:
            self.notes.append(f"Data wait: {seconds_text(args.data_s_per_row)} per row on the busiest rank "
                              "(--data-s-per-row).")
        elif self.read_runs():
            self.notes.append("Data per step = b x the read time per row of the --calibration runs at the nearest "
                              "P (trained without --prefetch, so time_data_s is the whole read). The reads are "
                              "counted in full: with the trainer's default threads (cores per node / ranks per "
                              "node) every core runs BLAS, so the prefetch thread's reads take CPU from the "
                              "compute instead of hiding behind it. With more ranks than cores on a node (the "
                              "bench's ranks_on_node, or ranks_on_machine when its nodes share one kernel, over "
                              "cores_on_node = r > 1) the reads share the cores as the "
                              "compute does: the read time per row is then taken from the calibration runs at "
                              "the nearest P that had a core per rank (an oversubscribed calibration's own short "
                              "reads are partly contended, partly not) and multiplied by r.")
        elif any(r["data_s_per_row"] is not None for r in measured):
            self.notes.append("Data wait per step = b x the measured wait per row (time_data_s / steps / "
                              "ceil(B/P)) of the measured run nearest in P, then B.")
        else:
            self.notes.append("Data wait: 0 (no measured runs): the model assumes prefetch hides every read.")

    def choose_optimizer(self):
        """The optimizer term: an option, the bench, the runs, or their residual."""
        args = self.args
        measured = self.measured
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
            self.notes.append(f"Optimizer update: {seconds_text(self.optimizer)} per step ({how}), "
                              f"{self.optimizer / self.params:.3g} s per parameter, the same at every P and B.")

    def warn_about_runs(self):
        """Runs whose threads or P no bench matches."""
        measured = self.measured
        for r in measured:
            cb = nearest(self.benches, lambda x: x["ranks"], r["P"])
            if r["threads"] is not None and cb["threads"] is not None and r["threads"] != cb["threads"]:
                self.warnings.append(f"run {r['name']} used {r['threads']} BLAS thread(s) per rank, the bench at "
                                     f"P = {cb['ranks']} {cb['threads']}: t_sample depends on them")
            if cb["ranks"] != r["P"]:
                self.warnings.append(f"run {r['name']} is at P = {r['P']} and no bench is: its compute comes "
                                     f"from the bench at P = {cb['ranks']}")

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
                    bench=benches, threads=cb["threads"])
