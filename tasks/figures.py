"""Stage 5: figures of the backtest and of training. Plot functions return a Figure; only the task saves them.

matplotlib's object API (Figure + Agg canvas) is used instead of pyplot: no global state, no GUI
backend, no font look-ups beyond the default DejaVu Sans (so no font warnings).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from prefect import task

from tasks.config import FiguresConfig
from tasks.formats.figures import FIGURES, figure_file
from tasks.formats.history import read_history
from tasks.formats.scores import read_by_series, read_metrics, read_predictions
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

STAGE = StageSpec("figures", packages=("matplotlib", "pandas"), files=tuple(figure_file(n) for n in FIGURES))
FORECASTERS = {"model": "RNN", "naive": "Naive (last value)", "seasonal_naive": "Seasonal naive", "ets": "AutoETS",
               "theta": "AutoTheta", "arima": "AutoARIMA"}


def _new(cfg: FiguresConfig) -> tuple[Figure, object]:
    fig = Figure(figsize=(cfg.width, cfg.height), dpi=cfg.dpi, layout="constrained")
    return fig, fig.add_subplot()


def lead_one(df: pd.DataFrame) -> pd.DataFrame:
    """The one-step-ahead rows of a predictions table (all rows of a horizon-1 table)."""
    return df[df["lead"] == 1] if "lead" in df else df


def plot_predictions(df: pd.DataFrame, cfg: FiguresConfig) -> Figure:
    """The tutorial's plot: actual vs predicted over the test range (first series, lead 1 and the last lead)."""
    fig, ax = _new(cfg)
    whole = df[df["series_id"] == df["series_id"].iloc[0]]
    first, title = lead_one(whole), "One-step-ahead forecast on the test range"
    actual = whole.drop_duplicates("step").sort_values("step")
    ax.plot(actual["step"], actual["actual"], label="Actual", linewidth=2)
    ax.plot(first["step"], first["model"], label="Predicted (RNN)", linestyle="--")
    if "lead" in whole and whole["lead"].max() > 1:
        h = int(whole["lead"].max())
        last = whole[whole["lead"] == h]
        ax.plot(last["step"], last["model"], label=f"Predicted {h} steps ahead", linestyle=":")
        title = f"Forecasts 1 and {h} steps ahead on the test range"
    ax.plot(first["step"], first["naive"], label="Naive (last value)", linewidth=0.8, alpha=0.6)
    ax.set(title=title, xlabel="Time step", ylabel="Value")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def plot_loss(history: dict, cfg: FiguresConfig) -> Figure:
    """Training and validation loss per epoch (log scale)."""
    fig, ax = _new(cfg)
    epochs = range(1, len(history["train_loss"]) + 1)
    ax.plot(epochs, history["train_loss"], label="Training loss")
    ax.plot(epochs, history["val_loss"], label="Validation loss")
    if history.get("best_epoch"):
        ax.axvline(history["best_epoch"], color="grey", linestyle=":", label=f"Best epoch ({history['best_epoch']})")
    positive = min(history["train_loss"] + history["val_loss"], default=0) > 0  # a perfect fit has no log scale
    ax.set(title="Training loss (MSE)", xlabel="Epoch", ylabel="MSE", yscale="log" if positive else "linear")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def plot_residuals(df: pd.DataFrame, cfg: FiguresConfig) -> Figure:
    """Residuals (actual - predicted, lead 1) over time and their histogram."""
    fig = Figure(figsize=(cfg.width, cfg.height), dpi=cfg.dpi, layout="constrained")
    ax_t, ax_h = fig.subplots(1, 2, width_ratios=(3, 1))
    df = lead_one(df)
    resid = df["actual"] - df["model"]
    ax_t.plot(df["step"], resid, linewidth=0.8)
    ax_t.axhline(0, color="grey", linewidth=0.8)
    ax_t.set(title="Residuals on the test range", xlabel="Time step", ylabel="Actual - predicted")
    ax_h.hist(resid, bins=30, orientation="horizontal")
    ax_h.set(title="Distribution", xlabel="Count")
    return fig


