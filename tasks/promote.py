"""Champion/challenger: score this run's model and the registry's champion on the same newest
holdout, and promote the challenger only if it is better by a margin.

The holdout is this run's test windows. Each model reads them through its own window length
and its own scaler (from its model.pt), and both are scored on exactly the same targets with
the same MASE scale, so the two metric sets are comparable. The registry (tasks/registry.py)
is written last: a crash before that leaves the old champion in charge.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, Field

from tasks import registry, store, ui
from tasks.config import EvalConfig
from tasks.evaluate import METRICS_FILE, model_predictions, score, season_for, test_frame
from tasks.model import load_model
from tasks.train import MODEL_FILE
from tasks.windowing import SPLIT_FILE, VALUES_FILE, ranges_to_index

log = logging.getLogger(__name__)

PROMOTION_KEY = "rnn-promotion"
Metric = Literal["mse", "rmse", "mae", "smape", "mase"]


class PromoteSettings(BaseModel):
    """How a challenger is judged: the metric (lower is better) and the relative margin."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: Metric = Field("mase", description="Metric on the newest holdout; lower is better.")
    margin: float = Field(0.0, ge=0, lt=1, description="Required relative improvement (0.05: 5% lower).")


# --------------------------------------------------------------------------- pure functions


def aligned_split(split: dict, meta: dict, history: int) -> dict:
    """`split` as the model of `meta` reads it: its window length, scaler and normalisation.

    The test windows end on the same targets as the holdout's; only targets with at least
    `history` points before them in their series are kept, so models with different window
    lengths are scored on the same targets:

        targets of the holdout:  [test[0] + L, test[1] + L)     L = split["seq_length"]
        a window of length L' for target t starts at t - L' (and needs t - L' >= offset)
    """
    L, seq_length, out = split["seq_length"], int(meta["seq_length"]), copy.deepcopy(split)
    out.update(seq_length=seq_length, scaler=scaler_for(meta, split), normalize=meta.get("normalize", "none"))
    for s in out["series"]:
        first, end = max(s["test"][0] + L, s["offset"] + history), s["test"][1] + L
        s["test"] = [first - seq_length, max(first, end) - seq_length]
    return out


def scaler_for(meta: dict, split: dict) -> list[dict]:
    """A model's own scaler (stored in its model.pt), one entry per series of the holdout."""
    own = meta.get("scaler") or []
    if len(own) == len(split["series"]):
        return own
    if all(sc["mean"] == 0.0 and sc["std"] == 1.0 for sc in own):
        return [{"mean": 0.0, "std": 1.0}] * len(split["series"])
    raise ValueError(f"its scaler covers {len(own)} series, the holdout has {len(split['series'])}")


def holdout_scores(
    model: torch.nn.Module, meta: dict, values: np.ndarray, split: dict, history: int, cfg: EvalConfig
) -> tuple[dict[str, dict[str, float]], int]:
    """Metrics of `model` and the baselines on the holdout targets with `history` points: (scores, n)."""
    sp = aligned_split(split, meta, history)
    n = len(ranges_to_index(sp, "test"))
    if n == 0:
        raise ValueError(f"no holdout target has the {history} points of history a window needs")
    df = test_frame(values, sp, model_predictions(model, values, sp, cfg.chunk_size), season_for(sp, cfg))
    return score(df, values, sp), n


def decide(challenger: float, champion: float | None, metric: str, margin: float) -> tuple[bool, str]:
    """Promote? Only a finite challenger below champion * (1 - margin); a missing champion loses."""
    bar = f"champion {champion:.4g}" + (f" x (1 - {margin:g})" if margin else "") if champion is not None else ""
    if not math.isfinite(challenger):
        return False, f"challenger {metric} is {challenger}"
    if champion is None:
        return True, "no champion yet"
    if not math.isfinite(champion):
        return True, f"champion {metric} is {champion}"
    if challenger < champion * (1 - margin):
        return True, f"challenger {metric} {challenger:.4g} < {bar}"
    return False, f"challenger {metric} {challenger:.4g} is not below {bar}"


