"""PyTorch DistributedDataParallel peer of `mpitrain train` for the performance benchmark.

Trains the same model (the layer list `mpitrain inspect --model` prints) on
the same Fashion-MNIST data with the same global-batch, learning-rate and
evaluation semantics as mpitrain, the way a PyTorch user would: the whole
data set in memory, P processes from torch.multiprocessing.spawn, gloo, DDP
with its default buckets. Where its semantics and timing differ from
mpitrain's: docs/perf-model.md, "The PyTorch peer".

  python3 scripts/bench_pytorch.py --ranks 2 --threads 1 --global-batch 256 --epochs 15 --json out.json
  python3 scripts/bench_pytorch.py --ranks 2 --threads 1 --steps 200        # throughput only

Needs numpy and torch (Debian: python3-torch), the IDX files of Debian's
dataset-fashion-mnist package and the mpitrain binary. Not imported by the
tests: CI has no torch.
"""

import argparse
import json
import math
import os
import socket
import sys
import tempfile
import time

from .model_layout import LayoutError, find_mpitrain, model_layout
from .system_python import rerun_under_system_python

PROG = "bench_pytorch.py"


def fail(message, code=2):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(code)


try:
    import numpy as np
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from .fashion_mnist import DATA_DIR, DataError, load_normalised
except ImportError as e:
    # Debian's python3-torch lives in the system interpreter (system_python.py).
    rerun_under_system_python("BENCH_PYTORCH_REEXEC")
    fail(f"{e.name or e}: not importable ({sys.executable}); install it with 'apt-get install python3-torch'", 1)


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        fail(message)


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def model_layers(a):
    """The model's layers as mpitrain builds them (mpitrain inspect --model),
    each a Dense layer with an activation fused or an activation layer."""
    mpitrain = find_mpitrain(a.mpitrain)
    if not mpitrain:
        fail(f"no mpitrain binary at {a.mpitrain}" if a.mpitrain else
             "no mpitrain binary (build it with scripts/build.sh, or pass --mpitrain PATH)")
    try:
        layout = model_layout(mpitrain, a.model, activation="relu")
    except LayoutError as e:
        fail(str(e))
    for layer in layout["layers"]:
        if layer["kind"] not in ("dense", "activation") or layer.get("activation", "none") not in (*ACTIVATIONS, "none"):
            fail(f"--model '{a.model}': layer {layer['name']} has no PyTorch counterpart here")
    return layout


