"""What to say when `python flows/rnn_flow.py` runs under a Python without the project installed.

Standard library only: this is read exactly when the project's dependencies cannot be imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def missing_package_line(exc: ModuleNotFoundError, python: str, script: str = "flows/rnn_flow.py") -> str:
    """One `error:` line for a dependency `exc` could not import under the interpreter `python`
    (running `script`, as typed), with the command that fixes it: activate the checkout's
    virtualenv when it has one (.venv), else create it and install the project."""
    name = exc.name or str(exc)
    version = ".".join(map(str, sys.version_info[:3]))
    venv = REPO / ".venv"
    if (venv / "bin" / "python").exists() and Path(python).resolve() != (venv / "bin" / "python").resolve():
        fix = (f"activate this checkout's virtualenv first (. {venv}/bin/activate), or run "
               f"{venv}/bin/python {script}")
    else:
        fix = (f"install the project into a virtualenv first (in {REPO}: python3 -m venv .venv && . .venv/bin/activate "
               "&& pip install -e .; the README's Quickstart says which torch to install for CPU or CUDA)")
    return f"error: {python} (Python {version}) cannot import {name!r}, which rnnflow needs: {fix}"
