"""Stage 4: the rolling-origin backtest on the test range, scored against baselines, with intervals.

    backtest   one entry per bucket of series (runs on the task runner)
    evaluate   one entry: every bucket's scores combined, and the scores of each series

Every forecaster is scored on exactly the same targets: the model, the naive last-value
forecast, where a season length is known the seasonal-naive forecast, and the statistical
references of eval.references (AutoETS, AutoTheta, AutoARIMA: tasks/components/references.py);
per lead time and averaged over leads (tasks/components/backtest.py). Split-conformal intervals
are calibrated on the calibration origins (the validation origins without any), each test
origin's band adding the earlier test targets observed by then, and their coverage is measured
on the test origins; the future's bands add every test target. The
baseline gate asks whether the model beats the best baseline's MASE (eval.gate_baseline: or the
one named) on the origins before the test range (calibration, else validation), ties within the
measured seed noise passing (tasks.components.gate.decide_gate).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from prefect import task

from tasks.components.aggregate import aggregate, sample_series, series_metrics
from tasks.components.backtest import backtest, Refit
from tasks.components.baselines import series_scales
from tasks.components.gate import decide_gate, network_weight
from tasks.components.metrics import metric_text
from tasks.components.ensemble import Ensemble
from tasks.components.fit import retrain
from tasks.components.split import Split
from tasks.config import EvalConfig, ModelConfig, TrainConfig
from tasks.formats.ensemble import hybrid_of, load_members
from tasks.formats.model import load_model
from tasks.formats.scores import (
    BY_SERIES_FILE,
    append_by_series,
    METRICS_FILE,
    PREDICTIONS_FILE,
    read_member_forecasts,
    read_metrics,
    read_predictions,
    write_scores,
)
from tasks.formats.window import read_split, read_window
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

BACKTEST = StageSpec(
    "backtest", phase="evaluate", packages=("numpy", "pandas", "torch", "statsforecast", "statsmodels"),
    run_only=frozenset({"device", "checkpoint_every", "log_every", "chunk_size", "deadline"}),
    trains=lambda inputs: inputs["eval_cfg"].refit_every > 0,
)
STAGE = StageSpec("evaluate", packages=("numpy", "pandas", "pyarrow"),
                  files=(METRICS_FILE, BY_SERIES_FILE, PREDICTIONS_FILE),
                  words=(("seed_noise", "the seed noise the gate's ties go by"),))


def refitter(values: np.ndarray, model_cfg: ModelConfig, train_cfg: TrainConfig) -> Refit:
    """Train a fresh model (same config, same seed) on a block's split; returned on the CPU."""
    device, model, train = torch.device(train_cfg.device), model_cfg.model_dump(), train_cfg.model_dump()
    return lambda sp: retrain(values, sp, model, train, device)


def predictor(model: store.StageRef | tuple[store.StageRef, ...], member_splits: tuple[store.StageRef, ...] | None,
              combine: str, chunk: int, packed: store.StageRef | None = None, reference: Split | None = None,
              made: tuple[store.StageRef, ...] = ()):
    """What forecasts this bucket: one network, or the ensemble of several (each with its own
    window entry of the bucket, for its window length and scalers) combined as its `packed`
    model file says: which networks forecast and which calibrate and, for a hybrid, the
    statistical members (reading the bucket through `reference`, the longest window's split) and
    the weights. made: each statistical member's validate entry, in their order, whose
    calibration and test forecasts it reuses (Statistical.knowing) instead of forecasting again."""
    if isinstance(model, store.StageRef):
        return load_model(model.path)
    statistical, combination = hybrid_of(packed)
    for member, ref in zip(statistical, made):
        frame = read_member_forecasts(ref.path, reference.ids) if reference is not None else None
        if frame is not None:
            member.knowing(frame)
    members = load_members([m.path for m in model], [read_split(s.path) for s in member_splits], statistical, reference)
    return Ensemble(members, combine, chunk, **combination), load_model(model[0].path)[1]


