"""Sweeps and searches: score each member's model on the validation range and rank them (never
the test range).

    validate   one entry per sweep member: the rolling-origin backtest of its model over the
               validation origins of every series (scores.json); for a search, also one per
               statistical member (AutoETS, AutoTheta, seasonal naive, fitted on the history
               before the validation range)

    ensemble   one entry for a search: the top networks' model files, the statistical members'
               names and the hybrid's weights (found on the validation range) packed into one
               model.pt (tasks/formats/model.py: what promotion judges and the run directory
               keeps), and the best network's training history

The leaderboard (`leaderboard`) ranks members by their validation MASE; the winner (or the
ensemble of the best) is then scored on the test range by the usual evaluate stage and judged
by the usual gate.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence

import numpy as np
import pandas as pd
from prefect import task

from tasks.components.backtest import metric_text, validation_scores
from tasks.components.ensemble import Ensemble, Member, inverse_error_weights
from tasks.components.references import LABELS, Statistical
from tasks.components.split import Split, concat_splits
from tasks.config import EvalConfig
from tasks.formats.history import HISTORY_FILE
from tasks.formats.model import MODEL_FILE, load_model, save_ensemble
from tasks.formats.scores import read_validation, write_validation
from tasks.formats.window import read_window
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

STAGE = StageSpec("validate", phase="train", packages=("numpy", "torch", "statsforecast"),
                  run_only=frozenset({"chunk_size"}))
ENSEMBLE = StageSpec("ensemble", phase="train", packages=("numpy", "torch"), run_only=frozenset({"chunk_size"}),
                     files=(MODEL_FILE, HISTORY_FILE))


@task(**stage_task(STAGE))
def validate_task(plan, eval_cfg: EvalConfig, splits: tuple[store.StageRef, ...], model: store.StageRef | None = None,
                  reference: tuple[store.StageRef, ...] | None = None, statistical: str | None = None,
                  season: int = 0) -> dict:
    """Score one member over the validation origins of every bucket; write scores.json.

    model: the member's train entry, reading the series through `splits` (its window entries,
    one per bucket); statistical: instead of a network, a statistical member ("ets", "theta",
    "snaive": tasks.components.references.Statistical, season length `season`, 0 none) fitted
    on the history before the validation origins of `splits`. reference: a search's window
    entries of its longest window, whose validation targets and MASE scales every member is
    scored on (the member reads them through its own window and scalers); None: the member's own.
    """

    def compute(w: store.EntryWriter) -> dict:
        values, sp = concat_splits([read_window(ref.path) for ref in splits])
        if statistical is not None:
            forecaster, trained = Statistical(statistical, season), {"epochs_run": 0, "best_epoch": None,
                                                                       "stopped_early": False}
        else:
            net, record = load_model(model.path)
            forecaster, trained = net, record.trained
        if reference is not None:
            values, ref = concat_splits([read_window(r.path) for r in reference])
            if statistical is None:
                forecaster = Ensemble([Member(net, sp)], chunk=eval_cfg.chunk_size)
            sp = ref
        scores = validation_scores(forecaster, values, sp, eval_cfg.season_length, eval_cfg.chunk_size)
        scores["train"] = {k: trained.get(k) for k in ("epochs_run", "best_epoch", "stopped_early")}
        write_validation(w.dir, scores)
        log.info("validate: %s MASE %.4f on %d validation origins",
                 LABELS[statistical] if statistical else "model", scores["metrics"]["model"]["mase"], scores["n_val"])
        return {"mase": scores["metrics"]["model"]["mase"]}

    return build(plan, compute)


def leaderboard(members: Sequence[dict], scores: Sequence[store.StageRef], models: Sequence[store.StageRef | None]
                ) -> pd.DataFrame:
    """One row per member, best first: what forecasts ("network", or a statistical member's
    label, "AutoETS"), its settings, validation metrics of the member and the baselines, epochs,
    and the entries of its model (none for a statistical member) and scores. Ties keep the
    members' order."""
    rows = []
    for i, (member, ref, model) in enumerate(zip(members, scores, models)):
        s = read_validation(ref.path)
        m = s["metrics"]
        settings = {k: str(v) for k, v in member.items() if k != "forecaster"}
        rows.append({"member": i, "forecaster": member.get("forecaster", "network"), **settings,
                     "val_mase": m["model"]["mase"], "val_mae": m["model"]["mae"], "val_rmse": m["model"]["rmse"],
                     "naive_mase": m["naive"]["mase"],
                     "seasonal_naive_mase": m.get("seasonal_naive", {}).get("mase", np.nan),
                     "n_val": s["n_val"], "epochs_run": s["train"]["epochs_run"],
                     "model_entry": str(model.path) if model is not None else "", "scores_entry": str(ref.path)})
    board = pd.DataFrame(rows)
    order = np.lexsort((board["member"].to_numpy(), np.nan_to_num(board["val_mase"].to_numpy(float), nan=np.inf)))
    return board.iloc[order].reset_index(drop=True).assign(rank=lambda d: np.arange(1, len(d) + 1))


