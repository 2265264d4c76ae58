"""The performance benchmark set (README, "Performance").

For every case it prints the figure, the reference measured in the same run,
and the ratio; timings are never pass/fail (CONVENTIONS, "Benchmarks"):

  case = model x global batch x layout (ranks x BLAS threads per rank)
    overhead-bound: MLP 784-256-128-100-10 at B=256
    GEMM-bound:     MLP 784-1024-1024-10  at B=1024
    CNN:            1x28x28 conv5x5:32 relu maxpool2 conv5x5:64 relu maxpool2
                    dense:128 relu dense:10 at B=256 (jobs/fashion-mnist-cnn.ini),
                    2 ranks x 1 thread only
    layouts:        2 ranks x 1 thread, 1 rank x 2 threads

  figure                                   reference (same run)
  training samples/s (steady epochs)       PyTorch DDP (gloo), same model/B/ranks/threads
  achieved GEMM GFLOP/s per rank           cblas_sgemm alone at the same shapes and threads
  bench compute (forward + backward)       cblas_sgemm alone at the layers' own shapes
    and, where `mpitrain bench` profiles    (mpitrain bench; per layer: its sgemm calls alone)
    layers, each layer's forward + backward
    and a convolution's sgemm calls timed   the same calls alone (target >= 0.70)
    inside the layer
  gradient all-reduce per step             raw MPI_Allreduce of the same bytes (OSU style)
  exposed all-reduce (waited for)          the all-reduce's time in flight
  data wait per step                       the step time
  peak RSS per rank                        parameters + gradients + optimizer state
                                           + activations + read buffers (+ 50 MB allowance;
                                           MLPs only: a CNN's im2col scratch is not in the layout)
  time to test accuracy 0.88 (2 ranks)     PyTorch DDP on the same settings

and, with --hosts, a communication-heavy case on emulated hosts with
rate-limited links (scripts/netns-cluster.sh): how much of the all-reduce is
hidden behind backward.

Usage:
  python3 scripts/bench.py [--out runs/bench] [--no-torch] [--hosts] [--quick]
It installs python3-torch (Debian's package) unless --no-torch; CI never runs it.
Writes OUT/results.json and OUT/table.md, and prints the table.
"""

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

from . import metrics
from .formatting import with_unit
from .model_layout import LayoutError, model_layout, widths
from .paths import REPO_ROOT as ROOT
from .system_python import SYSTEM_PYTHON

DATA = os.path.join(ROOT, "datasets", "fashion-mnist.h5")

