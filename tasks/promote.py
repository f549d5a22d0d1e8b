"""Champion/challenger: score this run's model and the registry's champion on the same newest
holdout, and promote the challenger only if it is better by a margin.

The holdout is this run's test windows. Each model reads them through its own window length
and its own scaler (from its model.pt), and both are scored on exactly the same targets with
the same MASE scale, so the two metric sets are comparable. The registry (tasks/registry.py)
is written last: a crash before that leaves the old champion in charge.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from prefect import task

from tasks.components.backtest import holdout_frame, NonFiniteForecast, one_step_forecasts, score_frame
from tasks.components.baselines import season_for
from tasks.components.ensemble import Ensemble, Member
from tasks.components.split import IDENTITY, Scaler, Split, concat_splits
from tasks.config import EvalConfig, PromoteSettings
from tasks.formats.ensemble import EnsembleFile, load_model_file
from tasks.formats.model import MODEL_FILE, ModelFile
from tasks.formats.window import read_window
from tasks.runtime import publish, registry, store

log = logging.getLogger(__name__)

PROMOTION_KEY = "rnn-promotion"


# --------------------------------------------------------------------------- pure functions


def scalers_for(record: ModelFile, split: Split) -> tuple[Scaler, ...]:
    """A model's own scalers (from its model file), one per series of the holdout.

    Raises ValueError when the model was fitted on a different number of series with real scalers.
    """
    own = record.scalers
    if len(own) == len(split.series):
        return own
    if all(sc == IDENTITY for sc in own):
        return (IDENTITY,) * len(split.series)
    raise ValueError(f"its scaler covers {len(own)} series, the holdout has {len(split.series)}")


def holdout_view(split: Split, record: ModelFile, history: int) -> Split:
    """`split`'s test targets as the model of `record` reads them (Split.seen_by): its window
    length, its scalers and its normalisation, on the targets with `history` points before them."""
    return split.seen_by(record.seq_length, history, scalers_for(record, split), record.normalize)


def holdout_scores(
    model: torch.nn.Module | EnsembleFile, record: ModelFile, values: np.ndarray, split: Split, history: int,
    cfg: EvalConfig,
) -> tuple[dict[str, dict[str, float]], int]:
    """Metrics of `model` and the baselines on the holdout targets with `history` points: (scores, n).
    MASE is scaled by each series' in-sample naive error on the training range of `split` (the
    run's), as the backtest's is.

    An ensemble forecasts from its reference member's view (`record`), each member reading the
    same targets through its own window and scalers (tasks.components.ensemble); a statistical
    member reads them through the reference's view (fitted on the history before the holdout).
    """
    sp = holdout_view(split, record, history)
    n = sp.count("test")
    if n == 0:
        raise ValueError(f"no holdout target has the {history} points of history a window needs")
    if isinstance(model, EnsembleFile):
        members = [*(Member(net, holdout_view(split, r, history)) for net, r in model.members),
                   *(Member(m, sp) for m in model.statistical)]
        pred = Ensemble(members, model.combine, cfg.chunk_size, **model.combination())(values, sp, sp.origins("test"),
                                                                                      1)[:, 0]
    else:
        pred = one_step_forecasts(model, values, sp, cfg.chunk_size)
    df = holdout_frame(values, sp, pred, season_for(sp, cfg.season_length))
    # MASE scaled as the backtest scales it: by each series' training range in this run's split
    # (the view's train range is empty, so its scale would be a first window's naive error)
    return score_frame(df, values, split), n


def action_words(action: str, has_champion: bool) -> str:
    """How the log and the summary word a decision: "kept" reads "not promoted" when there is no
    champion to keep."""
    return "not promoted" if action == "kept" and not has_champion else action


def decide(challenger: float | None, champion: float | None, metric: str, margin: float) -> tuple[bool, str]:
    """Promote? Only a finite challenger below champion * (1 - margin); a missing champion loses."""
    bar = f"champion {champion:.4g}" + (f" x (1 - {margin:g})" if margin else "") if champion is not None else ""
    if challenger is None or not math.isfinite(challenger):
        return False, f"challenger {metric} is {'undefined' if challenger is None else challenger}"
    if champion is None:
        return True, "no champion yet"
    if not math.isfinite(champion):
        return True, f"champion {metric} is {champion}"
    if challenger < champion * (1 - margin):
        return True, f"challenger {metric} {challenger:.4g} < {bar}, one step ahead on the holdout"
    return False, f"challenger {metric} {challenger:.4g} is not below {bar}, one step ahead on the holdout"


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
        verdict = "passed (a tie within the seed noise)" if gate.get("tie") else "passed" if gate["passed"] else "failed"
        lines.append(f"- baseline gate ({(gate.get('metric') or 'mase').upper()} vs {gate['baseline']} on the "
                     f"{gate.get('n_origins', 0)} {gate.get('origins', 'validation')} origins before the test range): "
                     f"{verdict}, {_num(gate['model'])} vs {_num(gate['baseline_value'])}")
    if d["champion"] and d["champion"].get("problem"):
        lines.append(f"- champion not scored: {d['champion']['problem']}")
    lines += ["", "## Metrics on the newest holdout", ""]
    lines += ["| forecaster | model | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for role, m in rows:
        vals = [_num(m["metrics"][k]) if m.get("metrics") else "n/a" for k in names]
        lines.append(f"| {role} | `{m['model_sha256'][:12]}` ({m.get('run') or '?'}) | " + " | ".join(vals) + " |")
    for name, m in d["baselines"].items():
        lines.append(f"| {name} | baseline | " + " | ".join(_num(m[k]) for k in names) + " |")
    return "\n".join(lines) + "\n"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


# --------------------------------------------------------------------------- the step


def judge(ch: dict, champ: dict | None, settings: PromoteSettings) -> tuple[bool, str]:
    """Promote the challenger? Decided from both entries (model hash, metrics, scoring problem)."""
    m = settings.metric
    if champ is not None and champ["model_sha256"] == ch["model_sha256"]:
        return False, "the challenger is the champion's own model file"
    if (gate := ch.get("gate")) is not None and not gate["passed"]:  # tasks.components.gate.decide_gate
        judged = (gate.get("metric") or "mase").upper()
        where = f"on the {gate.get('n_origins', 0)} {gate.get('origins', 'validation')} origins before the test range"
        why = (f"{judged} {_num(gate['model'])} is not below {gate['baseline']} {_num(gate['baseline_value'])} {where}"
               + (" (nor within the seed noise)" if gate.get("tolerance") else "")
               if gate.get("model") is not None and gate.get("baseline_value") is not None
               else gate.get("reason") or "it could not be decided")  # "reason": the flow's words (flows/wording.py)
        return False, f"the challenger fails the baseline gate: {why}"
    if champ is not None and champ["problem"]:
        return True, f"the champion cannot be scored ({champ['problem']})"
    if ch["metrics"].get(m) is None and ch["metrics"].get("mae") is not None and m != "mae":
        m = "mae"  # the chosen metric is undefined on this holdout (MASE of a constant series): the same targets' MAE
    return decide(ch["metrics"][m], champ["metrics"][m] if champ else None, m, settings.margin)


def _champion(root: Path, record: dict, challenger_sha: str) -> tuple[dict, torch.nn.Module | None, ModelFile | None]:
    """The champion's decision entry, and its (model, model file record) when it must be scored."""
    entry = {k: record.get(k) for k in ("model_sha256", "run", "data_hash")} | {"metrics": None, "problem": None}
    if record["model_sha256"] == challenger_sha:
        return entry, None, None
    if (problem := registry.check_model(root, record)) is not None:
        return {**entry, "problem": problem}, None, None
    return entry, *load_model_file(registry.model_path(root, record))