def parse_args(argv):
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="784-256-128-100-10", help="layer widths, input first; ReLU between")
    p.add_argument("--mpitrain", help="the mpitrain binary that builds --model's layers "
                   "(default: build/mpitrain of this repository, else mpitrain on PATH)")
    p.add_argument("--global-batch", type=int, default=256, help="samples per optimizer step, summed over ranks")
    p.add_argument("--ranks", type=int, default=2, help="processes (torch.multiprocessing.spawn, gloo)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    p.add_argument("--epochs", type=int, default=15, help="passes over the training set")
    p.add_argument("--lr", type=float, default=0.0125, help="base learning rate, tuned at --ref-batch")
    p.add_argument("--ref-batch", type=int, default=256, help="global batch at which --lr was tuned")
    p.add_argument("--warmup-epochs", type=float, default=2.0, help="linear per-step learning-rate warmup, in epochs")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--weight-decay", type=float, default=1e-4, help="L2, added to the gradient")
    p.add_argument("--seed", type=int, default=1, help="weight init and every epoch's sample order")
    p.add_argument("--target", type=float, default=0.88, help="test accuracy to record the time to")
    p.add_argument("--stop-at-target", action="store_true", help="end training at the epoch that reaches --target")
    p.add_argument("--steps", type=int, default=0,
                   help="throughput mode: time this many steps (after --warmup-steps untimed ones), no evaluation")
    p.add_argument("--warmup-steps", type=int, default=20, help="untimed steps before the timed ones (with --steps)")
    p.add_argument("--data-dir", default=DATA_DIR, help="directory of the Fashion-MNIST IDX .gz files")
    p.add_argument("--json", metavar="PATH", help="write the result as one JSON object")
    a = p.parse_args(argv)
    a.layout = model_layers(a)

    for name in ("global_batch", "ranks", "threads", "epochs", "ref_batch"):
        if getattr(a, name) < 1:
            fail(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(a, name)})")
    if not (math.isfinite(a.lr) and a.lr > 0):
        fail(f"--lr must be a finite number > 0 (got {a.lr})")
    if not (math.isfinite(a.warmup_epochs) and a.warmup_epochs >= 0):
        fail(f"--warmup-epochs must be a finite number >= 0 (got {a.warmup_epochs})")
    if not (0 <= a.momentum < 1):
        fail(f"--momentum must be in [0, 1) (got {a.momentum})")
    if a.nesterov and a.momentum == 0:
        fail("--nesterov needs --momentum > 0 (or give --no-nesterov)")
    if not (math.isfinite(a.weight_decay) and a.weight_decay >= 0):
        fail(f"--weight-decay must be a finite number >= 0 (got {a.weight_decay})")
    if not math.isfinite(a.target):
        fail(f"--target must be a finite test accuracy (got {a.target})")
    if a.steps < 0:
        fail(f"--steps must be >= 0 (got {a.steps}; 0: train --epochs epochs)")
    if a.warmup_steps < 0:
        fail(f"--warmup-steps must be >= 0 (got {a.warmup_steps})")
    if a.steps and a.stop_at_target:
        fail("--stop-at-target needs evaluation, which --steps (throughput mode) skips")
    return a


# ----------------------------------------------------------------- data

def load_fashion_mnist(data_dir):
    """Train and test tensors, normalised as mpitrain's reader does, and the mean and std."""
    try:
        train_x, train_y, test_x, test_y, mean, std = load_normalised(data_dir)
    except DataError as e:
        fail(str(e), e.code)
    return (*(torch.from_numpy(t) for t in (train_x, train_y, test_x, test_y)), mean, std)


# ----------------------------------------------------------------- model, schedule

def make_model(layers):
    """nn.Sequential of mpitrain's layer list: He-normal weights (std
    sqrt(2/fan_in)) before an activation, Glorot-uniform for the last Dense
    layer, zero biases."""
    last = max(i for i, layer in enumerate(layers) if layer["kind"] == "dense")
    modules = []
    for i, layer in enumerate(layers):
        if layer["kind"] == "dense":
            lin = nn.Linear(layer["in"], layer["out"])
            with torch.no_grad():
                if i == last:
                    nn.init.xavier_uniform_(lin.weight)  # limit sqrt(6/(fan_in+fan_out))
                else:
                    nn.init.normal_(lin.weight, 0.0, math.sqrt(2.0 / layer["in"]))
                nn.init.zeros_(lin.bias)
            modules.append(lin)
        if layer.get("activation", "none") != "none":
            modules.append(ACTIVATIONS[layer["activation"]]())
    return nn.Sequential(*modules)


def warmup_steps_of(warmup_epochs, steps_per_epoch):
    whole = math.floor(warmup_epochs)
    frac = (warmup_epochs - whole) * steps_per_epoch
    return int(whole) * steps_per_epoch + int(math.floor(frac + 0.5))  # llround for frac >= 0


def make_schedule(a, steps_per_epoch):
    final = a.lr * a.global_batch / a.ref_batch
    r = a.lr / final
    start = final * (r if r < 1 else 0.0)
    w = warmup_steps_of(a.warmup_epochs, steps_per_epoch)

    def lr_at(step):
        if step >= w:
            return final
        return start + (final - start) * (step + 1) / w

    return lr_at, final, start, w


# ----------------------------------------------------------------- one rank

