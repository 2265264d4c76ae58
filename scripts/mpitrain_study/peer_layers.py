"""The PyTorch peer's layer plan: mpitrain's model, as `mpitrain inspect
--model --json` lays it out, as a list of torch-free steps that
bench_pytorch_ddp.make_model turns into modules.

The layout gives each layer's kind, activation, shapes and parameters; it
does not give a convolution's kernel and stride, a pooling window's stride
or a dropout rate, so those are read from the spec's own tokens (the i-th
`conv` layer of the layout is the i-th `convKxK:C` token, and so on), and
checked against the layout: the kernel's area against the parameters, every
output shape against the formula PyTorch will use. The padding is derived
from the shapes (total = (out - 1) stride + k - in, split evenly, the odd
pixel after), so `same`, `valid` and `pad=N` all come out as mpitrain pads.

Differences the peer accepts (docs/perf-model.md, "The PyTorch peer"):
PyTorch stores maps NCHW, so nn.Flatten before the first Dense layer after a
map reads them in another order than mpitrain's NHWC rows, a permutation of
a freshly initialised layer; batch norm is nn.BatchNorm{1,2}d with each
rank's statistics (PyTorch's SyncBatchNorm needs GPUs), where mpitrain's
statistics are the global batch's.
"""

import math
import re


class PlanError(Exception):
    """The layout has a layer the peer cannot build; the message says which."""


def parse_shape(text):
    """'32x14x14' -> (32, 14, 14) (C, H, W); '128' -> (128,)."""
    return tuple(int(v) for v in str(text).split("x"))


_CONV = re.compile(r"^conv(\d+)x(\d+):(\d+)((?:,[a-z]+=[^,]+)*)$")
_POOL = re.compile(r"^(max|avg)pool(\d+)((?:,[a-z]+=[^,]+)*)$")
_DROPOUT = re.compile(r"^dropout:([0-9.eE+-]+)$")


def _options(text):
    return dict(item.split("=", 1) for item in text.split(",") if item)


def spec_hyperparameters(spec):
    """{'conv': [...], 'maxpool': [...], 'avgpool': [...], 'dropout': [...]}
    in spec order: what the layout does not say. conv: (kh, kw, stride),
    pools: (k, stride), dropout: rate. A width spec (784-256-10) has none."""
    out = {"conv": [], "maxpool": [], "avgpool": [], "dropout": []}
    for token in re.sub(r",\s+", ",", str(spec)).split()[1:]:
        token = token.lower()
        if m := _CONV.match(token):
            opts = _options(m.group(4))
            out["conv"].append((int(m.group(1)), int(m.group(2)), int(opts.get("stride", 1))))
        elif m := _POOL.match(token):
            opts = _options(m.group(3))
            k = int(m.group(2))
            out[f"{m.group(1)}pool"].append((k, int(opts.get("stride", k))))
        elif m := _DROPOUT.match(token):
            out["dropout"].append(float(m.group(1)))
    return out


def _padding(name, n_in, n_out, k, stride):
    """(before, after) zero padding of one spatial dimension that gives n_out."""
    total = (n_out - 1) * stride + k - n_in
    if total < 0:  # stride leaves trailing pixels unread: no padding
        total = 0
    before = total // 2
    if (n_in + total - k) // stride + 1 != n_out:
        raise PlanError(f"layer {name}: no padding turns {n_in} pixels into {n_out} with a {k}-wide kernel at "
                        f"stride {stride}")
    return before, total - before


def _take(hp, kind, name):
    if not hp[kind]:
        raise PlanError(f"layer {name}: the spec has no matching {kind} token (give the layer-list spec)")
    return hp[kind].pop(0)