MLP_JOB = "jobs/fashion-mnist-mlp.ini"
CNN_JOB = "jobs/fashion-mnist-cnn.ini"
CNN_SPEC = "1x28x28 conv5x5:32 relu maxpool2 conv5x5:64 relu maxpool2 dense:128 relu dense:10"
# Per case: the job file mpitrain trains with (its optimizer settings go to
# the PyTorch peer too: SGD, momentum 0.9, Nesterov), the layouts it runs on
# (None: every --layouts entry), the samples/s target against PyTorch, and
# for the CNN the share of the training set its --quick runs use (a CNN
# epoch is ~40 x an MLP's; throughput does not depend on the epoch's length).
CASES = {
    "overhead": {"model": "784-256-128-100-10", "batch": 256, "label": "MLP 784-256-128-100-10, B=256",
                 "job": MLP_JOB, "torch_args": [], "layouts": None, "target": ">= 2"},
    "gemm": {"model": "784-1024-1024-10", "batch": 1024, "label": "MLP 784-1024-1024-10, B=1024",
             "job": MLP_JOB, "torch_args": [], "layouts": None, "target": ">= 1"},
    "cnn": {"model": CNN_SPEC, "batch": 256, "label": "CNN conv5x5:32-pool-conv5x5:64-pool-128-10, B=256",
            "job": CNN_JOB, "torch_args": ["--lr", "0.05", "--warmup-epochs", "1", "--weight-decay", "5e-4"],
            "layouts": ("2x1",), "target": ">= 1.5", "quick_train_fraction": 0.2, "torch_steps_factor": 1 / 3},
}
LAYOUTS = {"2x1": (2, 1), "1x2": (1, 2)}
# Debian's python3-torch installs into the system interpreter, which need not
# be the first python3 on PATH (pyenv, venvs).
TORCH_PYTHON = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def mpi_env():
    env = dict(os.environ)
    if os.geteuid() == 0:
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def run(cmd, timeout=1800, env=None, quiet=True):
    log(" ".join(cmd))
    r = subprocess.run(cmd, cwd=ROOT, env=env or mpi_env(), timeout=timeout,
                       stdout=subprocess.PIPE if quiet else None, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write((r.stdout or "") + (r.stderr or ""))
        raise SystemExit(f"bench: error: '{' '.join(cmd)}' failed with exit code {r.returncode}")
    return r.stdout


def read_json(path):
    """One JSON object: a whole (pretty-printed) file, or the last line of a JSON-lines file."""
    obj = metrics.read_json(path)
    if obj is None:
        raise SystemExit(f"bench: error: {path} is missing or not JSON")
    return obj


def mpirun(ranks):
    return ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none"]


def layout_of(args, model):
    """The model as the trainer builds it (mpitrain inspect --model)."""
    try:
        return model_layout(args.mpitrain, model)
    except LayoutError as e:
        raise SystemExit(f"bench: error: --model {model}: {e}")


def rss_bound_mb(layout, batch, ranks):
    """What a rank must hold: parameters, gradients and SGD momentum, the
    activations and backward ping-pong buffers for its shard, and the read
    buffers (two prefetch buffers and the staging rows of the train and test
    readers). The data set itself is read per step, never held."""
    w = widths(layout)
    cap = math.ceil(batch / ranks)
    floats = 3 * layout["param_count"]      # params, grads, momentum
    floats += cap * sum(w)                   # input + one buffer per layer (activations fused into Dense)
    floats += 2 * cap * max(w)               # backward gradient ping-pong
    floats += 2 * cap * (w[0] + w[-1])       # prefetch double buffer (x, labels)
    byte_total = floats * 4 + 2 * cap * w[0]  # uint8 staging of the train and test readers
    return byte_total / 1e6


def is_mlp(layout):
    """Dense and activation layers only: rss_bound_mb knows all their buffers."""
    return all(layer["kind"] in ("dense", "activation") for layer in layout["layers"])


def layer_profile(bench):
    """`mpitrain bench`'s per-layer profile at the first shard size, if this
    binary prints one: [{name, kind, forward_s, backward_s, sgemm_s, fraction_of_sgemm,
    sgemm_in_layer_s}] (sgemm_in_layer_s: 0 or absent where the layer does not time its calls)."""
    rows = bench.get("layer_profile")
    if not isinstance(rows, list) or not rows:
        return None
    shard = rows[0].get("shard")
    keys = ("name", "kind", "forward_s", "backward_s", "sgemm_s", "fraction_of_sgemm", "sgemm_in_layer_s")
    return [{k: r.get(k) for k in keys} for r in rows if isinstance(r, dict) and r.get("shard") == shard]


def torch_steps(args, case):
    """Timed PyTorch steps of a case: --torch-steps, fewer for the CNN (~40x an MLP's step), at least 20."""
    return max(20, round(args.torch_steps * CASES[case].get("torch_steps_factor", 1)))


def case_layouts(args, case):
    """The --layouts entries a case runs on."""
    allowed = CASES[case]["layouts"]
    return [l for l in args.layouts.split(",") if allowed is None or l in allowed]


def bench_case(args, case, layout, out):
    model, batch = CASES[case]["model"], CASES[case]["batch"]
    ranks, threads = LAYOUTS[layout]
    shard = math.ceil(batch / ranks)
    tag = f"{case}-{layout}"
    res = {"case": case, "layout": layout, "model": model, "global_batch": batch, "ranks": ranks,
           "threads": threads, "label": CASES[case]["label"]}

    bench_json = os.path.join(out, f"{tag}-bench.json")
    run(mpirun(ranks) + [args.mpitrain, "bench", "--model", model, "--shard-sizes", str(shard), "--threads",
                         str(threads), "--iters", str(args.iters), "--max-bytes", "65536", "--json", bench_json])
    b = read_json(bench_json)
    comp = b["compute"][0]
    res["sgemm_gflops"] = comp["sgemm_gflops"]
    res["compute_fraction_of_sgemm"] = comp["fraction_of_sgemm"]
    res["gemm_flops_per_sample"] = b["gemm_flops_per_sample"]
    res["bench_gflops"] = comp.get("gflops")
    res["layer_profile"] = layer_profile(b)
    res["params"] = b["params"]
    g = b["gradient_allreduce"]
    res["allreduce_s"], res["allreduce_raw_s"], res["allreduce_buckets"] = g["s"], g["raw_s"], g["buckets"]

    run_dir = os.path.join(out, f"{tag}-train")
    shutil.rmtree(run_dir, ignore_errors=True)
    fraction = CASES[case].get("quick_train_fraction") if args.quick else None
    res["train_fraction"] = fraction or 1.0
    run(mpirun(ranks) + [args.mpitrain, "train", "--config", CASES[case]["job"], "--model", model,
                         "--global-batch", str(batch), "--epochs", str(args.epochs), "--threads", str(threads),
                         "--eval-split", "none", "--progress", "none", "--metrics", "", "--checkpoint-dir", "",
                         "--run-dir", run_dir]
        + (["--val-fraction", f"{1 - fraction:g}"] if fraction else []))
    epochs = metrics.read_metrics(run_dir).epochs
    steady = epochs[1:] or epochs  # the first epoch pays for page faults and warm-up
    res["samples_per_s"] = statistics.median(e["samples_per_s"] for e in steady)
    steps = sum(e["steps_in_epoch"] for e in steady)
    t_epoch = sum(e["epoch_time_s"] for e in steady)
    res["step_s"] = t_epoch / steps
    res["data_wait_s"] = sum(e["time_data_s"] for e in steady) / steps
    res["allreduce_wait_s"] = sum(e["time_allreduce_s"] for e in steady) / steps
    res["comm_s"] = sum(e.get("time_comm_s", 0.0) for e in steady) / steps
    res["peak_rss_mb"] = max(e.get("peak_rss_mb", float("nan")) for e in epochs)
    layout = layout_of(args, model)
    res["rss_bound_mb"] = rss_bound_mb(layout, batch, ranks) if is_mlp(layout) else None
    res["gflops_per_rank"] = res["samples_per_s"] / ranks * res["gemm_flops_per_sample"] / 1e9

    if args.torch:
        pt_json = os.path.join(out, f"{tag}-pytorch.json")
        run([TORCH_PYTHON, os.path.join(ROOT, "scripts", "bench_pytorch.py"), "--mpitrain", args.mpitrain,
             "--model", model, "--global-batch",
             str(batch), "--ranks", str(ranks), "--threads", str(threads), "--steps", str(torch_steps(args, case)),
             *CASES[case]["torch_args"], "--json", pt_json])
        res["pytorch_samples_per_s"] = read_json(pt_json)["samples_per_s"]
    return res


def time_to_target(args, out):
    """Time to 0.88 test accuracy on the main job's settings, 2 ranks x 1 thread."""
    run_dir = os.path.join(out, "target-train")
    shutil.rmtree(run_dir, ignore_errors=True)
    run(mpirun(2) + [args.mpitrain, "train", "--config", "jobs/fashion-mnist-mlp.ini", "--threads", "1",
                     "--target", "test_acc>=0.88", "--stop-at-target", "--progress", "none", "--metrics", "",
                     "--checkpoint-dir", "", "--run-dir", run_dir])
    s = read_json(os.path.join(run_dir, "summary.json"))
    res = {"target": 0.88, "reached": s.get("target_reached", False), "time_s": s.get("target_time_s"),
           "epoch": s.get("target_epoch")}
    if args.torch:
        pt_json = os.path.join(out, "target-pytorch.json")
        run([TORCH_PYTHON, os.path.join(ROOT, "scripts", "bench_pytorch.py"), "--mpitrain", args.mpitrain,
             "--ranks", "2", "--threads", "1",
             "--target", "0.88", "--stop-at-target", "--json", pt_json])
        p = read_json(pt_json)
        res.update({"pytorch_reached": p.get("target_reached"), "pytorch_time_s": p.get("target_time_s"),
                    "pytorch_epoch": p.get("target_epoch")})
    return res


def hosts_case(args, out):
    """The GEMM-bound model on 2 emulated hosts (1 rank each) with rate-limited links."""
    cluster = os.path.join(ROOT, "scripts", "netns-cluster.sh")
    model, batch = CASES["gemm"]["model"], args.host_batch
    res = {"hosts": 2, "rate": args.rate, "model": model, "global_batch": batch}
    bench_json = os.path.join(out, "hosts-bench.json")
    run_dir = os.path.join(out, "hosts-train")
    shutil.rmtree(run_dir, ignore_errors=True)
    run(["bash", cluster, "up", "2", "--rate", args.rate])
    try:
        run(["bash", cluster, "mpirun", "--hosts", "2", "--ppn", "1", "--", args.mpitrain, "bench", "--model", model,
             "--shard-sizes", str(batch // 2), "--threads", "1", "--iters", str(args.iters), "--max-bytes", "65536",
             "--json", bench_json])
        run(["bash", cluster, "mpirun", "--hosts", "2", "--ppn", "1", "--", args.mpitrain, "train", "--config",
             "jobs/fashion-mnist-mlp.ini", "--model", model, "--global-batch", str(batch), "--epochs", str(args.host_epochs),
             "--threads", "1", "--eval-split", "none", "--progress", "none", "--metrics", "", "--checkpoint-dir", "",
             "--run-dir", run_dir])
    finally:
        subprocess.run(["bash", cluster, "down"], cwd=ROOT)
    b = read_json(bench_json)
    g = b["gradient_allreduce"]
    res["allreduce_s"], res["allreduce_raw_s"] = g["s"], g["raw_s"]
    epochs = metrics.read_metrics(run_dir).epochs
    steady = epochs[1:] or epochs
    steps = sum(e["steps_in_epoch"] for e in steady)
    res["step_s"] = sum(e["epoch_time_s"] for e in steady) / steps
    res["allreduce_wait_s"] = sum(e["time_allreduce_s"] for e in steady) / steps
    res["comm_s"] = sum(e["time_comm_s"] for e in steady) / steps
    res["hidden_fraction"] = 1 - res["allreduce_wait_s"] / res["comm_s"] if res["comm_s"] > 0 else float("nan")
    return res


def table(results, machine):
    rows = ["| case | figure | mpitrain | reference | reference value | ratio | target |",
            "|---|---|---|---|---|---|---|"]
    for r in results["cases"]:
        c = f"{r['label']}, {r['ranks']} rank(s) x {r['threads']} thread(s)"
        if "pytorch_samples_per_s" in r:
            want = CASES[r["case"]]["target"] if r["case"] in CASES else ""
            rows.append(f"| {c} | samples/s | {with_unit(r['samples_per_s'])} | PyTorch DDP | "
                        f"{with_unit(r['pytorch_samples_per_s'])} | {r['samples_per_s'] / r['pytorch_samples_per_s']:.2f} | {want} |")
        rows.append(f"| {c} | GEMM GFLOP/s per rank (training) | {with_unit(r['gflops_per_rank'])} | sgemm alone | "
                    f"{with_unit(r['sgemm_gflops'])} | {r['gflops_per_rank'] / r['sgemm_gflops']:.2f} | "
                    f"{'>= 0.85' if r['case'] == 'gemm' else ''} |")
        if r.get("bench_gflops"):
            rows.append(f"| {c} | bench compute (fwd+bwd) GFLOP/s per rank | {with_unit(r['bench_gflops'])} | "
                        f"sgemm alone, layers' shapes | {with_unit(r['sgemm_gflops'])} | "
                        f"{r['compute_fraction_of_sgemm']:.2f} | |")
        for p in r.get("layer_profile") or []:
            if p["sgemm_s"]:
                rows.append(f"| {c} | layer {p['name']}: forward + backward per step (bench) | "
                            f"{with_unit(p['forward_s'] + p['backward_s'], 's')} | its sgemm calls alone | "
                            f"{with_unit(p['sgemm_s'], 's')} | {p['sgemm_s'] / (p['forward_s'] + p['backward_s']):.2f} | |")
                if p.get("sgemm_in_layer_s"):
                    rows.append(f"| {c} | layer {p['name']}: its sgemm calls inside the layer (bench) | "
                                f"{with_unit(p['sgemm_in_layer_s'], 's')} | the same calls alone | "
                                f"{with_unit(p['sgemm_s'], 's')} | {p['sgemm_s'] / p['sgemm_in_layer_s']:.2f} | >= 0.70 |")
            else:
                rows.append(f"| {c} | layer {p['name']}: forward + backward per step (bench) | "
                            f"{with_unit(p['forward_s'] + p['backward_s'], 's')} | no sgemm | - | - | |")
        if r["ranks"] > 1:
            rows.append(f"| {c} | gradient all-reduce ({r['allreduce_buckets']} buckets) | {with_unit(r['allreduce_s'], 's')} | "
                        f"raw MPI_Allreduce | {with_unit(r['allreduce_raw_s'], 's')} | "
                        f"{r['allreduce_s'] / r['allreduce_raw_s']:.2f} | <= 1.05 |")
            rows.append(f"| {c} | exposed all-reduce per step | {with_unit(r['allreduce_wait_s'], 's')} | all-reduce in flight | "
                        f"{with_unit(r['comm_s'], 's')} | {r['allreduce_wait_s'] / r['comm_s']:.2f} | |")
        rows.append(f"| {c} | data wait per step | {with_unit(r['data_wait_s'], 's')} | step time | {with_unit(r['step_s'], 's')} | "
                    f"{with_unit(r['data_wait_s'] / r['step_s'], '%')} | <= 2% |")
        if r.get("rss_bound_mb") is not None:
            rows.append(f"| {c} | peak RSS per rank | {with_unit(r['peak_rss_mb'])} MB | bound (+50 MB) | "
                        f"{with_unit(r['rss_bound_mb'])} MB (+50) | {r['peak_rss_mb'] / (r['rss_bound_mb'] + 50):.2f} | <= 1 |")
        else:
            rows.append(f"| {c} | peak RSS per rank | {with_unit(r['peak_rss_mb'])} MB | no bound (im2col scratch "
                        "is not in the layout) | - | - | |")
    t = results.get("target")
    if t:
        ours = t["time_s"] if t["reached"] else None
        theirs = t.get("pytorch_time_s") if t.get("pytorch_reached") else None
        ratio = f"{ours / theirs:.2f}" if ours and theirs else "n/a"
        rows.append(f"| Fashion-MNIST main job, 2 ranks x 1 thread | time to test acc 0.88 | {with_unit(ours, 's')} "
                    f"(epoch {t.get('epoch')}) | PyTorch DDP | {with_unit(theirs, 's')} (epoch {t.get('pytorch_epoch')}) | "
                    f"{ratio} | <= 0.5 |")
    h = results.get("hosts")
    if h:
        c = f"{h['model']}, B={h['global_batch']}, 2 emulated hosts, links {h['rate']}"
        rows.append(f"| {c} | gradient all-reduce | {with_unit(h['allreduce_s'], 's')} | raw MPI_Allreduce | "
                    f"{with_unit(h['allreduce_raw_s'], 's')} | {h['allreduce_s'] / h['allreduce_raw_s']:.2f} | <= 1.05 |")
        rows.append(f"| {c} | all-reduce hidden behind backward | {with_unit(h['comm_s'] - h['allreduce_wait_s'], 's')} | "
                    f"all-reduce in flight | {with_unit(h['comm_s'], 's')} | {with_unit(h['hidden_fraction'], '%')} | >= 50% |")
    return f"Machine: {machine}\n\n" + "\n".join(rows) + "\n"


def machine_text():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}{other_jobs_text()}"


def other_jobs_text():
    """Training jobs already running when the bench starts: they share the
    cores and slow every figure (and its reference) down."""
    try:
        r = subprocess.run(["pgrep", "-f", "mpitrain train"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    n = len([line for line in r.stdout.split() if line.strip() and int(line) != os.getpid()])
    return f"; {n} other `mpitrain train` process(es) were running at the start (they share the cores)" if n else ""


def main(argv=None):
    """The benchmark set; writes OUT/results.json and OUT/table.md and prints the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mpitrain", default=os.path.join(ROOT, "build", "mpitrain"))
    ap.add_argument("--out", default=os.path.join(ROOT, "runs", "bench"))
    ap.add_argument("--cases", default="overhead,gemm,cnn",
                    help="a list of overhead, gemm and cnn (default: all three), or none")
    ap.add_argument("--layouts", default="2x1,1x2")
    ap.add_argument("--epochs", type=int, default=4, help="training epochs per throughput run (the first is not counted)")
    ap.add_argument("--iters", type=int, default=30, help="timed iterations of mpitrain bench")
    ap.add_argument("--torch-steps", type=int, default=300, help="timed PyTorch steps per throughput case")
    ap.add_argument("--no-torch", dest="torch", action="store_false", help="skip the PyTorch peer")
    ap.add_argument("--no-target", dest="target", action="store_false", help="skip the time-to-accuracy case")
    ap.add_argument("--hosts", action="store_true", help="add the emulated-hosts case (needs root)")
    ap.add_argument("--rate", default="1gbit", help="link rate of the emulated hosts (tc tbf)")
    ap.add_argument("--host-batch", type=int, default=4096,
                    help="global batch of the emulated-hosts case (backward must be long enough to hide behind)")
    ap.add_argument("--host-epochs", type=int, default=3, help="training epochs of the emulated-hosts case")
    ap.add_argument("--quick", action="store_true", help="short runs: 2 epochs (the CNN's of 20 %% of the "
                    "training set), 10 iterations, 60 PyTorch steps (the CNN's 20)")
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.iters, args.torch_steps = 2, 10, 60
    args.cases = "" if args.cases == "none" else args.cases
    for c in filter(None, args.cases.split(",")):
        if c not in CASES:
            raise SystemExit(f"bench: error: unknown case '{c}': use {', '.join(CASES)}")
    for l in args.layouts.split(","):
        if l not in LAYOUTS:
            raise SystemExit(f"bench: error: unknown layout '{l}': use {', '.join(LAYOUTS)}")
    if not os.access(args.mpitrain, os.X_OK):
        raise SystemExit(f"bench: error: no mpitrain binary at {args.mpitrain}: run scripts/build.sh or pass --mpitrain")
    if not os.path.exists(DATA):
        run(["bash", os.path.join(ROOT, "scripts", "prepare-data.sh")], quiet=False)
    if args.torch:
        if subprocess.run([TORCH_PYTHON, "-c", "import torch"], stderr=subprocess.DEVNULL).returncode != 0:
            log("installing python3-torch (Debian package) for the PyTorch peer")
            run(["apt-get", "install", "-y", "--no-install-recommends", "python3-torch"], quiet=True)
    os.makedirs(args.out, exist_ok=True)

    results = {"machine": machine_text(), "cases": []}
    for c in filter(None, args.cases.split(",")):
        if not case_layouts(args, c):
            log(f"case {c} runs on layouts {','.join(CASES[c]['layouts'])} only, none of --layouts: skipped")
        for l in case_layouts(args, c):
            results["cases"].append(bench_case(args, c, l, args.out))
    if args.target:
        results["target"] = time_to_target(args, args.out)
    if args.hosts:
        results["hosts"] = hosts_case(args, args.out)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    text = table(results, results["machine"])
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
