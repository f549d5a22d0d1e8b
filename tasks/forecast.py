"""Stage 6: the future. Forecast `horizon` steps past the end of every series, with conformal bands.

    series s:  ... values[end-L : end] | forecast leads 1..H at the next H times of its frequency
    band:      forecast +- (score half-width of the lead, from the evaluate stage) * score scale

The score scale is computed exactly as for the calibration (tasks.backtest.score_scales): the last
input window's std for normalize="window", else the series' MASE scale. With refit_full the
model is first retrained on every window (train, val and test) for the best epoch count found
with validation; the interval widths still come from the validation residuals.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from prefect import task

from tasks import store
from tasks.backtest import band_columns, model_forecasts, score_scales
from tasks.caching import STAGE_CACHE_POLICY, StagePlan
from tasks.config import (
    FiguresConfig,
    ForecastConfig,
    ModelConfig,
    TrainConfig,
    resolve_auto,
)
from tasks.evaluate import METRICS_FILE
from tasks.generate import SERIES_FILE, read_series
from tasks.ingest import next_timestamps
from tasks.model import load_model, resolve_device
from tasks.retry import RETRY_OPTIONS
from tasks.train import MODEL_FILE, train_model
from tasks.windowing import SPLIT_FILE, VALUES_FILE, fit_scaler, n_windows, series_entry

log = logging.getLogger(__name__)

FORECAST_FILE = "forecast.parquet"
FIGURE_FILE = "figures/forecast.png"


def last_origins(split: dict) -> np.ndarray:
    """The origin of each series' last window (its last L points): (n_series,)."""
    L = split["seq_length"]
    return np.array([s["offset"] + s["length"] - L for s in split["series"]], dtype=np.int64)


def full_split(values: np.ndarray, split: dict) -> dict:
    """`split` with every origin of every series in train (no val, no test) and the scaler refitted on all."""
    L, H = split["seq_length"], split.get("horizon", 1)
    out = copy.deepcopy(split)
    for i, s in enumerate(split["series"]):
        n = n_windows(s["length"], L, H)
        ranges = {"train": (0, n), "val": (n, n), "test": (n, n)}
        out["series"][i] = {**s, **series_entry(s["series_id"], s["offset"], s["length"], ranges, L, H)}
    out["scaler"] = fit_scaler(values, out, split.get("normalize", "none"))
    return out


def future_times(frame: pd.DataFrame, split: dict, steps: int) -> dict[str, dict[str, list]]:
    """Per series the next `steps` integer steps and, for files, timestamps continuing the frequency."""
    last = frame.groupby("series_id", sort=False).tail(1).set_index("series_id")
    freq = split.get("frequency") or "1"
    out = {}
    for s in split["series"]:
        row = last.loc[s["series_id"]]
        times = {"step": next_timestamps(int(row["step"]), "1", steps)}
        if "timestamp" in last.columns:
            times["timestamp"] = next_timestamps(row["timestamp"], freq, steps)
        out[s["series_id"]] = times
    return out


def future_forecast(
    model: torch.nn.Module, values: np.ndarray, split: dict, intervals: dict, model_split: dict | None = None
) -> dict[str, np.ndarray]:
    """Forecast (n_series, H) after each series' end, plus lower_/upper_<level> bands of the same shape."""
    H, origins = split.get("horizon", 1), last_origins(split)
    pred = model_forecasts(model, values, model_split or split, origins, H)
    return {"forecast": pred, **band_columns(pred, score_scales(values, split, origins), intervals)}