class Rank:
    """One DDP rank: its share of the data, the model, the optimizer and its timers."""

    def __init__(self, rank, a, data):
        self.rank, self.a, self.P = rank, a, a.ranks
        self.train_x, self.train_y, self.test_x, self.test_y = data
        self.N, self.n_test = len(self.train_x), len(self.test_x)
        self.B = a.global_batch
        self.steps_per_epoch = -(-self.N // self.B)
        self.lr_at, self.final_lr, self.start_lr, self.warmup_total = make_schedule(a, self.steps_per_epoch)
        torch.manual_seed(a.seed)
        self.model = make_model(a.layout["layers"])
        self.ddp = DDP(self.model)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.lr_at(0), momentum=a.momentum,
                                   nesterov=a.nesterov, weight_decay=a.weight_decay)
        self.root = rank == 0
        self.times = {"data": 0.0, "compute": 0.0, "optimizer": 0.0}

    def train_steps(self, epoch, first, last, global_step, timed=True):
        """Steps [first, last) of an epoch; returns (loss sum of this rank's rows, next global step)."""
        a, N, B, P, rank, times, opt = self.a, self.N, self.B, self.P, self.rank, self.times, self.opt
        t0 = time.perf_counter()
        perm = np.random.default_rng(a.seed + epoch).permutation(N)
        if timed:
            times["data"] += time.perf_counter() - t0
        loss_acc = torch.zeros((), dtype=torch.float64)
        for step in range(first, last):
            t0 = time.perf_counter()
            lo = step * B
            b = min(B, N - lo)
            idx = torch.from_numpy(perm[lo + rank * b // P: lo + (rank + 1) * b // P])
            xb, yb = self.train_x[idx], self.train_y[idx]
            t1 = time.perf_counter()
            lr = self.lr_at(global_step)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss_sum = F.cross_entropy(self.ddp(xb), yb, reduction="sum")
            (loss_sum * (P / b)).backward()  # DDP averages over P: the mean over the b global rows
            t2 = time.perf_counter()
            opt.step()
            t3 = time.perf_counter()
            loss_acc += loss_sum.detach()
            global_step += 1
            if timed:
                times["data"] += t1 - t0
                times["compute"] += t2 - t1
                times["optimizer"] += t3 - t2
        return loss_acc, global_step

    def evaluate(self):
        """This rank's test rows: (loss sum, correct count)."""
        rank, P, n_test, test_x, test_y = self.rank, self.P, self.n_test, self.test_x, self.test_y
        lo, hi = rank * n_test // P, (rank + 1) * n_test // P
        with torch.no_grad():
            out = self.model(test_x[lo:hi])
            loss = F.cross_entropy(out, test_y[lo:hi], reduction="sum").double()
            correct = (out.argmax(1) == test_y[lo:hi]).sum().double()
        return loss, correct

    @staticmethod
    def max_over_ranks(values):
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def result_head(self):
        """What the result JSON says about the run's settings."""
        a, P, B = self.a, self.P, self.B
        return {
            "framework": "pytorch-ddp", "torch_version": torch.__version__, "ranks": P, "threads_per_rank": a.threads,
            "model": a.model, "global_batch": B, "lr": self.final_lr, "base_lr": a.lr, "ref_batch": a.ref_batch,
            "warmup_start_lr": self.start_lr, "warmup_lr_steps": self.warmup_total, "momentum": a.momentum,
            "nesterov": a.nesterov, "weight_decay": a.weight_decay, "seed": a.seed,
        }

    def throughput(self):
        """--steps mode: untimed then timed steps, no evaluation; the result's fields."""
        a, N, B, P, times, steps_per_epoch = self.a, self.N, self.B, self.P, self.times, self.steps_per_epoch
        train_steps, max_over_ranks, root = self.train_steps, self.max_over_ranks, self.root
        result = {}
        total = a.warmup_steps + a.steps
        global_step, timed_start = 0, None
        while global_step < total:
            epoch, first = divmod(global_step, steps_per_epoch)
            if global_step < a.warmup_steps:  # untimed part
                last = min(steps_per_epoch, first + a.warmup_steps - global_step)
                _, global_step = train_steps(epoch, first, last, global_step, timed=False)
                continue
            if timed_start is None:
                dist.barrier()
                timed_start = time.perf_counter()
            last = min(steps_per_epoch, first + total - global_step)
            _, global_step = train_steps(epoch, first, last, global_step)
        train_time = time.perf_counter() - timed_start
        samples = sum(min(B, N - (s % steps_per_epoch) * B) for s in range(a.warmup_steps, total))
        t_max, d_max, c_max, o_max = max_over_ranks(
            [train_time, times["data"], times["compute"], times["optimizer"]])
        result.update({
            "mode": "steps", "steps": a.steps, "warmup_steps": a.warmup_steps, "samples": samples,
            "epochs_run": round(total / steps_per_epoch, 4), "samples_per_s": samples / t_max,
            "train_time_s": t_max, "time_data_s": d_max, "time_compute_s": c_max, "time_optimizer_s": o_max,
            "per_epoch": [], "target": None, "target_reached": None, "target_epoch": None, "target_step": None,
            "target_samples": None, "target_time_s": None, "final_test_acc": None,
        })
        if root:
            print(f"pytorch-ddp {torch.__version__}: {P} ranks x {a.threads} threads, {a.model}, B={B}: "
                  f"{a.steps} steps ({a.warmup_steps} untimed before) in {t_max:.3f}s = "
                  f"{samples / t_max:,.0f} samples/s (data {d_max:.3f}s, compute+allreduce {c_max:.3f}s, "
                  f"optimizer {o_max:.3f}s)", flush=True)
        return result

    def train_epochs(self):
        """--epochs mode: train, evaluate after every epoch, record the target; the result's fields."""
        a, N, B, P, times, steps_per_epoch = self.a, self.N, self.B, self.P, self.times, self.steps_per_epoch
        n_test, lr_at = self.n_test, self.lr_at
        train_steps, evaluate, max_over_ranks, root = self.train_steps, self.evaluate, self.max_over_ranks, self.root
        result = {}
        epochs = []
        train_time = 0.0
        global_step = samples = 0
        target = {"target_reached": False, "target_epoch": None, "target_step": None, "target_samples": None,
                  "target_time_s": None}
        dist.barrier()
        t_start = time.perf_counter()
        for epoch in range(a.epochs):
            t_epoch = time.perf_counter()
            loss_acc, global_step = train_steps(epoch, 0, steps_per_epoch, global_step)
            epoch_time = time.perf_counter() - t_epoch
            train_time += epoch_time
            samples += N
            t_eval = time.perf_counter()
            test_loss, correct = evaluate()
            sums = torch.stack([test_loss, correct, loss_acc])
            dist.all_reduce(sums)  # one collective for the test and train sums
            test_loss_sum, correct_sum, train_loss_sum = sums.tolist()
            eval_time = time.perf_counter() - t_eval
            elapsed = time.perf_counter() - t_start
            (epoch_time_max,) = max_over_ranks([epoch_time])
            rec = {"epoch": epoch + 1, "test_acc": correct_sum / n_test, "test_loss": test_loss_sum / n_test,
                   "train_loss": train_loss_sum / N, "epoch_time_s": epoch_time_max, "eval_time_s": eval_time,
                   "samples_per_s": N / epoch_time_max, "lr": lr_at(global_step - 1)}
            epochs.append(rec)
            reached_now = not target["target_reached"] and rec["test_acc"] >= a.target
            if reached_now:
                target.update({"target_reached": True, "target_epoch": epoch + 1, "target_step": global_step,
                               "target_samples": samples, "target_time_s": elapsed})
            if root:
                print(f"epoch {epoch + 1:3d}  train_loss {rec['train_loss']:.4f}  test_loss {rec['test_loss']:.4f}"
                      f"  test_acc {rec['test_acc']:.4f}  {epoch_time_max:.2f}s  {rec['samples_per_s']:,.0f} samples/s"
                      + (f"  [target {a.target:g} reached at {elapsed:.1f}s]" if reached_now else ""), flush=True)
            if reached_now and a.stop_at_target:
                break
        t_max, d_max, c_max, o_max = max_over_ranks(
            [train_time, times["data"], times["compute"], times["optimizer"]])
        result.update({
            "mode": "epochs", "epochs_planned": a.epochs, "epochs_run": len(epochs), "steps": global_step,
            "samples": samples,
            "samples_per_s": samples / t_max, "train_time_s": t_max, "time_data_s": d_max,
            "time_compute_s": c_max, "time_optimizer_s": o_max, "per_epoch": epochs, "target": a.target, **target,
            "final_test_acc": epochs[-1]["test_acc"],
        })
        if root:
            tgt = (f"test_acc>={a.target:g} at epoch {target['target_epoch']} ({target['target_time_s']:.1f}s)"
                   if target["target_reached"] else f"test_acc>={a.target:g} not reached")
            print(f"pytorch-ddp {torch.__version__}: {P} ranks x {a.threads} threads, {a.model}, B={B}: "
                  f"{len(epochs)} epochs, {global_step} steps in {t_max:.2f}s = {samples / t_max:,.0f} samples/s "
                  f"(data {d_max:.2f}s, compute+allreduce {c_max:.2f}s, optimizer {o_max:.2f}s); "
                  f"final test_acc {result['final_test_acc']:.4f}; {tgt}", flush=True)
        return result


def worker(rank, a, data, port, result_path):
    torch.set_num_threads(a.threads)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=a.ranks)
    r = Rank(rank, a, data)
    result = r.result_head()
    result.update(r.throughput() if a.steps else r.train_epochs())
    root = r.root
    if root:
        with open(result_path, "w") as f:
            json.dump(result, f)
    dist.barrier()
    # torch 1.13 can deadlock in teardown: ~ProcessGroupGloo joins a gloo
    # thread that waits for the GIL to free a finished work's Python tensors
    # (seen once in a few runs). Every rank is done after the barrier: leave.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# ----------------------------------------------------------------- main

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None):
    """Trains (or times) the PyTorch peer; returns the exit code."""
    a = parse_args(argv)
    if a.json:
        out_dir = os.path.dirname(os.path.abspath(a.json))
        if not os.path.isdir(out_dir):
            fail(f"--json {a.json}: directory '{out_dir}' does not exist")
    train_x, train_y, test_x, test_y, mean, std = load_fashion_mnist(a.data_dir)
    classes = int(max(train_y.max(), test_y.max())) + 1
    if a.layout["input_width"] != train_x.shape[1] or a.layout["output_width"] != classes:
        fail(f"--model {a.model}: the data has {train_x.shape[1]} inputs and {classes} classes, "
             f"so the spec must be {train_x.shape[1]}-...-{classes}")

    # Children inherit these before they import torch; gloo on loopback.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(a.threads)
    for t in (train_x, train_y, test_x, test_y):
        t.share_memory_()  # loaded once; the ranks map the same pages

    fd, result_path = tempfile.mkstemp(prefix="bench_pytorch.", suffix=".json")
    os.close(fd)
    try:
        try:
            mp.spawn(worker, args=(a, (train_x, train_y, test_x, test_y), free_port(), result_path),
                     nprocs=a.ranks, join=True)
        except Exception as e:  # a rank failed: its traceback is above; one line here
            fail(f"a rank failed: {str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}", 1)
        with open(result_path) as f:
            result = json.load(f)
    finally:
        os.unlink(result_path)
    result["data_mean"], result["data_std"] = mean, std
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
