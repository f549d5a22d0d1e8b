"""Failure drills: make a chosen stage entry fail once it starts building, to rehearse recovery.

    RNNFLOW_FAULT="train:model.cell=gru,model.hidden_size=8"

fails every `train` entry whose key parameters include cell gru and hidden size 8 (several
conditions must all hold; `train:` alone fails every train entry). Unset, nothing happens. The
variable travels to Dask workers started by this process, so a drill works on a cluster too.
"""

from __future__ import annotations

import os
from typing import Any

VARIABLE = "RNNFLOW_FAULT"


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
