"""Helpers of the study tools' tests: running commands and checking their output."""

import os
import subprocess

SCRIPTS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))


def run(cmd, timeout=120, cwd=None, env=None):
    """Runs cmd, returning the CompletedProcess (text stdout and stderr)."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=env, stdin=subprocess.DEVNULL)


def one_error_line(stderr, prefix, phrase):
    """stderr holds exactly one line starting with `prefix`, that line holds
    `phrase`, and there is no traceback."""
    lines = [line for line in stderr.splitlines() if line.startswith(prefix)]
    return len(lines) == 1 and phrase in lines[0] and "Traceback" not in stderr


def is_png(path):
    """A non-empty file with the PNG signature."""
    if not os.path.isfile(path) or os.path.getsize(path) <= 8:
        return False
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def table_rows(markdown):
    """The rows of every Markdown table in a text, as lists of stripped cells."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in markdown.splitlines() if line.startswith("| ")]


def in_process(main, argv):
    """Runs a tool's main(argv) in this process, as its command line would:
    the CompletedProcess-like result has the exit code (a SystemExit message
    goes to stderr with code 1, as Python prints it), stdout and stderr."""
    import contextlib
    import io
    import types
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv]) or 0
        except SystemExit as e:
            if isinstance(e.code, str):
                print(e.code, file=err)
                code = 1
            else:
                code = e.code or 0
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
