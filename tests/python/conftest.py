"""Fixtures of the study tools' tests: the binaries under test, a runner for
the tools' command lines, and an mpirun prefix."""

import os
import shutil
import sys

import pytest

from helpers import SCRIPTS, run


def pytest_addoption(parser):
    for name, env in (("mpitrain", "MPITRAIN"), ("make-test-dataset", "MAKE_TEST_DATASET"), ("mpiexec", "MPIEXEC")):
        parser.addoption(f"--{name}", default=os.environ.get(env), help=f"the {name} binary (default ${env})")


def _executable(config, name):
    path = config.getoption(name.replace("-", "_"))
    if not path:
        pytest.fail(f"give --{name} PATH or set {name.upper().replace('-', '_')} (ctest does)", pytrace=False)
    found = shutil.which(path)
    if not found:
        pytest.fail(f"--{name} {path} is not an executable", pytrace=False)
    return os.path.abspath(found)


@pytest.fixture(scope="session")
def mpitrain(pytestconfig):
    return _executable(pytestconfig, "mpitrain")


@pytest.fixture(scope="session")
def make_test_dataset(pytestconfig):
    return _executable(pytestconfig, "make-test-dataset")


@pytest.fixture(scope="session")
def mpirun(pytestconfig):
    """The mpiexec prefix for small jobs on this machine (CI runs as root)."""
    cmd = [_executable(pytestconfig, "mpiexec"), "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    return cmd


@pytest.fixture(scope="session", autouse=True)
def small_jobs_env():
    # 2 ranks on 2 cores: no BLAS oversubscription; more ranks than cores is allowed.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMPI_MCA_rmaps_base_oversubscribe", "1")
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the source tree


@pytest.fixture(scope="session")
def tool():
    """tool(name, *args): runs the entry point scripts/<name>.py under this interpreter."""
    def run_tool(name, *args, timeout=120, cwd=None, env=None):
        return run([sys.executable, os.path.join(SCRIPTS, f"{name}.py"), *args], timeout=timeout, cwd=cwd, env=env)
    return run_tool
