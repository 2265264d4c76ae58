"""The command lines of the study tools: thin scripts/<tool>.py entry points
and `python3 -m mpitrain_study.<tool>` from scripts/ behave the same; the
package edits no sys.path; a python3 without numpy re-runs the tools under
Debian's, but importing a module never does (nor prints or exits); bench.py's
option errors and its memory bound; the PyTorch peer's layers for a CNN."""

import glob
import math
import os
import shutil
import subprocess
import sys

import pytest

from helpers import SCRIPTS, one_error_line, run
from mpitrain_study import bench
from mpitrain_study.model_layout import model_layout
from mpitrain_study.peer_layers import PlanError, parse_shape, plan_param_count, torch_plan

TOOLS = ["sweep", "report", "perf_model", "bench", "bench_pytorch"]


@pytest.mark.parametrize("name", [t for t in TOOLS if t != "bench_pytorch"])
def test_entry_point_and_module_agree(name):
    script = run([sys.executable, os.path.join(SCRIPTS, f"{name}.py"), "--help"])
    module = run([sys.executable, "-m", f"mpitrain_study.{name}", "--help"], cwd=SCRIPTS)
    assert (script.returncode, script.stdout, script.stderr) == (module.returncode, module.stdout, module.stderr)
    assert script.returncode == 0 and script.stdout.startswith("usage: "), script.stderr


def test_the_pytorch_peer_starts():
    # With torch (Debian's python3-torch) it prints its usage; without (CI) it says so in one line.
    r = run([sys.executable, os.path.join(SCRIPTS, "bench_pytorch.py"), "--help"])
    if r.returncode == 0:
        assert r.stdout.startswith("usage: bench_pytorch.py") and "--mpitrain" in r.stdout
    else:
        assert one_error_line(r.stderr, "bench_pytorch.py: error:", "install it with 'apt-get install python3-torch'")


@pytest.mark.parametrize("name", TOOLS)
def test_entry_points_are_thin(name):
    with open(os.path.join(SCRIPTS, f"{name}.py")) as f:
        lines = f.read().splitlines()
    assert len(lines) <= 10
    assert f"from mpitrain_study.{name} import main" in lines


def test_no_sys_path_edits():
    files = glob.glob(os.path.join(SCRIPTS, "*.py")) + glob.glob(os.path.join(SCRIPTS, "mpitrain_study", "*.py"))
    assert len(files) >= len(TOOLS) + 10
    for path in files:
        with open(path) as f:
            assert "sys.path" not in f.read(), path


def python_without_numpy():
    """A python3 on PATH other than Debian's that cannot import numpy, or None."""
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = shutil.which("python3", path=d)
        if p and os.path.realpath(p) != os.path.realpath("/usr/bin/python3"):
            if subprocess.run([p, "-c", "import numpy"], capture_output=True).returncode != 0:
                return p
    return None


@pytest.mark.skipif(python_without_numpy() is None, reason="no python3 without numpy on PATH")
@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no Debian python3")
def test_a_python_without_numpy_reruns_under_debians(tmp_path):
    py = python_without_numpy()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPITRAIN_")}
    r = run([py, os.path.join(SCRIPTS, "report.py"), str(tmp_path / "absent")], env=env)
    assert one_error_line(r.stderr, "report: error:", "is not a directory"), r.stderr  # not: No module named numpy
    r = run([py, "-m", "mpitrain_study.perf_model", "--bench", str(tmp_path / "absent.json"), "--global-batch", "8"],
            cwd=SCRIPTS, env=env)
    assert one_error_line(r.stderr, "perf_model: error:", "cannot read it"), r.stderr


MODULES = ["mpitrain_study"] + sorted(
    f"mpitrain_study.{os.path.basename(p)[:-3]}" for p in glob.glob(os.path.join(SCRIPTS, "mpitrain_study", "*.py"))
    if not p.endswith("__init__.py")) + TOOLS  # TOOLS: the entry points scripts/<tool>.py
DEPENDENCIES = ("numpy", "matplotlib", "torch")

# `python3 -c IMPORT_PROBE REEXEC_SENTINEL MODULE LACKS...` imports MODULE; it
# exits with 3 (and prints nothing) when that needs one of LACKS, the
# dependencies this python3 lacks. An import that re-executes the interpreter
# with its arguments runs `-c REEXEC_SENTINEL`, which says so.
IMPORT_PROBE = """
import importlib, os, sys
env = dict(os.environ)
try:
    importlib.import_module(sys.argv[2])
except ModuleNotFoundError as e:
    if e.name not in sys.argv[3:]:
        raise
    sys.exit(3)
assert dict(os.environ) == env, "the import changed the environment"
"""
REEXEC_SENTINEL = "raise SystemExit('the import re-executed the interpreter')"


def interpreters():
    found = [p for p in ("/usr/bin/python3", python_without_numpy()) if p and os.path.exists(p)]
    return found or [sys.executable]


@pytest.fixture(scope="module", params=interpreters())
def python(request):
    """(an interpreter: Debian's, and one without numpy if PATH has one; the dependencies it lacks)"""
    py = request.param
    lacks = [m for m in DEPENDENCIES if subprocess.run([py, "-c", f"import {m}"], capture_output=True).returncode]
    return py, lacks