def promotion_markdown(d: dict) -> str:
    """The rnn-promotion artifact: decision, reasons and both metric sets on the same holdout."""
    h, rows = d["holdout"], [("challenger", d["challenger"])]
    if d["champion"]:
        rows.append(("champion", d["champion"]))
    names = list(d["challenger"]["metrics"])
    lines = [
        f"# Promotion: {d['action']}", "", f"- run: `{d['run']}`", f"- decision: **{d['action']}**, {d['reason']}",
        f"- metric: {d['metric']} (lower is better), margin {d['margin']:g}",
        f"- holdout: {h['n_test']} test targets of data `{h['data_hash'][:12]}` (window entry `{h['window_hash'][:12]}`)",
    ]
    if gate := d["challenger"].get("gate"):
        lines.append(f"- baseline gate (backtest MASE vs {gate['baseline']}): "
                     f"{'passed' if gate['passed'] else 'failed'}, {gate['model']:.4g} vs {gate['baseline_value']:.4g}")
    if d["champion"] and d["champion"].get("problem"):
        lines.append(f"- champion not scored: {d['champion']['problem']}")
    lines += ["", "## Metrics on the newest holdout", ""]
    lines += ["| forecaster | model | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for role, m in rows:
        vals = [f"{m['metrics'][k]:.4g}" if m.get("metrics") else "n/a" for k in names]
        lines.append(f"| {role} | `{m['model_sha256'][:12]}` ({m.get('run') or '?'}) | " + " | ".join(vals) + " |")
    for name, m in d["baselines"].items():
        lines.append(f"| {name} | baseline | " + " | ".join(f"{m[k]:.4g}" for k in names) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the step


def judge(ch: dict, champ: dict | None, settings: PromoteSettings) -> tuple[bool, str]:
    """Promote the challenger? Decided from both entries (model hash, metrics, scoring problem)."""
    m = settings.metric
    if champ is not None and champ["model_sha256"] == ch["model_sha256"]:
        return False, "the challenger is the champion's own model file"
    if (gate := ch.get("gate")) is not None and not gate["passed"]:  # tasks.backtest.baseline_gate
        return False, (f"the challenger fails the baseline gate: backtest MASE {gate['model']:.4g} is not below "
                       f"{gate['baseline']} {gate['baseline_value']:.4g}")
    if champ is not None and champ["problem"]:
        return True, f"the champion cannot be scored ({champ['problem']})"
    return decide(ch["metrics"][m], champ["metrics"][m] if champ else None, m, settings.margin)


def _champion(root: Path, record: dict, challenger_sha: str) -> tuple[dict, torch.nn.Module | None, dict | None]:
    """The champion's decision entry, and its (model, meta) when it must be scored."""
    entry = {k: record.get(k) for k in ("model_sha256", "run", "data_hash")} | {"metrics": None, "problem": None}
    if record["model_sha256"] == challenger_sha:
        return entry, None, None
    if (problem := registry.check_model(root, record)) is not None:
        return {**entry, "problem": problem}, None, None
    return entry, *load_model(str(registry.model_path(root, record)))


def score_both(root: Path, reg: dict, train_file: Path, values: np.ndarray, split: dict, cfg: EvalConfig) -> tuple:
    """(challenger entry, champion entry or None, baseline scores, n targets, challenger meta)."""
    model, meta = load_model(str(train_file))
    ch = {"model_sha256": store.sha256_file(train_file)}
    champ, c_model, c_meta = _champion(root, reg["champion"], ch["model_sha256"]) if reg["champion"] else (None,) * 3
    history = max(int(meta["seq_length"]), int(c_meta["seq_length"]) if c_meta else 0)
    scores, n = holdout_scores(model, meta, values, split, history, cfg)
    ch["metrics"] = scores.pop("model")
    if c_model is not None:
        try:
            champ["metrics"] = holdout_scores(c_model, c_meta, values, split, history, cfg)[0]["model"]
        except ValueError as exc:
            champ["problem"] = str(exc)
    elif champ is not None and champ["problem"] is None:
        champ["metrics"] = ch["metrics"]  # the same model file
    return ch, champ, scores, n, meta


def promote(root: str | os.PathLike, window: store.StageRef, train: store.StageRef, run: str,
            settings: PromoteSettings, cfg: EvalConfig = EvalConfig(), gate: dict | None = None) -> dict:
    """Judge this run's model against the champion, update the registry (last); return the decision.

    `gate`: the evaluate stage's baseline gate; a challenger that fails it is never promoted.
    """
    root, manifest = Path(root), window.manifest()
    data_hash = manifest["key_inputs"]["upstream"].get("generate", "")
    values, split = np.load(window.file(VALUES_FILE)), store.read_json(window.file(SPLIT_FILE))
    with registry.registry_lock(root):
        reg = registry.load(root)
        ch, champ, baselines, n, meta = score_both(root, reg, train.file(MODEL_FILE), values, split, cfg)
        ch.update(run=run, data_hash=data_hash, **({"gate": gate} if gate is not None else {}))
        ok, reason = judge(ch, champ, settings)
        at = registry.now()
        d = {
            "at": at, "run": run, "action": "promoted" if ok else "kept", "reason": reason,
            "metric": settings.metric, "margin": settings.margin, "challenger": ch, "champion": champ,
            "baselines": baselines,
            "holdout": {"n_test": n, "data_hash": data_hash, "window_hash": store.content_hash(manifest)},
        }
        if ok:
            record = {**registry.install_model(root, train.file(MODEL_FILE)), "run": run, "data_hash": data_hash,
                      "seq_length": int(meta["seq_length"]), "metrics": ch["metrics"], "promoted_at": at}
            reg = registry.with_promotion(reg, record)
        registry.commit(root, registry.with_decision(reg, d))  # the last step: now the decision holds
    log.info("promotion: %s (%s)", d["action"], reason)
    return d


def summarize(d: dict, root: str | os.PathLike) -> dict:
    """The flow summary's `promotion` entry: what happened, both scores and the champion now."""
    m, champ = d["metric"], d["champion"] or {}
    now = d["challenger"] if d["action"] == "promoted" else champ
    return {
        "action": d["action"], "reason": d["reason"], "metric": m,
        "challenger": d["challenger"]["metrics"][m],
        "champion": champ["metrics"][m] if champ.get("metrics") else None,
        "champion_now": now["model_sha256"][:16] if now else None,
        "registry": str(registry.models_dir(root) / registry.REGISTRY_FILE),
    }


@task(name="promote", cache_policy=NO_CACHE, persist_result=False)
def promote_task(window: dict, train: dict, root: str, run: str, settings: dict, cfg: EvalConfig,
                 gate: dict | None = None) -> dict:
    """Decide, write the registry, then publish the rnn-promotion artifact; return the summary."""
    d = promote(root, store.StageRef(**window), store.StageRef(**train), run, PromoteSettings(**settings), cfg, gate)
    ui.publish_markdown(PROMOTION_KEY, promotion_markdown(d), f"Champion/challenger decision of run {run}")
    return summarize(d, root)


def promote_step(
    settings: PromoteSettings | None, refs: dict, root: Path, run: str, cfg: EvalConfig, run_dir: Path
) -> dict:
    """Run the promote task when asked and possible; record the outcome in the run directory."""
    if settings is None:
        out = {"action": "skipped", "reason": "promotion is off (promote=False)"}
    elif "train" not in refs:
        out = {"action": "skipped", "reason": "no model was trained in this run"}
    else:
        gate = store.read_json(refs["evaluate"].file(METRICS_FILE))["gate"] if "evaluate" in refs else None
        out = promote_task(refs["window"].model_dump(), refs["train"].model_dump(), str(root), run,
                           settings.model_dump(), cfg, gate)
    store.write_json(Path(run_dir) / "promotion.json", out)
    return out