def plot_error_by_lead(per_lead: dict[str, dict[str, list[float]]], cfg: FiguresConfig) -> Figure:
    """MASE per lead time of each forecaster on the backtest (lower is better)."""
    fig, ax = _new(cfg)
    for name, m in per_lead.items():
        leads = range(1, len(m["mase"]) + 1)
        ax.plot(leads, m["mase"], marker="o", label=FORECASTERS.get(name, name), linewidth=2 if name == "model" else 1)
    ax.set(title="Error vs lead time on the backtest", xlabel="Lead time (steps ahead)", ylabel="MASE")
    ax.set_xticks(list(range(1, len(next(iter(per_lead.values()))["mase"]) + 1)))
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def render_all(df: pd.DataFrame, history: dict, cfg: FiguresConfig, per_lead: dict | None = None) -> dict[str, Figure]:
    """Every figure by name (error_by_lead when per-lead metrics are given)."""
    figs = {
        "prediction": plot_predictions(df, cfg),
        "loss": plot_loss(history, cfg),
        "residuals": plot_residuals(df, cfg),
    }
    if per_lead:
        figs["error_by_lead"] = plot_error_by_lead(per_lead, cfg)
    return figs


def plot_sample(frames: dict[str, pd.DataFrame], cfg: FiguresConfig) -> Figure:
    """One-step-ahead forecasts of a few series of many (e.g. best, median, worst), one row each."""
    fig = Figure(figsize=(cfg.width, cfg.height * len(frames) * 0.7), dpi=cfg.dpi, layout="constrained")
    for ax, (label, df) in zip(fig.subplots(len(frames), 1, squeeze=False)[:, 0], frames.items()):
        one = lead_one(df).sort_values("step")
        ax.plot(one["step"], one["actual"], label="Actual", linewidth=2)
        ax.plot(one["step"], one["model"], label="Predicted (RNN)", linestyle="--")
        ax.plot(one["step"], one["naive"], label="Naive (last value)", linewidth=0.8, alpha=0.6)
        ax.set(title=f"{label}: {df['series_id'].iloc[0]}", xlabel="Time step", ylabel="Value")
        ax.grid(alpha=0.3)
    fig.axes[0].legend()
    return fig


def plot_series_mase(by_series: pd.DataFrame, cfg: FiguresConfig) -> Figure:
    """Distribution over series of the model's and the baselines' MASE on the backtest (log scale)."""
    fig, ax = _new(cfg)
    for name, label in FORECASTERS.items():
        col = f"{name}_mase"
        if col in by_series:
            v = by_series[col].to_numpy(float)
            v = v[np.isfinite(v) & (v > 0)]
            if len(v):
                bins = np.geomspace(v.min(), v.max(), 40) if v.max() > v.min() else 10
                ax.hist(v, bins=bins, histtype="step", linewidth=2 if name == "model" else 1,
                        label=f"{label} (median {np.median(v):.3g})")
    ax.set(title=f"MASE per series on the backtest ({len(by_series)} series)", xlabel="MASE", ylabel="Series",
           xscale="log")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def sample_predictions(scores: store.StageRef, backtests: Sequence[store.StageRef]) -> dict[str, pd.DataFrame]:
    """The backtest rows of the sample series the evaluate stage chose, by label ("only", "best", ...)."""
    sample = read_metrics(scores.path)["sample"]
    bucket = read_by_series(scores.path).set_index("series_id")["bucket"]
    return {label: read_predictions(backtests[int(bucket.loc[sid])].path, [sid]) for label, sid in sample.items()}


@task(**stage_task(STAGE))
def figures_task(plan, fig_cfg: FiguresConfig, scores: store.StageRef, backtests: tuple[store.StageRef, ...],
                 model: store.StageRef) -> dict:
    """Write figures/*.png from the backtest (scores: combined, backtests: per bucket) and the
    training history (model); return the StageRef. Many series: a sample and the distribution."""

    def compute(w: store.EntryWriter) -> dict:
        frames = sample_predictions(scores, backtests)
        per_lead = read_metrics(scores.path)["per_lead"]
        df = pd.concat(list(frames.values()), ignore_index=True)
        figs = render_all(df, read_history(model.path), fig_cfg, per_lead)
        if "only" not in frames:
            figs["prediction"] = plot_sample(frames, fig_cfg)
            figs["series_mase"] = plot_series_mase(read_by_series(scores.path), fig_cfg)
        for name, fig in figs.items():
            fig.savefig(w.path(figure_file(name)), dpi=fig_cfg.dpi)
        log.info("figures: %s", ", ".join(f"{n}.png" for n in figs))
        return {"figures": [figure_file(n) for n in figs]}

    return build(plan, compute)