def score_both(root: Path, reg: dict, train_file: Path, values: np.ndarray, split: Split, cfg: EvalConfig) -> tuple:
    """(challenger entry, champion entry or None, baseline scores, n targets, challenger record)."""
    model, meta = load_model_file(train_file)
    ch = {"model_sha256": store.sha256_file(train_file)}
    champ, c_model, c_meta = _champion(root, reg["champion"], ch["model_sha256"]) if reg["champion"] else (None,) * 3
    history = max(meta.seq_length, c_meta.seq_length if c_meta else 0)
    scores, n = holdout_scores(model, meta, values, split, history, cfg)
    ch["metrics"] = scores.pop("model")
    if c_model is not None:
        try:
            champ["metrics"] = holdout_scores(c_model, c_meta, values, split, history, cfg)[0]["model"]
        except (ValueError, NonFiniteForecast) as exc:  # a champion that cannot be scored is not in the way
            champ["problem"] = str(exc)
    elif champ is not None and champ["problem"] is None:
        champ["metrics"] = ch["metrics"]  # the same model file
    return ch, champ, scores, n, meta


def holdout_data(windows: Sequence[store.StageRef]) -> tuple[np.ndarray, Split, str, str]:
    """(values, split, data hash, window hash) of this run's window entries (one per bucket)."""
    manifests = [w.manifest() for w in windows]
    upstream = [next(iter(m["key_inputs"]["upstream"].values()), "") for m in manifests]
    contents = [store.content_hash(m) for m in manifests]
    data_hash = upstream[0] if len(windows) == 1 else store.sha256_json(upstream)
    window_hash = contents[0] if len(windows) == 1 else store.sha256_json(contents)
    values, split = concat_splits([read_window(w.path) for w in windows])
    return values, split, data_hash, window_hash


def promote(root: str | os.PathLike, windows: store.StageRef | Sequence[store.StageRef], train: store.StageRef,
            run: str, settings: PromoteSettings, cfg: EvalConfig = EvalConfig(), gate: dict | None = None) -> dict:
    """Judge this run's model against the champion, update the registry (last); return the decision.

    windows: this run's window entries (one per bucket of series): the holdout is their test range.
    `gate`: the evaluate stage's baseline gate (decided before the test range, ties within the
    seed noise passing); a challenger that does not pass it is never promoted, as the command
    line's exit status says (3).
    """
    root = Path(root)
    values, split, data_hash, window_hash = holdout_data(
        (windows,) if isinstance(windows, store.StageRef) else tuple(windows))
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
            "holdout": {"n_test": n, "data_hash": data_hash, "window_hash": window_hash},
        }
        if ok:
            record = {**registry.install_model(root, train.file(MODEL_FILE)), "run": run, "data_hash": data_hash,
                      "seq_length": meta.seq_length, "metrics": ch["metrics"], "promoted_at": at}
            reg = registry.with_promotion(reg, record)
        registry.commit(root, registry.with_decision(reg, d))  # the last step: now the decision holds
    log.info("promotion: %s (%s)", action_words(d["action"], champ is not None), reason)
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


@task(name="promote", cache_policy=None, persist_result=False)
def promote_task(splits: tuple[store.StageRef, ...], model: store.StageRef, gate: dict | None, root: str, run: str,
                 settings: PromoteSettings, eval_cfg: EvalConfig) -> dict:
    """Decide, write the registry, then publish the rnn-promotion artifact; return the summary.

    gate: the evaluate stage's baseline gate (metrics.json), None when evaluate did not run.
    """
    d = promote(root, splits, model, run, settings, eval_cfg, gate)
    publish.publish_markdown(PROMOTION_KEY, promotion_markdown(d), f"Champion/challenger decision of run {run}")
    return summarize(d, root)