def forecast_frame(split: dict, times: dict, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per series and lead: series_id, lead, step, [timestamp], forecast, lower_80, upper_80, ..."""
    H = next(iter(columns.values())).shape[1]
    rows = []
    for i, s in enumerate(split["series"]):
        t = times[s["series_id"]]
        rows.append(pd.DataFrame({"series_id": s["series_id"], "lead": np.arange(1, H + 1), **t,
                                  **{c: v[i] for c, v in columns.items()}}))
    return pd.concat(rows, ignore_index=True)


def plot_forecast(history: pd.DataFrame, fc: pd.DataFrame, cfg: FiguresConfig, season: int | None = None) -> Figure:
    """History, forecast and conformal bands of the first series."""
    sid = fc["series_id"].iloc[0]
    x = "timestamp" if "timestamp" in fc else "step"
    h, f = history[history["series_id"] == sid], fc[fc["series_id"] == sid]
    h = h.tail(max(5 * len(f), 3 * (season or 0), 60))
    fig = Figure(figsize=(cfg.width, cfg.height), dpi=cfg.dpi, layout="constrained")
    ax = fig.add_subplot()
    ax.plot(h[x], h["value"], label="History", linewidth=1.5)
    bands = sorted((c[len("lower_"):] for c in f if c.startswith("lower_")), key=int, reverse=True)
    for alpha, name in zip((0.18, 0.3, 0.42, 0.54, 0.66), bands):
        ax.fill_between(f[x], f[f"lower_{name}"], f[f"upper_{name}"], alpha=alpha, color="tab:orange",
                        linewidth=0, label=f"{name}% interval")
    joined_x, joined_y = [h[x].iloc[-1], *f[x]], [h["value"].iloc[-1], *f["forecast"]]  # from the last point on
    ax.plot(joined_x, joined_y, label="Forecast (RNN)", color="tab:orange", marker="." if len(f) < 50 else None)
    ax.set(title=f"Forecast of the next {len(f)} step(s) — {sid}", xlabel="Time" if x == "timestamp" else "Time step",
           ylabel="Value")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def refit_on_everything(values: np.ndarray, split: dict, meta: dict, model_cfg: ModelConfig,
                        train_cfg: TrainConfig) -> tuple[torch.nn.Module, dict]:
    """(model retrained on all windows for the best epoch count, the split it read)."""
    full = full_split(values, split)
    epochs = max(int(meta.get("best_epoch") or resolve_auto(train_cfg, split.get("source")).epochs), 1)
    cfg = train_cfg.model_copy(update={"epochs": epochs, "patience": 0})
    log.info("forecast: refitting on all %d origins for %d epochs", sum(s["train"][1] - s["train"][0]
                                                                        for s in full["series"]), epochs)
    model, _ = train_model(values, full, model_cfg, cfg, resolve_device(train_cfg.device))
    return model.cpu().eval(), full


@task(name="forecast", cache_policy=STAGE_CACHE_POLICY, **RETRY_OPTIONS)
def forecast_task(
    plan: StagePlan, cfg: ForecastConfig, fig_cfg: FiguresConfig, model_cfg: ModelConfig, train_cfg: TrainConfig,
    series: dict, window: dict, train: dict, evaluate: dict,
) -> dict:
    """Write forecast.parquet and figures/forecast.png; return the StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        win = store.StageRef(**window)
        values, split = np.load(win.file(VALUES_FILE)), store.read_json(win.file(SPLIT_FILE))
        frame, _ = read_series(store.StageRef(**series).file(SERIES_FILE))
        model, meta = load_model(str(store.StageRef(**train).file(MODEL_FILE)))
        intervals = store.read_json(store.StageRef(**evaluate).file(METRICS_FILE))["intervals"]
        model_split = None
        if cfg.refit_full:
            torch.set_num_threads(train_cfg.threads)
            model, model_split = refit_on_everything(values, split, meta, model_cfg, train_cfg)
        columns = future_forecast(model, values, split, intervals, model_split)
        fc = forecast_frame(split, future_times(frame, split, columns["forecast"].shape[1]), columns)
        fc.to_parquet(w.path(FORECAST_FILE), index=False)
        fig = plot_forecast(frame, fc, fig_cfg, split.get("season_length"))
        fig.savefig(w.path(FIGURE_FILE), dpi=fig_cfg.dpi)
        first = fc.iloc[0]
        log.info("forecast: %d series x %d steps from %s", len(split["series"]), columns["forecast"].shape[1],
                 first.get("timestamp", first["step"]))
        return {"rows": len(fc), "refit_full": cfg.refit_full}

    return store.build_entry(plan.base, plan.stage, plan.key, plan.key_inputs, compute, force=plan.forced).model_dump()
