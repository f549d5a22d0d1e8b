"""Sweeps: score each member's model on the validation range and rank them (never the test range).

    validate   one entry per sweep member: the rolling-origin backtest of its model over the
               validation origins of every series (scores.json)

The leaderboard (`leaderboard`) ranks members by the model's validation MASE; the winner is
then scored on the test range by the usual evaluate stage and judged by the usual gate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from prefect import task

from tasks.components.backtest import validation_scores
from tasks.components.split import concat_splits
from tasks.config import EvalConfig
from tasks.formats.model import load_model
from tasks.formats.scores import read_validation, write_validation
from tasks.formats.window import read_window
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

STAGE = StageSpec("validate", phase="train", packages=("numpy", "torch"), run_only=frozenset({"chunk_size"}))


@task(**stage_task(STAGE))
def validate_task(plan, eval_cfg: EvalConfig, splits: tuple[store.StageRef, ...], model: store.StageRef) -> dict:
    """Score one member's model over the validation origins of every bucket; write scores.json."""

    def compute(w: store.EntryWriter) -> dict:
        values, sp = concat_splits([read_window(ref.path) for ref in splits])
        net, record = load_model(model.path)
        scores = validation_scores(net, values, sp, eval_cfg.season_length, eval_cfg.chunk_size)
        scores["train"] = {k: record.trained.get(k) for k in ("epochs_run", "best_epoch", "stopped_early")}
        write_validation(w.dir, scores)
        log.info("validate: model MASE %.4f on %d validation origins", scores["metrics"]["model"]["mase"],
                 scores["n_val"])
        return {"mase": scores["metrics"]["model"]["mase"]}

    return build(plan, compute)


def leaderboard(members: Sequence[dict], scores: Sequence[store.StageRef], models: Sequence[store.StageRef]
                ) -> pd.DataFrame:
    """One row per member, best first: its settings, validation metrics of the model and the
    baselines, epochs, and the entries of its model and scores. Ties keep the grid's order."""
    rows = []
    for i, (member, ref, model) in enumerate(zip(members, scores, models)):
        s = read_validation(ref.path)
        m = s["metrics"]
        rows.append({"member": i, **{k: str(v) for k, v in member.items()},
                     "val_mase": m["model"]["mase"], "val_mae": m["model"]["mae"], "val_rmse": m["model"]["rmse"],
                     "naive_mase": m["naive"]["mase"],
                     "seasonal_naive_mase": m.get("seasonal_naive", {}).get("mase", np.nan),
                     "n_val": s["n_val"], "epochs_run": s["train"]["epochs_run"],
                     "model_entry": str(model.path), "scores_entry": str(ref.path)})
    board = pd.DataFrame(rows)
    order = np.lexsort((board["member"].to_numpy(), np.nan_to_num(board["val_mase"].to_numpy(float), nan=np.inf)))
    return board.iloc[order].reset_index(drop=True).assign(rank=lambda d: np.arange(1, len(d) + 1))
