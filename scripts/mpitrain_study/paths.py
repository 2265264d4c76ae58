"""Where the repository's files are, seen from the package."""

import os

SCRIPTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(SCRIPTS_DIR)
DEFAULT_MPITRAIN = os.path.join(REPO_ROOT, "build", "mpitrain")
