"""PyTorch DistributedDataParallel peer of `mpitrain train` for the performance benchmark.

Trains the same model (the layer list `mpitrain inspect --model` prints, an
MLP or a CNN: peer_layers.py) on
the same Fashion-MNIST data with the same global-batch, learning-rate and
evaluation semantics as mpitrain, the way a PyTorch user would: the whole
data set in memory, P processes from torch.multiprocessing.spawn, gloo, DDP
with its default buckets. Where its semantics and timing differ from
mpitrain's: docs/perf-model.md, "The PyTorch peer".

  python3 scripts/bench_pytorch.py --ranks 2 --threads 1 --global-batch 256 --epochs 15 --json out.json
  python3 scripts/bench_pytorch.py --ranks 2 --threads 1 --steps 200        # throughput only

Needs numpy and torch (Debian: python3-torch), the IDX files of Debian's
dataset-fashion-mnist package and the mpitrain binary. This module is the
command line; main() imports the PyTorch side, bench_pytorch_ddp.py, so
importing this module needs neither numpy nor torch.
"""

import argparse
import json
import math
import os
import sys
import tempfile

from .model_layout import LayoutError, find_mpitrain, model_layout
from .peer_layers import PlanError, torch_plan
from .system_python import rerun_under_system_python

PROG = "bench_pytorch.py"


def fail(message, code=2):
    print(f"{PROG}: error: {message}", file=sys.stderr)
    sys.exit(code)


def import_torch_side():
    """The module bench_pytorch_ddp (numpy, torch). Without them, the tool
    re-runs under Debian's python3, where python3-torch lives
    (system_python.py), else ends with one error line."""
    try:
        from . import bench_pytorch_ddp
    except ImportError as e:
        rerun_under_system_python("BENCH_PYTORCH_REEXEC")
        fail(f"{e.name or e}: not importable ({sys.executable}); install it with 'apt-get install python3-torch'", 1)
    return bench_pytorch_ddp


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        fail(message)


def model_layers(a, activations):
    """The model's layout as mpitrain builds it (mpitrain inspect --model),
    checked to be one the PyTorch side builds (peer_layers.torch_plan: dense,
    conv, pooling, flatten, batch norm, dropout; `activations`: the ones it
    has)."""
    mpitrain = find_mpitrain(a.mpitrain)
    if not mpitrain:
        fail(f"no mpitrain binary at {a.mpitrain}" if a.mpitrain else
             "no mpitrain binary (build it with scripts/build.sh, or pass --mpitrain PATH)")
    try:
        layout = model_layout(mpitrain, a.model, activation="relu")
    except LayoutError as e:
        fail(str(e))
    try:
        plan = torch_plan(layout)
    except PlanError as e:
        fail(f"--model '{a.model}': {e}")
    for layer, steps in zip(layout["layers"], plan):
        for s in steps:
            if s[0] == "act" and s[1] not in activations:
                fail(f"--model '{a.model}': layer {layer['name']} has no PyTorch counterpart here")
    return layout


def parse_args(argv, ddp):
    """The options, checked; `ddp`: the module bench_pytorch_ddp."""
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="784-256-128-100-10", help="layer widths, input first, ReLU between; or a layer list (mpitrain's --model)")
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
    p.add_argument("--data-dir", default=ddp.DATA_DIR, help="directory of the Fashion-MNIST IDX .gz files")
    p.add_argument("--json", metavar="PATH", help="write the result as one JSON object")
    a = p.parse_args(argv)
    a.layout = model_layers(a, ddp.ACTIVATIONS)

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


def main(argv=None):
    """Trains (or times) the PyTorch peer; returns the exit code."""
    ddp = import_torch_side()
    a = parse_args(argv, ddp)
    if a.json:
        out_dir = os.path.dirname(os.path.abspath(a.json))
        if not os.path.isdir(out_dir):
            fail(f"--json {a.json}: directory '{out_dir}' does not exist")
    try:
        train_x, train_y, test_x, test_y, mean, std = ddp.load_fashion_mnist(a.data_dir)
    except ddp.DataError as e:
        fail(str(e), e.code)
    classes = int(max(train_y.max(), test_y.max())) + 1
    if a.layout["input_width"] != train_x.shape[1] or a.layout["output_width"] != classes:
        fail(f"--model {a.model}: the data has {train_x.shape[1]} inputs and {classes} classes, "
             f"so the spec must be {train_x.shape[1]}-...-{classes}")
    data = (train_x, train_y, test_x, test_y)
    ddp.share_with_ranks(a.threads, data)

    fd, result_path = tempfile.mkstemp(prefix="bench_pytorch.", suffix=".json")
    os.close(fd)
    try:
        try:
            ddp.spawn_ranks(a, data, result_path)
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
