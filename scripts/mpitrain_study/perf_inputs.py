"""The performance model's inputs: the options' values, `mpitrain bench
--json` files, training run directories (measured and calibration runs),
lists of numbers, and steps to the target (an option or sweep directories).
Every problem ends the tool with one `perf_model: error:` line."""

import math
import os

import numpy as np

from .fit import fit_steps_to_target
from .metrics import finite_num, metrics_path, parse_json_text, read_json_lines
from .model_layout import find_mpitrain
from .runs import best_per_batch, load_sweeps


def die(msg):
    raise SystemExit(f"perf_model: error: {msg}")


def check_options(args):
    """perf_model.py's parsed options, their values checked and --mpitrain
    resolved to a binary; returns args."""
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

    given = args.mpitrain
    args.mpitrain = find_mpitrain(given)
    if given and not args.mpitrain:
        die(f"--mpitrain {given} is not an executable")
    return args


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


def load_bench(path):
    """One `mpitrain bench --json` file, checked; exits with one clear message
    if it is missing, not JSON, or lacks what the model needs."""
    what = f"--bench {path}"
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        die(f"{what}: cannot read it ({e.strerror}); write it with `mpirun -np P mpitrain bench --json FILE`")
    obj = parse_json_text(text)
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
                s, t = finite_num(r.get("shard")), finite_num(r.get("s_per_sample_avg"))
                if s and s > 0 and t and t > 0:
                    t_max = finite_num(r.get("s_per_sample_max"))
                    pts.append((s, t, t_max if t_max and t_max >= t else t))
    if not pts:
        die(f"{what}: no 'compute' rows with a shard and s_per_sample_avg > 0")
    pts.sort()
    params = finite_num(obj.get("params"))
    if not params or params <= 0:
        die(f"{what}: no valid 'params' field")
    a_fit, b_fit = finite_num(obj.get("alpha_s")), finite_num(obj.get("beta_s_per_byte"))
    if ranks > 1 and (a_fit is None or b_fit is None or a_fit < 0 or b_fit < 0):
        die(f"{what}: a {ranks}-rank bench without a valid alpha_s / beta_s_per_byte fit")
    ar = []
    for r in obj.get("allreduce") or []:
        if isinstance(r, dict) and finite_num(r.get("bytes")) and finite_num(r.get("s")):
            ar.append((float(r["bytes"]), float(r["s"])))
    ar.sort()
    # The bench's training-step pattern (steps back to back: forward +
    # backward with the gradient all-reduce, optimizer update): the compute
    # as the whole job sees it, per sample, and the all-reduce between
    # computes of that shard.
    steps = []
    for r in obj.get("step") or []:
        if isinstance(r, dict):
            s, t, a = finite_num(r.get("shard")), finite_num(r.get("s_per_sample")), finite_num(r.get("allreduce_s"))
            if s and s > 0 and t and t > 0 and a is not None and a >= 0:
                steps.append((s, t, a))
    steps.sort()
    b = dict(path=path, ranks=ranks, threads=obj.get("threads_per_rank"), model=obj.get("model"),
             params=int(params), shards=np.array([p[0] for p in pts]), t_sample=np.array([p[1] for p in pts]),
             t_sample_max=np.array([p[2] for p in pts]),
             a_fit=a_fit, b_fit=b_fit, allreduce=ar,
             step_shards=np.array([p[0] for p in steps]), t_sample_step=np.array([p[1] for p in steps]),
             allreduce_step=np.array([p[2] for p in steps]),
             step_optimizer=obj.get("step_optimizer") if steps else None,
             grad_buckets=(obj.get("gradient_allreduce") or {}).get("buckets")
             if isinstance(obj.get("gradient_allreduce"), dict) else None,
             layer_profile=[r for r in obj.get("layer_profile") or [] if isinstance(r, dict)])
    # Ranks per core on the bench's busiest node (> 1: oversubscribed), or on
    # its machine when nodes share one kernel (emulated hosts share its cores).
    rn, cn = finite_num(obj.get("ranks_on_node")), finite_num(obj.get("cores_on_node"))
    rn = max(rn or 0, finite_num(obj.get("ranks_on_machine")) or 0)
    b["ranks_per_core"] = max(1.0, rn / cn) if rn and cn and rn > 0 and cn > 0 else 1.0
    # A per-step optimizer time, if a newer bench measures one.
    for key in ("optimizer_s_per_step", "optimizer_s", "time_optimizer_s"):
        if finite_num(obj.get(key)) is not None:
            b["optimizer_s"] = finite_num(obj.get(key))
            break
    return b


def load_measured(path, what="--measured"):
    """A training run directory (or a metrics.jsonl): its header, the steady
    epochs (after the first) and the measured step time and its split."""
    mpath = metrics_path(path)
    if not os.path.isfile(mpath):
        die(f"{what} {path}: no metrics.jsonl (give training run directories, e.g. from --run-dir)")
    lines = read_json_lines(mpath)
    header = next((d for d in lines if d.get("type") == "header"), lines[0] if lines else {})
    config = header.get("config") or {}
    epochs = [d for d in lines if d.get("type") == "epoch" and finite_num(d.get("epoch_time_s"))]
    if not epochs:
        die(f"{what} {path}: no epoch lines with epoch_time_s in {mpath}")
    steady = epochs[1:] if len(epochs) > 1 else epochs
    prev_step = {e.get("epoch"): e.get("step") for e in epochs}

    def steps_of(e):
        n = finite_num(e.get("steps_in_epoch"))
        if n:
            return n
        before = prev_step.get((e.get("epoch") or 0) - 1, 0) or 0
        return (finite_num(e.get("step")) or 0) - before

    steps = sum(steps_of(e) for e in steady)
    train_s = sum(finite_num(e.get("epoch_time_s")) or 0.0 for e in steady)
    if steps <= 0 or train_s <= 0:
        die(f"{what} {path}: the epoch lines have no steps or no time")

    def per_step(key):
        vals = [finite_num(e.get(key)) for e in steady]
        return sum(vals) / steps if all(v is not None for v in vals) else None

    B = int(finite_num(steady[-1].get("global_batch")) or finite_num(config.get("global-batch")) or 0)
    P = int(finite_num(header.get("ranks")) or 0)
    if B < 1 or P < 1:
        die(f"{what} {path}: the metrics do not say the global batch and ranks (header line missing?)")
    run = dict(path=path, name=os.path.basename(os.path.normpath(path if os.path.isdir(path) else os.path.dirname(path))),
               P=P, B=B, nodes=header.get("nodes"), threads=header.get("threads_per_rank"), model=header.get("model"),
               params=finite_num(header.get("params")), epochs_used=[e.get("epoch") for e in steady],
               steps=steps, step_s=train_s / steps,
               data_s=per_step("time_data_s"), compute_s=per_step("time_compute_s"),
               wait_s=per_step("time_allreduce_s"), comm_s=per_step("time_comm_s"),
               optimizer_s=per_step("time_optimizer_s") if any("time_optimizer_s" in e for e in steady) else None,
               bucket_bytes=finite_num(config.get("bucket-bytes")),
               allreduce_overlap=header.get("allreduce_overlap") if isinstance(header.get("allreduce_overlap"), bool)
               else None,
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
    runs = load_sweeps(dirs)
    best = best_per_batch(runs)
    fit = fit_steps_to_target(list(best), [r["S"] for r in best.values()])
    if fit and fit["problem"]:
        fit = None
    return best, fit


def steps_to_target(args, batches, model):
    """{B: (steps to the target, how)} from --steps-to-target or --sweep; notes go to the model."""
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
    return steps_at
