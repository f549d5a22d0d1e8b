"""The process's environment defaults, and the line for a Python without the project's dependencies.

Standard library only: this is read before Prefect is imported (its settings are read at import),
and exactly when the project's dependencies cannot be imported. The one place the defaults are
written: `flows/__init__.py` applies them on the package's first import, tests/conftest.py and the
test servers (tests/helpers/server.py) read DEFAULTS.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

DEFAULTS = {  # quiet, offline-friendly Prefect (and Dask) defaults; an explicit setting wins
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "tasks",  # the "tasks" loggers' lines reach the run's Prefect logs
    # Dask's own lines (a LocalCluster's start and close, about 60 of them) only from WARNING up: its
    # memory and lost-worker warnings still show. Read when distributed is imported; inherited by
    # the worker processes a LocalCluster starts.
    "DASK_LOGGING__DISTRIBUTED": "warning",
}


def apply_defaults() -> None:
    """Set every DEFAULTS variable the environment leaves unset (before Prefect is imported)."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)


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
