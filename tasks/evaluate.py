"""Stage 4: the rolling-origin backtest on the test range, scored against baselines, with intervals.

Every forecaster is scored on exactly the same targets: the model, the naive last-value
forecast and, where a season length is known, the seasonal-naive forecast; per lead time and
averaged over leads (tasks/backtest.py). MASE is scaled per series by the in-sample naive MAE
of its training range. Split-conformal intervals are calibrated on the validation origins and
their coverage is measured on the test origins. The baseline gate asks whether the model beats
seasonal-naive MASE (naive when no season is known).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import torch
from prefect import task

from tasks import store
from tasks.backtest import (
    Refit, actuals, band_columns, baseline_gate, baselines, conformal_bands, interval_report, lead_metrics,
    mase_scales, model_forecasts, refit_forecasts, score_scales, series_index,
)
from tasks.caching import STAGE_CACHE_POLICY, StagePlan
from tasks.config import EvalConfig, ModelConfig, TrainConfig
from tasks.metrics import all_metrics, naive_scale
from tasks.model import load_model, resolve_device
from tasks.retry import RETRY_OPTIONS
from tasks.train import MODEL_FILE, train_model
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
    """One-step (lead 1) model forecasts for every test origin, in original units: (n_test,)."""
    return model_forecasts(model, values, split, ranges_to_index(split, "test"), 1, chunk)[:, 0]


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


def backtest_frame(split: dict, idx: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per (test origin, lead): series_id, origin and target step, lead, then `columns` (n, H) raveled."""
    L = split["seq_length"]
    k = series_index(split, idx)
    n, H = next(iter(columns.values())).shape
    origin = np.repeat(idx + L - 1 - np.array([s["offset"] for s in split["series"]])[k], H)
    lead = np.tile(np.arange(1, H + 1), n)
    ids = np.array([s["series_id"] for s in split["series"]], dtype=object)[k]
    return pd.DataFrame({"series_id": np.repeat(ids, H), "step": origin + lead, "origin": origin, "lead": lead,
                         **{c: v.ravel() for c, v in columns.items()}})


def evaluate(
    model: torch.nn.Module, values: np.ndarray, split: dict, cfg: EvalConfig, refit: Refit | None = None
) -> tuple[pd.DataFrame, dict]:
    """Predictions table (one row per test origin and lead) and the metrics of the backtest."""
    season = season_for(split, cfg)
    L, H = split["seq_length"], split.get("horizon", 1)
    n_fits = 0
    if refit is not None and cfg.refit_every:
        idx, pred, n_fits = refit_forecasts(values, split, cfg.refit_every, refit, H, cfg.chunk_size)
    else:
        idx = ranges_to_index(split, "test")
        pred = model_forecasts(model, values, split, idx, H, cfg.chunk_size)
    y = actuals(values, idx, L, H)
    forecasts = {"model": pred, **baselines(values, idx, L, H, season)}
    scale = mase_scales(values, split, idx)
    per_lead, metrics = {}, {}
    for name, f in forecasts.items():
        per_lead[name], metrics[name] = lead_metrics(y, f, scale)
    cal = conformal_bands(model, values, split, cfg.levels, cfg.chunk_size)
    scores = score_scales(values, split, idx)
    df = backtest_frame(split, idx, {"actual": y, **forecasts, **band_columns(pred, scores, cal)})
    intervals = {**cal, "halfwidths": {k: [float(x) for x in q] for k, q in cal["halfwidths"].items()},
                 "test": interval_report(y, pred, scores, cal)}
    ratio = metrics["naive"]["mse"] / metrics["model"]["mse"] if metrics["model"]["mse"] > 0 else float("inf")
    return df, {"metrics": metrics, "per_lead": per_lead, "n_test": len(idx), "horizon": H,
                "naive_mse_ratio": ratio, "season_length": season, "frequency": split.get("frequency"),
                "intervals": intervals, "gate": baseline_gate(metrics), "refit_every": cfg.refit_every,
                "refits": n_fits}


def refitter(values: np.ndarray, model_cfg: ModelConfig, train_cfg: TrainConfig) -> Refit:
    """Train a fresh model (same config, same seed) on a block's split; returned on the CPU."""
    device = resolve_device(train_cfg.device)
    return lambda sp: train_model(values, sp, model_cfg, train_cfg, device)[0].cpu().eval()


@task(name="evaluate", cache_policy=STAGE_CACHE_POLICY, **RETRY_OPTIONS)
def evaluate_task(
    plan: StagePlan, cfg: EvalConfig, window: dict, train: dict,
    model_cfg: ModelConfig = ModelConfig(), train_cfg: TrainConfig = TrainConfig(),
) -> dict:
    """Write metrics.json and predictions.parquet; return the StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        win, tr = store.StageRef(**window), store.StageRef(**train)
        values, split = np.load(win.file(VALUES_FILE)), store.read_json(win.file(SPLIT_FILE))
        model, meta = load_model(str(tr.file(MODEL_FILE)))
        refit = None
        if cfg.refit_every:
            torch.set_num_threads(train_cfg.threads)
            refit = refitter(values, model_cfg, train_cfg)
        df, result = evaluate(model, values, split, cfg, refit)
        result["strategy"] = meta.get("strategy", "direct")
        result["train"] = {k: meta[k] for k in ("device", "epochs_run", "best_epoch", "stopped_early", "threads")}
        df.to_parquet(w.path(PREDICTIONS_FILE), index=False)
        store.write_json(w.path(METRICS_FILE), result)
        m = result["metrics"]
        log.info("evaluate: %d origins x %d leads, model MASE %.3f, naive %.3f, gate %s", result["n_test"],
                 result["horizon"], m["model"]["mase"], m["naive"]["mase"],
                 "passed" if result["gate"]["passed"] else "failed")
        return {"model_mse": m["model"]["mse"], "naive_mse": m["naive"]["mse"], "gate": result["gate"]["passed"]}

    return store.build_entry(plan.base, plan.stage, plan.key, plan.key_inputs, compute, force=plan.forced).model_dump()
