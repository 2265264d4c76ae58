"""Running a script under Debian's python3.

Debian's python3-numpy, python3-matplotlib and python3-torch install into the
system interpreter, /usr/bin/python3. A pyenv or venv python3 earlier on
PATH does not see them; the scripts that need them re-run themselves under
the system interpreter once (an environment variable stops a loop).
"""

import os
import sys

SYSTEM_PYTHON = "/usr/bin/python3"


def rerun_under_system_python(flag):
    """Re-executes the running script under SYSTEM_PYTHON with the same
    arguments, unless this already is that interpreter, it does not exist, or
    `flag` (an environment variable name) shows it was tried. Returns only
    when it does not re-execute."""
    if (os.environ.get(flag) != "1" and os.path.exists(SYSTEM_PYTHON)
            and os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON)):
        os.environ[flag] = "1"
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + sys.argv)