@task(**stage_task(BACKTEST))
def backtest_task(plan, eval_cfg: EvalConfig, model_cfg: ModelConfig, train_cfg: TrainConfig,
                  split: store.StageRef, model: store.StageRef | tuple[store.StageRef, ...],
                  group: str | None = None, member_splits: tuple[store.StageRef, ...] | None = None,
                  combine: str = "median", packed: store.StageRef | None = None,
                  made: tuple[store.StageRef, ...] = ()) -> dict:
    """Backtest one bucket (its series of `group`, with that group's model, for per-group models):
    write its predictions.parquet, metrics.json and metrics_by_series.parquet.

    model: a train entry, or several (an ensemble combined by `combine`, each reading the bucket
    through its own window entry in `member_splits`; `split` has the longest window), with the
    statistical members and weights of a hybrid's `packed` ensemble entry, and their validate
    entries `made` (their calibration and test forecasts, made there once). model_cfg,
    train_cfg: resolved; used only to retrain when eval_cfg.refit_every > 0 (single models).
    """

    def compute(w: store.EntryWriter) -> dict:
        values, sp = read_window(split.path)
        sp = sp.subset(group)
        net, record = predictor(model, member_splits, combine, eval_cfg.chunk_size, packed, sp, made)
        refit = None
        if eval_cfg.refit_every and member_splits is None:
            torch.set_num_threads(train_cfg.threads)
            refit = refitter(values, model_cfg, train_cfg)
        df, result = backtest(net, values, sp, levels=eval_cfg.levels, season_length=eval_cfg.season_length,
                              chunk=eval_cfg.chunk_size, refit_every=eval_cfg.refit_every, refit=refit,
                              references=eval_cfg.references, gate_baseline=eval_cfg.gate_baseline)
        result["strategy"] = record.strategy
        result["train"] = {k: record.trained.get(k) for k in ("device", "epochs_run", "best_epoch", "stopped_early",
                                                               "threads")}
        by_series = series_metrics(df, dict(zip(sp.ids, series_scales(values, sp))))
        if group is not None:
            by_series.insert(1, "group", group)
        write_scores(w.dir, df, result, by_series)
        m = result["metrics"]
        log.info("backtest: %d series, %d origins x %d leads, model MASE %s, naive %s", len(sp.series),
                 result["n_test"], result["horizon"], metric_text(m["model"]["mase"]), metric_text(m["naive"]["mase"]))
        return {"n_series": len(sp.series), "n_test": result["n_test"]}

    return build(plan, compute)


@task(**stage_task(STAGE))
def evaluate_task(plan, backtests: tuple[store.StageRef, ...], seed_noise: dict | None = None) -> dict:
    """Combine every bucket's backtest: metrics.json, metrics_by_series.parquet (and, for a single
    bucket, its predictions.parquet); decide the baseline gate on the combined scores of the
    origins before the test range, with ties within `seed_noise` (tasks.validate.seed_noise: a
    search's or sweep's; None or unmeasured: exact ties) times the forecaster's weight on its
    networks; return the entry's StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        results = [read_metrics(ref.path) for ref in backtests]
        ranked = append_by_series(w.dir, [ref.path for ref in backtests], keep=("series_id", "model_mase"))
        result = {**aggregate(results), "strategy": results[0]["strategy"], "train": results[0]["train"],
                  "n_series": len(ranked), "sample": sample_series(ranked)}
        result["gate"] = decide_gate(result["pretest"], result["metrics"], result.get("undefined"),
                                     result["gate"].get("asked", "best"), seed_noise, network_weight(result))
        write_scores(w.dir, read_predictions(backtests[0].path) if len(backtests) == 1 else None, result)
        m = result["metrics"]
        log.info("evaluate: %d series, %d origins x %d leads, model MASE %s, naive %s, gate %s",
                 result["n_series"], result["n_test"], result["horizon"], metric_text(m["model"]["mase"]),
                 metric_text(m["naive"]["mase"]),
                 "passed" if result["gate"]["passed"] else "failed")
        return {"model_mse": m["model"]["mse"], "naive_mse": m["naive"]["mse"], "gate": result["gate"]["passed"]}

    return build(plan, compute)
