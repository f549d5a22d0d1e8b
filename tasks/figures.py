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
from tasks.evaluate import METRICS_FILE, PREDICTIONS_FILE
from tasks.retry import RETRY_OPTIONS
from tasks.train import HISTORY_FILE

log = logging.getLogger(__name__)

FIGURES = ("prediction", "loss", "residuals", "error_by_lead")
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
    ax.set(title="Training loss (MSE)", xlabel="Epoch", ylabel="MSE", yscale="log")
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


@task(name="figures", cache_policy=STAGE_CACHE_POLICY, **RETRY_OPTIONS)
def figures_task(plan: StagePlan, cfg: FiguresConfig, evaluate: dict, train: dict) -> dict:
    """Write figures/*.png; return the StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        ev = store.StageRef(**evaluate)
        df = pd.read_parquet(ev.file(PREDICTIONS_FILE))
        per_lead = store.read_json(ev.file(METRICS_FILE))["per_lead"]
        history = store.read_json(store.StageRef(**train).file(HISTORY_FILE))
        for name, fig in render_all(df, history, cfg, per_lead).items():
            fig.savefig(w.path(f"figures/{name}.png"), dpi=cfg.dpi)
        log.info("figures: %s", ", ".join(f"{n}.png" for n in FIGURES))
        return {"figures": [f"figures/{n}.png" for n in FIGURES]}

    return store.build_entry(plan.base, plan.stage, plan.key, plan.key_inputs, compute, force=plan.forced).model_dump()