@pytest.mark.parametrize("module", MODULES)
def test_importing_a_module_has_no_side_effect(python, module):
    # Importing returns normally and prints nothing: no re-run under Debian's
    # python3 (that re-exec is the command line's, in main()), no exit, no
    # error line. A module may fail only for a dependency this python3 lacks,
    # and the tools' own modules need none to import.
    py, lacks = python
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPITRAIN_") and k != "BENCH_PYTORCH_REEXEC"}
    r = run([py, "-c", IMPORT_PROBE, REEXEC_SENTINEL, module, *lacks], cwd=SCRIPTS, env=env)
    assert (r.stdout, r.stderr) == ("", ""), f"{py}: import {module}:\n{r.stdout}{r.stderr}"
    tool = module.rsplit(".", 1)[-1] in TOOLS
    assert r.returncode == 0 or (r.returncode == 3 and not tool), f"{py}: import {module}: exit code {r.returncode}"


def test_bench_option_errors(tmp_path):
    for args, phrase in ((["--cases", "bogus"], "unknown case 'bogus'"),
                         (["--layouts", "3x3"], "unknown layout '3x3'"),
                         (["--mpitrain", str(tmp_path / "absent"), "--no-torch"], "no mpitrain binary at")):
        r = run([sys.executable, os.path.join(SCRIPTS, "bench.py"), "--out", str(tmp_path), *args])
        assert r.returncode != 0 and one_error_line(r.stderr, "bench: error:", phrase), r.stderr


def test_bench_memory_bound_from_the_layout(mpitrain):
    # 784-256-128-100-10 at B=256 on 2 ranks: 128 rows per rank; parameters,
    # gradients and momentum, one activation buffer per layer plus the input,
    # two ping-pong buffers of the widest layer, the prefetch double buffer
    # and the uint8 staging rows of two readers.
    layout = model_layout(mpitrain, "784-256-128-100-10")
    rows, w = 128, [784, 256, 128, 100, 10]
    floats = 3 * layout["param_count"] + rows * sum(w) + 2 * rows * 784 + 2 * rows * (784 + 10)
    want = (4 * floats + 2 * rows * 784) / 1e6
    assert bench.rss_bound_mb(layout, 256, 2) == pytest.approx(want, rel=1e-12)
    assert math.isclose(bench.rss_bound_mb(layout, 256, 2), 5.444104, rel_tol=1e-6)  # the README's table


CNN = "1x28x28 conv5x5:32 relu maxpool2 conv5x5:64 relu maxpool2 dense:128 relu dense:10"
# Kernels the shapes alone do not fix: a non-square valid kernel at stride 2,
# an even kernel with "same" padding (3 pixels: 1 before, 2 after), batch
# norm, tanh fused, an overlapping average pool, global pooling, dropout.
ODD = ("1x28x28 conv3x5:8,stride=2,pad=valid bn relu conv4x4:16 tanh avgpool3,stride=2 "
       "conv3x3:8,pad=2 gap dense:32 relu dropout:0.25 dense:10")


def test_peer_plan_of_the_cnn(mpitrain):
    layout = model_layout(mpitrain, CNN)
    plan = torch_plan(layout)
    assert plan == [
        [("nhwc_rows", 1, 28, 28), ("conv", 1, 32, (5, 5), 1, (2, 2, 2, 2), 25), ("act", "relu")],
        [("maxpool", 2, 2)],
        [("conv", 32, 64, (5, 5), 1, (2, 2, 2, 2), 800), ("act", "relu")],
        [("maxpool", 2, 2)],
        [("flatten",), ("dense", 3136, 128, "he"), ("act", "relu")],  # NCHW flatten: a permutation of NHWC
        [("dense", 128, 10, "glorot")],
    ]
    assert [plan_param_count(steps) for steps in plan] == [layer["params"] for layer in layout["layers"]]
    odd = model_layout(mpitrain, ODD)
    plan = torch_plan(odd)
    assert [plan_param_count(steps) for steps in plan] == [layer["params"] for layer in odd["layers"]]
    convs = [s for steps in plan for s in steps if s[0] == "conv"]
    assert [(c[3], c[4], c[5]) for c in convs] == [((3, 5), 2, (0, 0, 0, 0)), ((4, 4), 1, (1, 2, 1, 2)),
                                                  ((3, 3), 1, (2, 2, 2, 2))]
    assert ("dropout", 0.25) in plan[-2] and ("batchnorm", 8, 2) in plan[1] and ("avgpool", 3, 2) in plan[4]
    # A spec token the layout contradicts is refused, not built wrong.
    bad = dict(odd, model=ODD.replace("conv4x4:16", "conv3x3:16"))  # 9 weights per channel pair, not 16
    with pytest.raises(PlanError, match="conv1"):
        torch_plan(bad)


@pytest.mark.parametrize("spec", [CNN, ODD, "784-256-128-100-10"])
def test_peer_torch_model_matches_the_layout(mpitrain, spec):
    torch = pytest.importorskip("torch")
    from mpitrain_study.bench_pytorch_ddp import make_model
    layout = model_layout(mpitrain, spec)
    model = make_model(layout)
    assert len(model) == len(layout["layers"])
    x = torch.randn(3, layout["input_width"])
    model.train()
    for layer, block in zip(layout["layers"], model):
        x = block(x)
        running = sum(b.numel() for name, b in block.named_buffers() if name.split(".")[-1].startswith("running_"))
        assert sum(p.numel() for p in block.parameters()) + running == layer["params"], layer["name"]
        assert tuple(x.shape) == (3, *parse_shape(layer["out_shape"])), layer["name"]
    trained = sum(p.numel() for p in model.parameters())
    assert trained == layout["param_count"]
    if spec == CNN:  # He-normal convolutions: std sqrt(2/(k k C_in)), zero bias
        conv1 = model[2][0]
        assert conv1.weight.std().item() == pytest.approx((2 / 800) ** 0.5, rel=0.05)
        assert not conv1.bias.any()