def hybrid_weights(values: np.ndarray, reference: Split, networks: list[Member], combine: str,
                   statistical_mase: list[float | None], cfg: EvalConfig) -> tuple[tuple[float, ...], float | None]:
    """The weights of a hybrid ensemble (networks, each statistical member) from their MASE on
    the validation origins of `reference` (tasks.components.ensemble.inverse_error_weights):
    (weights, the networks' combined validation MASE). statistical_mase: each statistical
    member's, as its validate entry scored it."""
    nets = Ensemble(networks, combine, cfg.chunk_size)
    mase = validation_scores(nets, values, reference, cfg.season_length, cfg.chunk_size)["metrics"]["model"]["mase"]
    return inverse_error_weights([mase, *statistical_mase]), mase


@task(**stage_task(ENSEMBLE))
def ensemble_task(plan, eval_cfg: EvalConfig, models: tuple[store.StageRef, ...], combine: str,
                  statistical: tuple[str, ...] = (), season: int = 0, windows: tuple[store.StageRef, ...] = (),
                  reference: tuple[store.StageRef, ...] = (), scores: tuple[store.StageRef, ...] = ()) -> dict:
    """Pack the ensemble's members (network train entries, best first, and the `statistical`
    members' names with season length `season`: 0 none) into one model.pt, combined by
    `combine`; keep the best network member's history.json (the loss figure's). Return the
    StageRef.

    With statistical members the ensemble is a hybrid (tasks.components.ensemble): its weights
    come from the validation range only, the networks' combination scored there through
    `windows` (each network's window entries, one per bucket of `reference`, network by network)
    on the targets of `reference` (the longest window's entries), each statistical member's
    score read from its validate entry in `scores`.
    """

    def compute(w: store.EntryWriter) -> dict:
        members = [Statistical(n, season) for n in statistical]
        weights, net_mase = (), None
        if statistical:
            values, ref = concat_splits([read_window(r.path) for r in reference])
            nb = len(reference)
            nets = [Member(load_model(m.path)[0], concat_splits([read_window(x.path) for x in
                                                                  windows[i * nb:(i + 1) * nb]])[1])
                    for i, m in enumerate(models)]
            stat_mase = [read_validation(r.path)["metrics"]["model"]["mase"] for r in scores]
            weights, net_mase = hybrid_weights(values, ref, nets, combine, stat_mase, eval_cfg)
        save_ensemble(w.dir, [m.file(MODEL_FILE) for m in models], combine, members, weights)
        shutil.copyfile(models[0].file(HISTORY_FILE), w.path(HISTORY_FILE))
        if statistical:
            log.info("ensemble: %d network(s) combined by the %s (validation MASE %s), weighted %s with %s",
                     len(models), combine, metric_text(net_mase), f"{weights[0]:.2f}",
                     ", ".join(f"{LABELS[n]} {x:.2f}" for n, x in zip(statistical, weights[1:])))
        else:
            log.info("ensemble: %d members, combined by the %s", len(models), combine)
        return {"members": len(models) + len(statistical), "weights": list(weights)}

    return build(plan, compute)