def torch_plan(layout):
    """One list of steps per layer of the layout (so a block's parameters
    and output shape can be compared with the layer's). Steps:

      ("nhwc_rows", C, H, W)      rows of H*W*C values -> N x C x H x W (first block, image input)
      ("flatten",)                N x C x H x W -> N x (C*H*W), NCHW order
      ("conv", C_in, C_out, (kh, kw), stride, (top, bottom, left, right), fan_in)
      ("maxpool" | "avgpool", k, stride)
      ("gap",)                    global average pooling, N x C x H x W -> N x C
      ("dense", in, out, "he" | "glorot")
      ("batchnorm", C, dims)      dims 2 (maps) or 1 (vectors)
      ("dropout", rate)
      ("act", "relu" | "tanh" | "gelu")
    """
    layers = layout["layers"]
    hp = spec_hyperparameters(layout.get("model", ""))
    input_shape = parse_shape(layout.get("input_shape", layout["input_width"]))
    dense = [i for i, layer in enumerate(layers) if layer["kind"] == "dense"]
    last_dense = dense[-1] if dense else None
    plan = []
    shape = input_shape
    for i, layer in enumerate(layers):
        kind, name = layer["kind"], layer["name"]
        in_shape = parse_shape(layer.get("in_shape", layer["in"]))
        out_shape = parse_shape(layer.get("out_shape", layer["out"]))
        steps = []
        if i == 0 and len(input_shape) == 3:
            steps.append(("nhwc_rows", *input_shape))
        if in_shape != shape:
            raise PlanError(f"layer {name} reads shape {layer.get('in_shape')}, the layer before gives "
                            f"{'x'.join(map(str, shape))}")
        if kind == "conv":
            kh, kw, stride = _take(hp, "conv", name)
            (c_in, h, w), (c_out, ho, wo) = in_shape, out_shape
            if c_in * c_out * kh * kw + c_out != layer["params"]:
                raise PlanError(f"layer {name}: a {kh}x{kw} kernel from {c_in} to {c_out} channels has "
                                f"{c_in * c_out * kh * kw + c_out} parameters, inspect says {layer['params']}")
            top, bottom = _padding(name, h, ho, kh, stride)
            left, right = _padding(name, w, wo, kw, stride)
            steps.append(("conv", c_in, c_out, (kh, kw), stride, (top, bottom, left, right), kh * kw * c_in))
        elif kind in ("maxpool", "avgpool"):
            k, stride = _take(hp, kind, name)
            (c, h, w), (_, ho, wo) = in_shape, out_shape
            if ((h - k) // stride + 1, (w - k) // stride + 1) != (ho, wo):
                raise PlanError(f"layer {name}: a {k}x{k} window at stride {stride} does not give {layer['out_shape']}")
            steps.append((kind, k, stride))
        elif kind == "gap":
            steps.append(("gap",))
        elif kind == "flatten":
            steps.append(("flatten",))
        elif kind == "dense":
            if len(in_shape) == 3:  # Dense reads a map: PyTorch flattens NCHW (a permutation of mpitrain's NHWC)
                steps.append(("flatten",))
            steps.append(("dense", layer["in"], layer["out"], "glorot" if i == last_dense else "he"))
        elif kind == "batchnorm":
            steps.append(("batchnorm", in_shape[0], 2 if len(in_shape) == 3 else 1))
        elif kind == "dropout":
            steps.append(("dropout", _take(hp, "dropout", name)))
        elif kind != "activation":
            raise PlanError(f"layer {name} ({kind}) has no PyTorch counterpart in the peer")
        act = layer.get("activation", "none")
        if act not in ("none", None):
            steps.append(("act", act))
        plan.append(steps)
        shape = out_shape
    return plan


def plan_param_count(steps):
    """Parameters of one block as mpitrain counts them (batch norm's running
    mean and variance live in its arena too)."""
    n = 0
    for s in steps:
        if s[0] == "conv":
            n += s[1] * s[2] * s[3][0] * s[3][1] + s[2]
        elif s[0] == "dense":
            n += s[1] * s[2] + s[2]
        elif s[0] == "batchnorm":
            n += 4 * s[1]
    return n


def he_std(fan_in):
    """He-normal standard deviation (He et al. 2015), the init of every conv and hidden Dense layer."""
    return math.sqrt(2.0 / fan_in)
