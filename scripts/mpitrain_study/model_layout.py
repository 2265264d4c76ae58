"""The model's layout as the trainer builds it, asked from the binary.

`mpitrain inspect --model SPEC --json` prints the layers (name, kind, in and
out width, parameters, FLOPs per sample), the parameter tensors in the arena,
the FLOPs per sample of forward and of a training step, and the gradient
all-reduce's buckets. The tools read that and re-derive none of it.
"""

import copy
import functools
import os
import shutil
import subprocess

from .metrics import parse_json_text
from .paths import DEFAULT_MPITRAIN


class LayoutError(Exception):
    """The binary is missing or refused the model; the message says which."""


def find_mpitrain(path=None):
    """The mpitrain binary: `path` if given, else build/mpitrain of this
    repository, else `mpitrain` on PATH. None when there is none."""
    for candidate in ([path] if path else [DEFAULT_MPITRAIN, shutil.which("mpitrain")]):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def _inspect(mpitrain, spec, activation, bucket_bytes):
    cmd = [mpitrain, "inspect", "--model", str(spec)]
    if activation is not None:
        cmd += ["--activation", activation]
    if bucket_bytes is not None:
        cmd += ["--bucket-bytes", str(int(bucket_bytes))]
    try:
        r = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=120)
    except OSError as e:
        raise LayoutError(f"cannot run {mpitrain}: {e.strerror}")
    if r.returncode != 0:
        if "usage: mpitrain inspect" in r.stderr and "--model" not in r.stderr:
            raise LayoutError(f"{mpitrain} has no `inspect --model` (built before it existed): rebuild it "
                              "(scripts/build.sh) or pass --mpitrain PATH")
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("mpitrain: error: ")]
        why = (errors or lines or [f"exit code {r.returncode}"])[0]
        raise LayoutError(why.removeprefix("mpitrain: error: "))
    layout = parse_json_text(r.stdout)
    if not isinstance(layout, dict) or "layers" not in layout:
        raise LayoutError(f"{mpitrain} inspect --model printed no layout: is it an older mpitrain?")
    return layout


def model_layout(mpitrain, spec, activation=None, bucket_bytes=None):
    """The layout of model `spec` (a dict, see the module text) from the
    binary at `mpitrain`; activation and bucket_bytes default to the
    trainer's. LayoutError when the binary is missing or refuses the spec."""
    if not mpitrain:
        raise LayoutError("no mpitrain binary (build it with scripts/build.sh, or pass --mpitrain PATH)")
    return copy.deepcopy(_inspect(mpitrain, spec, activation, bucket_bytes))


def widths(layout):
    """The input width, then each layer's output width: the activation
    buffers the trainer's model holds, one per layer after the input."""
    return [layout["input_width"]] + [layer["out"] for layer in layout["layers"]]
