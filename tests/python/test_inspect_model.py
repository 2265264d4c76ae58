"""`mpitrain inspect --model SPEC [--json]`: the contract the study tools
read (layers, parameter tensors in the arena, FLOPs per sample, gradient
buckets; a CNN's kinds and shapes), checked against hand arithmetic, and its
errors."""

import json

import pytest

from helpers import one_error_line, run
from mpitrain_study.model_layout import LayoutError, model_layout, widths

WIDTHS = [784, 256, 128, 100, 10]
SPEC = "-".join(map(str, WIDTHS))


def inspect_json(mpitrain, *args):
    r = run([mpitrain, "inspect", *args, "--json"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1, "one JSON object on one line"
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def layout(mpitrain):
    return inspect_json(mpitrain, "--model", SPEC)


def test_layers_and_parameter_count(layout):
    assert layout["model"] == SPEC and layout["activation"] == "relu"
    assert (layout["input_width"], layout["output_width"]) == (784, 10)
    assert layout["param_count"] == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 100 + 100 + 100 * 10 + 10
    layers = layout["layers"]
    assert [(l["in"], l["out"]) for l in layers] == list(zip(WIDTHS, WIDTHS[1:]))
    assert [l["name"] for l in layers] == ["dense0+relu", "dense1+relu", "dense2+relu", "dense3"]
    assert [l["kind"] for l in layers] == ["dense"] * 4
    assert [l["activation"] for l in layers] == ["relu", "relu", "relu", "none"]
    assert [l["params"] for l in layers] == [a * b + b for a, b in zip(WIDTHS, WIDTHS[1:])]
    assert sum(l["params"] for l in layers) == layout["param_count"]


def test_flops_per_sample(layout):
    forward = 2 * sum(a * b for a, b in zip(WIDTHS, WIDTHS[1:]))
    assert layout["forward_flops_per_sample"] == forward
    assert [l["forward_flops_per_sample"] for l in layout["layers"]] == [2 * a * b for a, b in zip(WIDTHS, WIDTHS[1:])]
    # Backward: a parameter gradient and an input gradient per layer, but no
    # input gradient for the first layer.
    assert layout["train_flops_per_sample"] == 3 * forward - 2 * WIDTHS[0] * WIDTHS[1]
    assert sum(l["train_flops_per_sample"] for l in layout["layers"]) == layout["train_flops_per_sample"]


def test_tensors_tile_the_arena_with_its_alignment(layout):
    tensors = layout["tensors"]
    assert [t["name"] for t in tensors] == [f"dense{i}/{p}" for i in range(4) for p in ("W", "b")]
    assert [t["count"] for t in tensors] == [n for a, b in zip(WIDTHS, WIDTHS[1:]) for n in (a * b, b)]
    assert sum(t["count"] for t in tensors) == layout["param_count"]
    end = 0
    for t in tensors:
        assert t["offset"] >= end, "tensors do not overlap and keep their order"
        assert t["offset"] - end < 16, "padding only up to the next aligned start"
        assert t["offset"] % 16 == 0, "each tensor starts on a 64-byte boundary"
        end = t["offset"] + t["count"]
    assert layout["arena_floats"] == end
    assert layout["reduce_floats"] == layout["stat_slots"] + layout["arena_floats"]
    for i, l in enumerate(layout["layers"]):
        assert [t["layer"] for t in tensors[l["tensor_begin"]:l["tensor_end"]]] == [i] * 2


@pytest.mark.parametrize("bucket_bytes", [0, 4, 64, 1024, 65536, 262144, 10 ** 9])
def test_buckets_cover_the_reduce_buffer_once(mpitrain, bucket_bytes):
    layout = inspect_json(mpitrain, "--model", SPEC, "--bucket-bytes", str(bucket_bytes))
    buckets = layout["buckets"]
    assert layout["bucket_bytes"] == bucket_bytes
    assert buckets[0]["begin"] == 0 and buckets[-1]["end"] == layout["reduce_floats"]
    for a, b in zip(buckets, buckets[1:]):
        assert a["end"] == b["begin"]
    assert all(b["floats"] == b["end"] - b["begin"] > 0 and b["bytes"] == 4 * b["floats"] for b in buckets)
    assert sum(b["floats"] for b in buckets) == layout["reduce_floats"]
    # Only the first bucket holds the stat slots; the others start at a tensor.
    assert [b["holds_stats"] for b in buckets] == [True] + [False] * (len(buckets) - 1)
    starts = {layout["stat_slots"] + t["offset"] for t in layout["tensors"]}
    assert all(b["begin"] in starts for b in buckets[1:])
    # Cut from the back: every bucket but the first holds at least bucket_bytes.
    assert all(b["bytes"] >= bucket_bytes for b in buckets[1:])
    if bucket_bytes == 0 or bucket_bytes >= 4 * layout["reduce_floats"]:
        assert len(buckets) == 1


def test_buckets_at_64_bytes_by_hand(mpitrain):
    # 16-32-4: dense0/W 512 floats at 0, dense0/b 32 at 512, dense1/W 128 at
    # 544, dense1/b 4 at 672; the reduce buffer is 16 + 676 = 692 floats. At
    # 16 floats a bucket, from the back: [560, 692) (dense1/W and dense1/b:
    # dense1/b alone is too small), [528, 560) (dense0/b), [0, 528).
    layout = inspect_json(mpitrain, "--model", "16-32-4", "--bucket-bytes", "64")
    assert [(b["begin"], b["end"]) for b in layout["buckets"]] == [(0, 528), (528, 560), (560, 692)]
    assert [(b["tensor_begin"], b["tensor_end"]) for b in layout["buckets"]] == [(0, 1), (1, 2), (2, 4)]


def test_gelu_is_a_layer_of_its_own(mpitrain):
    layout = inspect_json(mpitrain, "--model", "16-32-4", "--activation", "gelu")
    assert [(l["name"], l["kind"], l.get("activation")) for l in layout["layers"]] == \
        [("dense0", "dense", "none"), ("gelu", "activation", "gelu"), ("dense1", "dense", "none")]
    assert [l["params"] for l in layout["layers"]] == [16 * 32 + 32, 0, 32 * 4 + 4]
    assert widths(model_layout(mpitrain, "16-32-4", activation="gelu")) == [16, 32, 32, 4]


def test_the_table_says_the_same(mpitrain, layout):
    r = run([mpitrain, "inspect", "--model", SPEC])
    assert r.returncode == 0 and r.stderr == ""
    text = r.stdout
    assert f"model: {SPEC} (activation relu): 784 inputs (784), 10 outputs" in text  # (the input shape)
    assert f"parameters: {layout['param_count']} in 8 tensors; the arena holds {layout['arena_floats']} floats" in text
    assert (f"FLOPs per sample: forward {layout['forward_flops_per_sample']}, "
            f"training step {layout['train_flops_per_sample']}") in text
    assert f"in {len(layout['buckets'])} bucket(s) at --bucket-bytes {layout['bucket_bytes']}" in text


CNN = "1x28x28 conv5x5:32 relu maxpool2 conv5x5:64 relu maxpool2 dense:128 relu dense:10"


def test_the_cnn_layout_has_kinds_and_shapes(mpitrain):
    # What the PyTorch peer (peer_layers.py) builds from: kind, fused
    # activation, CxHxW shapes, parameters per layer; "same" 5x5 convolutions
    # keep H x W, pooling halves it, dense0 reads the 64x7x7 map.
    layout = inspect_json(mpitrain, "--model", CNN)
    assert (layout["input_shape"], layout["input_width"], layout["batch_statistics"]) == ("1x28x28", 784, False)
    got = [(l["name"], l["kind"], l.get("activation"), l["in_shape"], l["out_shape"], l["params"])
           for l in layout["layers"]]
    assert got == [
        ("conv0+relu", "conv", "relu", "1x28x28", "32x28x28", 5 * 5 * 1 * 32 + 32),
        ("maxpool0", "maxpool", None, "32x28x28", "32x14x14", 0),
        ("conv1+relu", "conv", "relu", "32x14x14", "64x14x14", 5 * 5 * 32 * 64 + 64),
        ("maxpool1", "maxpool", None, "64x14x14", "64x7x7", 0),
        ("dense0+relu", "dense", "relu", "64x7x7", "128", 64 * 7 * 7 * 128 + 128),
        ("dense1", "dense", "none", "128", "10", 128 * 10 + 10),
    ]
    assert [(l["in"], l["out"]) for l in layout["layers"]] == [(784, 25088), (25088, 6272), (6272, 12544),
                                                               (12544, 3136), (3136, 128), (128, 10)]
    assert layout["param_count"] == sum(l["params"] for l in layout["layers"]) == 454922
    # Forward FLOPs of a convolution: 2 x output pixels x k x k x C_in x C_out.
    assert layout["layers"][2]["forward_flops_per_sample"] == 2 * 14 * 14 * 5 * 5 * 32 * 64


def test_model_layout_reads_the_binary(mpitrain, layout):
    assert model_layout(mpitrain, SPEC) == layout
    assert widths(layout) == WIDTHS
    with pytest.raises(LayoutError, match="bad --model '784-x'"):
        model_layout(mpitrain, "784-x")
    with pytest.raises(LayoutError, match="no mpitrain binary"):
        model_layout(None, SPEC)


def test_an_mpitrain_without_inspect_model(tmp_path):
    old = tmp_path / "mpitrain"
    old.write_text("#!/bin/sh\necho \"mpitrain: error: expected one FILE, got 4 arguments\" >&2\n"
                   "echo \"usage: mpitrain inspect FILE\" >&2\nexit 2\n")
    old.chmod(0o755)
    with pytest.raises(LayoutError, match="has no `inspect --model` .* rebuild it"):
        model_layout(str(old), SPEC)


@pytest.mark.parametrize("args, phrase", [
    (["--model", "784-x"], "bad --model '784-x'"),
    (["--model", "784"], "needs at least an input and an output width"),
    (["--model", "784-10", "--bucket-bytes", "-5"], "--bucket-bytes must be >= 0"),
    (["--model", "784-10", "--bucket-bytes", "1e3"], "--bucket-bytes takes a whole number of bytes"),
    (["--model", "784-10", "ckpt.h5"], "give either FILE or --model SPEC, not both"),
    (["ckpt.h5", "--model", "784-10", "--json"], "give either FILE or --model SPEC, not both"),
    (["--model", "784-10", "--activation", "sigmoid"], "unknown --activation 'sigmoid'"),
    (["--model"], "--model needs a value"),
    (["--json"], "go with --model SPEC"),
    (["--model", "784-10", "--frob"], "unknown option '--frob'"),
])
def test_bad_input_gives_one_error_line_and_exit_2(mpitrain, args, phrase):
    r = run([mpitrain, "inspect", *args])
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and one_error_line(r.stderr, "mpitrain: error: ", phrase), r.stderr
