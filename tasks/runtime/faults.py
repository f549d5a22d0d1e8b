"""Failure drills: make a chosen stage entry fail, or stall, once it starts building, to rehearse recovery.

    RNNFLOW_FAULT="train:model.cell=gru,model.hidden_size=8"
    RNNFLOW_STALL="generate"        (or "generate:30": for 30 s; default STALL_S)

The first fails every `train` entry whose key parameters include cell gru and hidden size 8
(several conditions must all hold; `train:` alone fails every train entry). The second holds
every entry of a stage (its entry name: "generate", "ingest", "backtest", ...) in its build,
after logging one line, so that a drill can send a signal while a run is in that stage. Unset,
nothing happens. The variables travel to Dask workers started by this process, so a drill works
on a cluster too.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

log = logging.getLogger(__name__)

VARIABLE = "RNNFLOW_FAULT"
STALL = "RNNFLOW_STALL"
STALL_S = 600.0


class InjectedFault(RuntimeError):
    """The failure asked for by RNNFLOW_FAULT."""


def flat(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"model": {"cell": "gru"}} -> {"model.cell": "gru"} (values as text)."""
    out: dict[str, str] = {}
    for k, v in params.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)
    return out


def check(stage: str, params: dict[str, Any], spec: str | None = None) -> None:
    """Raise InjectedFault when the drill `spec` (default: $RNNFLOW_FAULT) names this entry."""
    spec = os.environ.get(VARIABLE) if spec is None else spec
    if not spec:
        return
    target, _, conditions = spec.partition(":")
    if target.strip() != stage:
        return
    have = flat(params)
    wanted = dict(c.split("=", 1) for c in conditions.split(",") if "=" in c)
    if all(have.get(k.strip()) == v.strip() for k, v in wanted.items()):
        raise InjectedFault(f"injected fault in {stage} ({VARIABLE}={spec})")


def stall(stage: str, spec: str | None = None) -> None:
    """Hold the build of a `stage` entry when the drill `spec` (default: $RNNFLOW_STALL) names it."""
    spec = os.environ.get(STALL) if spec is None else spec
    if not spec:
        return
    target, _, seconds = spec.partition(":")
    if target.strip() != stage:
        return
    log.warning("drill: %s stalls here (%s=%s)", stage, STALL, spec)
    time.sleep(float(seconds) if seconds.strip() else STALL_S)
