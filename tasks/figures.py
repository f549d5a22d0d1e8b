"""Stage 5: figures. Plot functions return a Figure; only the task saves them.

matplotlib's object API (Figure + Agg canvas) is used instead of pyplot: no global state, no GUI
backend, no font look-ups beyond the default DejaVu Sans (so no font warnings).
"""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure
from prefect import task

from tasks import store
from tasks.caching import STAGE_CACHE_POLICY, StagePlan
from tasks.config import FiguresConfig
from tasks.evaluate import PREDICTIONS_FILE
from tasks.retry import RETRY_OPTIONS
from tasks.train import HISTORY_FILE

log = logging.getLogger(__name__)

FIGURES = ("prediction", "loss", "residuals")


def _new(cfg: FiguresConfig) -> tuple[Figure, object]:
    fig = Figure(figsize=(cfg.width, cfg.height), dpi=cfg.dpi, layout="constrained")
    return fig, fig.add_subplot()


def plot_predictions(df: pd.DataFrame, cfg: FiguresConfig) -> Figure:
    """The tutorial's plot: actual vs predicted over the test range (first series)."""
    fig, ax = _new(cfg)
    first = df[df["series_id"] == df["series_id"].iloc[0]]
    ax.plot(first["step"], first["actual"], label="Actual", linewidth=2)
    ax.plot(first["step"], first["model"], label="Predicted (RNN)", linestyle="--")
    ax.plot(first["step"], first["naive"], label="Naive (last value)", linewidth=0.8, alpha=0.6)
    ax.set(title="One-step-ahead forecast on the test range", xlabel="Time step", ylabel="Value")
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
    ax.set(title="Training loss (MSE)", xlabel="Epoch", ylabel="MSE", yscale="log")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def plot_residuals(df: pd.DataFrame, cfg: FiguresConfig) -> Figure:
    """Residuals (actual - predicted) over time and their histogram."""
    fig = Figure(figsize=(cfg.width, cfg.height), dpi=cfg.dpi, layout="constrained")
    ax_t, ax_h = fig.subplots(1, 2, width_ratios=(3, 1))
    resid = df["actual"] - df["model"]
    ax_t.plot(df["step"], resid, linewidth=0.8)
    ax_t.axhline(0, color="grey", linewidth=0.8)
    ax_t.set(title="Residuals on the test range", xlabel="Time step", ylabel="Actual - predicted")
    ax_h.hist(resid, bins=30, orientation="horizontal")
    ax_h.set(title="Distribution", xlabel="Count")
    return fig


def render_all(df: pd.DataFrame, history: dict, cfg: FiguresConfig) -> dict[str, Figure]:
    """Every figure by name."""
    return {
        "prediction": plot_predictions(df, cfg),
        "loss": plot_loss(history, cfg),
        "residuals": plot_residuals(df, cfg),
    }


@task(name="figures", cache_policy=STAGE_CACHE_POLICY, **RETRY_OPTIONS)
def figures_task(plan: StagePlan, cfg: FiguresConfig, evaluate: dict, train: dict) -> dict:
    """Write figures/*.png; return the StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        df = pd.read_parquet(store.StageRef(**evaluate).file(PREDICTIONS_FILE))
        history = store.read_json(store.StageRef(**train).file(HISTORY_FILE))
        for name, fig in render_all(df, history, cfg).items():
            fig.savefig(w.path(f"figures/{name}.png"), dpi=cfg.dpi)
        log.info("figures: %s", ", ".join(f"{n}.png" for n in FIGURES))
        return {"figures": [f"figures/{n}.png" for n in FIGURES]}

    return store.build_entry(plan.base, plan.stage, plan.key, plan.key_inputs, compute, force=plan.forced).model_dump()
