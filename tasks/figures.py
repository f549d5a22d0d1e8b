"""Stage 5: figures of the backtest and of training. Plot functions return a Figure; only the task saves them.

matplotlib's object API (Figure + Agg canvas) is used instead of pyplot: no global state, no GUI
backend, no font look-ups beyond the default DejaVu Sans (so no font warnings).
"""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure
from prefect import task

from tasks.config import FiguresConfig
from tasks.formats.figures import FIGURES, figure_file
from tasks.formats.history import read_history
from tasks.formats.scores import read_metrics, read_predictions
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

STAGE = StageSpec("figures", packages=("matplotlib", "pandas"), files=tuple(figure_file(n) for n in FIGURES))
FORECASTERS = {"model": "RNN", "naive": "Naive (last value)", "seasonal_naive": "Seasonal naive"}


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


@task(**stage_task(STAGE))
def figures_task(plan, fig_cfg: FiguresConfig, scores: store.StageRef, model: store.StageRef) -> dict:
    """Write figures/*.png from the backtest (scores) and the training history (model); return the StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        df = read_predictions(scores.path)
        per_lead = read_metrics(scores.path)["per_lead"]
        figs = render_all(df, read_history(model.path), fig_cfg, per_lead)
        for name, fig in figs.items():
            fig.savefig(w.path(figure_file(name)), dpi=fig_cfg.dpi)
        log.info("figures: %s", ", ".join(f"{n}.png" for n in figs))
        return {"figures": [figure_file(n) for n in figs]}

    return build(plan, compute)
