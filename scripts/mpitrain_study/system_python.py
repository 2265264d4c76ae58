"""Running a tool under Debian's python3.

Debian's python3-numpy, python3-matplotlib and python3-torch install into the
system interpreter, /usr/bin/python3. A pyenv or venv python3 earlier on
PATH does not see them; the tools that need them re-run themselves under the
system interpreter once (an environment variable stops a loop).
"""

import os
import sys

SYSTEM_PYTHON = "/usr/bin/python3"


def require_numpy_matplotlib(tool, flag):
    """Makes sure numpy and matplotlib are importable, re-running the tool
    under SYSTEM_PYTHON (rerun_under_system_python) if this python3 lacks
    them; else exits with one error line naming `tool`. matplotlib is only
    looked up, not imported: the tools import it when they plot, so a bad
    input fails fast."""
    import importlib.util
    try:
        import numpy  # noqa: F401
        if importlib.util.find_spec("matplotlib") is None:
            raise ImportError("No module named 'matplotlib'")
    except ImportError as e:
        rerun_under_system_python(flag)
        raise SystemExit(f"{tool}: error: {e}; install Debian's python3-numpy and python3-matplotlib "
                         "(scripts/setup.sh does)")


def rerun_under_system_python(flag):
    """Re-executes the running tool under SYSTEM_PYTHON with the same
    arguments (as `-m package.module` when it was started that way), unless
    this already is that interpreter, it does not exist, or `flag` (an
    environment variable name) shows it was tried. Returns only when it does
    not re-execute."""
    if (os.environ.get(flag) != "1" and os.path.exists(SYSTEM_PYTHON)
            and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON)):
        os.environ[flag] = "1"
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if spec is not None and spec.name:
            argv = [SYSTEM_PYTHON, "-m", spec.name] + sys.argv[1:]
        else:
            argv = [SYSTEM_PYTHON] + sys.argv
        os.execv(SYSTEM_PYTHON, argv)
