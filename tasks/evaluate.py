"""Stage 4: the rolling-origin backtest on the test range, scored against baselines, with intervals.

Every forecaster is scored on exactly the same targets: the model, the naive last-value
forecast and, where a season length is known, the seasonal-naive forecast; per lead time and
averaged over leads (tasks/components/backtest.py). Split-conformal intervals are calibrated on
the validation origins and their coverage is measured on the test origins. The baseline gate
asks whether the model beats seasonal-naive MASE (naive when no season is known).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from prefect import task

from tasks.components.backtest import Refit, backtest, metric_text
from tasks.components.fit import retrain
from tasks.config import EvalConfig, ModelConfig, TrainConfig
from tasks.formats.model import load_model
from tasks.formats.scores import METRICS_FILE, PREDICTIONS_FILE, write_scores
from tasks.formats.window import read_window
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

STAGE = StageSpec(
    "evaluate", packages=("numpy", "pandas", "torch"),
    run_only=frozenset({"device", "checkpoint_every", "log_every", "chunk_size"}),
    trains=lambda inputs: inputs["eval_cfg"].refit_every > 0, files=(METRICS_FILE, PREDICTIONS_FILE),
)


def refitter(values: np.ndarray, model_cfg: ModelConfig, train_cfg: TrainConfig) -> Refit:
    """Train a fresh model (same config, same seed) on a block's split; returned on the CPU."""
    device, model, train = torch.device(train_cfg.device), model_cfg.model_dump(), train_cfg.model_dump()
    return lambda sp: retrain(values, sp, model, train, device)


@task(**stage_task(STAGE))
def evaluate_task(plan, eval_cfg: EvalConfig, model_cfg: ModelConfig, train_cfg: TrainConfig,
                  split: store.StageRef, model: store.StageRef) -> dict:
    """Write metrics.json and predictions.parquet; return the entry's StageRef.

    model_cfg, train_cfg: resolved; used only to retrain when eval_cfg.refit_every > 0.
    """

    def compute(w: store.EntryWriter) -> dict:
        values, sp = read_window(split.path)
        net, record = load_model(model.path)
        refit = None
        if eval_cfg.refit_every:
            torch.set_num_threads(train_cfg.threads)
            refit = refitter(values, model_cfg, train_cfg)
        df, result = backtest(net, values, sp, levels=eval_cfg.levels, season_length=eval_cfg.season_length,
                              chunk=eval_cfg.chunk_size, refit_every=eval_cfg.refit_every, refit=refit)
        result["strategy"] = record.strategy
        result["train"] = {k: record.trained.get(k) for k in ("device", "epochs_run", "best_epoch", "stopped_early",
                                                               "threads")}
        write_scores(w.dir, df, result)
        m = result["metrics"]
        log.info("evaluate: %d origins x %d leads, model MASE %s, naive %s, gate %s", result["n_test"],
                 result["horizon"], metric_text(m["model"]["mase"]), metric_text(m["naive"]["mase"]),
                 "passed" if result["gate"]["passed"] else "failed")
        return {"model_mse": m["model"]["mse"], "naive_mse": m["naive"]["mse"], "gate": result["gate"]["passed"]}

    return build(plan, compute)
