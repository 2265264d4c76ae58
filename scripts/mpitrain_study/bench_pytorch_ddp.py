"""The PyTorch side of bench_pytorch.py: the data as tensors, mpitrain's
model as an nn.Sequential (one block per layer, peer_layers.py), its learning-rate schedule, one DDP rank with its
timed training loop, and the spawn of the ranks.

Needs numpy and torch: bench_pytorch.py's main() imports it (after re-running
under Debian's python3 when this interpreter has no torch), so importing
bench_pytorch itself needs neither.
"""

import json
import math
import os
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from .fashion_mnist import DATA_DIR, DataError, load_normalised  # noqa: F401 (DATA_DIR, DataError: for bench_pytorch)
from .peer_layers import he_std, torch_plan

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


# ----------------------------------------------------------------- data

def load_fashion_mnist(data_dir):
    """Train and test tensors, normalised as mpitrain's reader does, and the
    mean and std; a missing or broken file raises DataError."""
    train_x, train_y, test_x, test_y, mean, std = load_normalised(data_dir)
    return (*(torch.from_numpy(t) for t in (train_x, train_y, test_x, test_y)), mean, std)


# ----------------------------------------------------------------- model, schedule

class NHWCRows(nn.Module):
    """Rows of H*W*C values (mpitrain's channels-innermost storage) as N x C x H x W."""

    def __init__(self, c, h, w):
        super().__init__()
        self.shape = (c, h, w)

    def forward(self, x):
        c, h, w = self.shape
        if c == 1:  # the same order; a plain view keeps the weight gradients' strides as DDP laid them out
            return x.view(-1, 1, h, w)
        return x.view(-1, h, w, c).permute(0, 3, 1, 2).contiguous()


def make_block(steps):
    """nn.Sequential of one layer's plan (peer_layers.torch_plan)."""
    modules = []
    for s in steps:
        op = s[0]
        if op == "nhwc_rows":
            modules.append(NHWCRows(*s[1:]))
        elif op == "flatten":
            modules.append(nn.Flatten())
        elif op == "conv":
            _, c_in, c_out, kernel, stride, (top, bottom, left, right), fan_in = s
            if (top, left) != (bottom, right):  # uneven padding (even kernel, "same"): pad first
                modules.append(nn.ZeroPad2d((left, right, top, bottom)))
                top = left = 0
            conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=(top, left))
            with torch.no_grad():
                nn.init.normal_(conv.weight, 0.0, he_std(fan_in))
                nn.init.zeros_(conv.bias)
            modules.append(conv)
        elif op == "maxpool":
            modules.append(nn.MaxPool2d(s[1], stride=s[2]))
        elif op == "avgpool":
            modules.append(nn.AvgPool2d(s[1], stride=s[2]))
        elif op == "gap":
            modules += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif op == "dense":
            _, n_in, n_out, init = s
            lin = nn.Linear(n_in, n_out)
            with torch.no_grad():
                if init == "glorot":
                    nn.init.xavier_uniform_(lin.weight)  # limit sqrt(6/(fan_in+fan_out))
                else:
                    nn.init.normal_(lin.weight, 0.0, he_std(n_in))
                nn.init.zeros_(lin.bias)
            modules.append(lin)
        elif op == "batchnorm":
            modules.append(nn.BatchNorm2d(s[1]) if s[2] == 2 else nn.BatchNorm1d(s[1]))
        elif op == "dropout":
            modules.append(nn.Dropout(s[1]))
        elif op == "act":
            modules.append(ACTIVATIONS[s[1]]())
        else:
            raise ValueError(f"unknown plan step {s!r}")
    return nn.Sequential(*modules)


def make_model(layout):
    """nn.Sequential of mpitrain's layers, one block per layer of the layout
    (peer_layers.torch_plan): He-normal weights (std sqrt(2/fan_in)) for
    convolutions and hidden Dense layers, Glorot-uniform for the last Dense
    layer, zero biases."""
    return nn.Sequential(*(make_block(steps) for steps in torch_plan(layout)))


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
        self.model = make_model(a.layout)
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


# ----------------------------------------------------------------- the ranks

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def share_with_ranks(threads, tensors):
    """Threads per rank and the data in shared memory, before the ranks start."""
    # Children inherit these before they import torch; gloo on loopback.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(threads)
    for t in tensors:
        t.share_memory_()  # loaded once; the ranks map the same pages


def spawn_ranks(a, data, result_path):
    """Runs a.ranks worker processes (gloo on loopback); rank 0 writes the result JSON to result_path."""
    mp.spawn(worker, args=(a, data, free_port(), result_path), nprocs=a.ranks, join=True)
