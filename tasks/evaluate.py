"""Stage 4: one-step-ahead forecasts on the test windows, scored against baselines.

Every forecaster is scored on exactly the same targets: the model, the naive last-value
forecast and, where a season length is known, the seasonal-naive forecast. MASE is scaled per
series by the in-sample naive MAE of its training range.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from prefect import task

from tasks import store
from tasks.caching import STAGE_CACHE_POLICY, StagePlan
from tasks.config import EvalConfig
from tasks.metrics import all_metrics, naive_scale
from tasks.model import load_model
from tasks.retry import RETRY_OPTIONS
from tasks.train import MODEL_FILE, predict, series_data
from tasks.windowing import SPLIT_FILE, VALUES_FILE, ranges_to_index

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"


def baseline_forecasts(values: np.ndarray, targets: np.ndarray, season: int | None) -> dict[str, np.ndarray]:
    """Naive (y[t-1]) and, if `season`, seasonal-naive (y[t-season]) forecasts of values[targets]."""
    out = {"naive": values[targets - 1]}
    if season:
        out["seasonal_naive"] = values[targets - season]
    return out


def test_frame(values: np.ndarray, split: dict, model_pred: np.ndarray, season: int | None) -> pd.DataFrame:
    """One row per test target: series_id, step, actual, and each forecaster's prediction."""
    L = split["seq_length"]
    rows = []
    for s in split["series"]:
        starts = np.arange(*s["test"], dtype=np.int64)
        rows.append(pd.DataFrame({"series_id": s["series_id"], "step": starts + L - s["offset"], "target": starts + L}))
    df = pd.concat(rows, ignore_index=True)
    targets = df.pop("target").to_numpy()
    df["actual"] = values[targets]
    df["model"] = model_pred
    for name, pred in baseline_forecasts(values, targets, season).items():
        df[name] = pred
    return df


def score(df: pd.DataFrame, values: np.ndarray, split: dict) -> dict:
    """Metrics of every forecaster column in `df`, with MASE scaled per series."""
    scales = {s["series_id"]: naive_scale(values[slice(*s["fit_range"])]) for s in split["series"]}
    scale = df["series_id"].map(scales).to_numpy(float)
    forecasters = [c for c in ("model", "naive", "seasonal_naive") if c in df]
    return {name: all_metrics(df["actual"].to_numpy(), df[name].to_numpy(), scale) for name in forecasters}


def model_predictions(model: torch.nn.Module, values: np.ndarray, split: dict, chunk: int) -> np.ndarray:
    """One-step model forecasts for every test window, in original units: (n_test,)."""
    data = series_data(values, split)
    idx = ranges_to_index(split, "test")
    out = predict(model, data, torch.as_tensor(idx), chunk, series_units=True)[:, 0].double().numpy()
    # undo each series' global scaler on its own rows (idx is ordered series by series)
    mean = np.concatenate([np.full(s["test"][1] - s["test"][0], sc["mean"]) for s, sc in zip(split["series"], split["scaler"])])
    std = np.concatenate([np.full(s["test"][1] - s["test"][0], sc["std"]) for s, sc in zip(split["series"], split["scaler"])])
    return out * std + mean


def season_for(split: dict, cfg: EvalConfig) -> int | None:
    """The seasonal-naive lag: cfg.season_length, else the one inferred from the frequency.

    None when unknown, or when some series has fewer points before its first test target
    than one season (the baseline would reach into the previous series).
    """
    season = cfg.season_length or split.get("season_length")
    if not season:
        return None
    L = split["seq_length"]
    room = min(s["test"][0] + L - s["offset"] for s in split["series"])
    if season > room:
        log.warning("season length %d exceeds the %d points before the test range; no seasonal-naive baseline",
                    season, room)
        return None
    return int(season)


def evaluate(model: torch.nn.Module, values: np.ndarray, split: dict, cfg: EvalConfig) -> tuple[pd.DataFrame, dict]:
    """Predictions table and metrics for the test range."""
    season = season_for(split, cfg)
    df = test_frame(values, split, model_predictions(model, values, split, cfg.chunk_size), season)
    metrics = score(df, values, split)
    ratio = metrics["naive"]["mse"] / metrics["model"]["mse"] if metrics["model"]["mse"] > 0 else float("inf")
    return df, {"metrics": metrics, "n_test": len(df), "naive_mse_ratio": ratio, "season_length": season,
                "frequency": split.get("frequency")}


@task(name="evaluate", cache_policy=STAGE_CACHE_POLICY, **RETRY_OPTIONS)
def evaluate_task(plan: StagePlan, cfg: EvalConfig, window: dict, train: dict) -> dict:
    """Write metrics.json and predictions.parquet; return the StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        win, tr = store.StageRef(**window), store.StageRef(**train)
        values, split = np.load(win.file(VALUES_FILE)), store.read_json(win.file(SPLIT_FILE))
        model, meta = load_model(str(tr.file(MODEL_FILE)))
        df, result = evaluate(model, values, split, cfg)
        result["train"] = {k: meta[k] for k in ("device", "epochs_run", "best_epoch", "stopped_early", "threads")}
        df.to_parquet(w.path(PREDICTIONS_FILE), index=False)
        store.write_json(w.path(METRICS_FILE), result)
        m = result["metrics"]
        log.info("evaluate: model MSE %.3e, naive MSE %.3e", m["model"]["mse"], m["naive"]["mse"])
        return {"model_mse": m["model"]["mse"], "naive_mse": m["naive"]["mse"]}

    return store.build_entry(plan.base, plan.stage, plan.key, plan.key_inputs, compute, force=plan.forced).model_dump()
