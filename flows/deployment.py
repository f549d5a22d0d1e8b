"""Deployments: the name `serve` registers, and what a prefect.yaml deployment's run would get.

`check --deployment NAME` reads NAME's parameters off prefect.yaml and validates them exactly as a
worker's run would (deployment_invocation); its errors name the deployment's parameters.
"""

from __future__ import annotations

import json
from pathlib import Path

from flows.options import Invocation, choice
from tasks.config import STAGES, PipelineConfig, PromoteSettings, for_sweep, members_of
from tasks.errors import InputError

DEPLOYMENT = "rnn-retrain"  # what `serve` registers (--name changes it)

FLOW_PARAMETERS = ("config", "refresh", "until", "no_cache", "promote", "promote_metric", "promote_margin")


def deployment_invocation(path: Path, name: str, debug: bool = False) -> Invocation:
    """The Invocation a worker's run of deployment `name` of prefect.yaml `path` would get."""
    import yaml

    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError("--prefect-yaml", str(path), f"cannot read it ({' '.join(str(exc).split())[:160]})") from None
    found = [d for d in spec.get("deployments") or [] if d.get("name") == name]
    if not found:
        names = ", ".join(str(d.get("name")) for d in spec.get("deployments") or []) or "none"
        raise InputError("--deployment", name, f"not a deployment of {path} (deployments: {names})")
    params = dict(found[0].get("parameters") or {})
    entrypoint = str(found[0].get("entrypoint") or "flows/rnn_flow.py:rnn_pipeline")
    flow = entrypoint.rpartition(":")[2]
    if flow not in ("rnn_pipeline", "rnn_sweep"):
        raise InputError("--deployment", name, f"its entrypoint {entrypoint!r} is not rnnflow's "
                                               "(flows/rnn_flow.py:rnn_pipeline or flows/rnn_flow.py:rnn_sweep)")
    allowed = (*FLOW_PARAMETERS, "grid") if flow == "rnn_sweep" else FLOW_PARAMETERS
    if extra := sorted(set(params) - set(allowed)):
        raise InputError("--deployment", name, f"parameter {extra[0]!r} is not one of {flow}'s ({', '.join(allowed)})")
    cfg = PipelineConfig.model_validate(params.pop("config", None) or {})
    grid = []
    if flow == "rnn_sweep":  # as the sweep validates its members: each on top of the config
        for_sweep(cfg)
        grid = members_of(cfg, params.get("grid") or [], "grid", json.dumps(params.get("grid") or []))
    promote = PromoteSettings(metric=params.get("promote_metric", "mase"), margin=params.get("promote_margin", 0.0))
    controls = {"refresh": choice("refresh", params.get("refresh"), STAGES),
                "until": choice("until", params.get("until", "figures"), STAGES),
                "no_cache": bool(params.get("no_cache", False)), "promote": bool(params.get("promote", False)),
                "promote_metric": promote.metric, "promote_margin": promote.margin, **({"grid": grid} if grid else {})}
    return Invocation("check", cfg, controls, {"deployment": name}, debug)



def deployment_named(argv: list[str]) -> str | None:
    """"prefect.yaml, deployment 'NAME': " when `argv` checks a deployment (its errors name parameters)."""
    if argv[:1] != ["check"] or "--deployment" not in argv[:-1]:
        return None
    name = argv[argv.index("--deployment") + 1]
    path = argv[argv.index("--prefect-yaml") + 1] if "--prefect-yaml" in argv[:-1] else "prefect.yaml"
    return f"{path}, deployment {name!r}: "
