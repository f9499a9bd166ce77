"""The CPython of Lambda's runtime (the template's python3.12) on this machine, if any.

``make bench`` times the cold start with it, and the build test compiles the layers' .pyc
with it. Looked for on PATH and in pyenv, because a pyenv shim on PATH may answer for
another version than its name says.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

LAMBDA_PYTHON = (3, 12)


def lambda_python() -> str | None:
    """A CPython 3.12 from PATH or pyenv (a pyenv shim may answer for another version)."""
    candidates = [shutil.which("python3.12")]
    candidates += sorted(
        glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True
    )
    check = f"import sys; sys.exit(sys.version_info[:2] != {LAMBDA_PYTHON})"
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", check], capture_output=True, check=False).returncode == 0:
            return candidate
    return None
