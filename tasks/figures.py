"""Stage 5: figures of the backtest and of training. Plot functions return a Figure; only the task saves them.

matplotlib's object API (Figure + Agg canvas) is used instead of pyplot: no global state, no GUI
backend, no font look-ups beyond the default DejaVu Sans (so no font warnings). It is imported
only when a figure is drawn, so a run that reuses this stage never loads it.

A series read from a file is drawn against its dates and its value column's name; a generated one
against integer time steps.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from prefect import task

from tasks.config import FiguresConfig
from tasks.formats.figures import FIGURES, figure_file, outside_legend, plain
from tasks.formats.history import read_history
from tasks.formats.scores import read_by_series, read_metrics, read_predictions
from tasks.formats.series import read_series, read_series_schema
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

STAGE = StageSpec("figures", packages=("matplotlib", "pandas"), files=tuple(figure_file(n) for n in FIGURES),
                  words=(("name", "the forecaster's name"), ("member_names", "the networks' names"),
                         ("note", "the loss figure's note")))
# the references' names as tasks.components.references.LABELS has them (not imported: the figures' code key stays small)
BASELINES = {"naive": "Naive (last value)", "seasonal_naive": "Seasonal naive", "ets": "AutoETS",
             "theta": "AutoTheta", "arima": "AutoARIMA"}


@dataclass(frozen=True)
class Labels:
    """What the axes and legends call things: the model, the values, the time axis."""

    model: str = "RNN"  # RNN, GRU, LSTM or "ensemble of 3"
    value: str = "Value"  # the value column of a file
    time: str = "Time step"  # the time column of a file, or integer steps

    @classmethod
    def of(cls, name: str, meta: dict) -> "Labels":
        """Labels for the forecaster `name` (a cell: "gru" -> "GRU") on the series described by
        `meta` (series.parquet metadata)."""
        params = meta.get("params", {}) if meta.get("source") == "file" else {}
        label = name.upper() if name.lower() in ("rnn", "gru", "lstm") else name
        return cls(label, plain(params.get("value_column", "Value")), plain(params.get("time_column", "Time step")))


def _new(cfg: FiguresConfig, ncols: int = 1, **kw) -> tuple["Figure", object]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(cfg.width, cfg.height), dpi=cfg.dpi, layout="constrained")
    return fig, fig.subplots(1, ncols, **kw) if ncols > 1 else fig.add_subplot()


def time_axis(ax: "Axes", times: pd.DataFrame | None) -> None:
    """Dates as short, readable labels; integer times or steps with integer ticks (no 92.5)."""
    if times is not None and pd.api.types.is_datetime64_any_dtype(times["timestamp"]):
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    else:
        integer_ticks(ax)


def integer_ticks(ax: "Axes") -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def lead_one(df: pd.DataFrame) -> pd.DataFrame:
    """The one-step-ahead rows of a predictions table (all rows of a horizon-1 table)."""
    return df[df["lead"] == 1] if "lead" in df else df


def with_times(df: pd.DataFrame, times: pd.DataFrame | None) -> pd.DataFrame:
    """`df` (series_id, step, ...) with the series' `timestamp` of each step, when it has dates."""
    if times is None:
        return df
    return df.merge(times[["series_id", "step", "timestamp"]], on=["series_id", "step"], how="left")


def naive_one_step(actual: pd.DataFrame, lead1: pd.DataFrame) -> pd.DataFrame:
    """The naive one-step forecast at every target step of `actual`: the value one step before.

    The backtest's lead-1 rows give it up to the last origin; after that (the later leads of
    the last origins) it is read off `actual` itself, so the line runs as far as the actual one.
    """
    have = lead1[["series_id", "step", "naive"]]
    shifted = actual[["series_id", "step", "actual"]].rename(columns={"actual": "naive"})
    shifted = shifted.assign(step=shifted["step"] + 1)
    later = shifted[shifted["step"].isin(actual["step"]) & ~shifted["step"].isin(have["step"])]
    return pd.concat([have, later], ignore_index=True).sort_values("step")


def plot_predictions(df: pd.DataFrame, cfg: FiguresConfig, labels: Labels = Labels(),
                     times: pd.DataFrame | None = None) -> "Figure":
    """The tutorial's plot: actual vs predicted over the test range (first series, lead 1 and the last lead)."""
    fig, ax = _new(cfg)
    whole = df[df["series_id"] == df["series_id"].iloc[0]]
    x = "timestamp" if times is not None else "step"
    first, title = lead_one(whole), "One-step-ahead forecast on the test range"
    actual = whole.drop_duplicates("step").sort_values("step")
    naive = with_times(naive_one_step(actual, first), times)
    first, actual = with_times(first, times), with_times(actual, times)
    h = int(whole["lead"].max()) if "lead" in whole else 1
    ax.plot(actual[x], actual["actual"], label="Actual", linewidth=2)
    line, = ax.plot(first[x], first["model"], label=f"Predicted{' 1 step ahead' if h > 1 else ''} ({labels.model})",
                    linestyle="--")
    member_range(ax, first, x, line.get_color())
    if h > 1:
        last = with_times(whole[whole["lead"] == h], times)
        ax.plot(last[x], last["model"], label=f"Predicted {h} steps ahead ({labels.model})", linestyle=":")
        title = f"Forecasts 1 and {h} steps ahead on the test range"
    ax.plot(naive[x], naive["naive"], label="Naive (last value)", linewidth=0.8, alpha=0.6)
    ax.set(title=f"{title} — {labels.model}", xlabel=labels.time, ylabel=labels.value)
    time_axis(ax, times)
    outside_legend(fig)
    ax.grid(alpha=0.3)
    return fig


def member_range(ax: "Axes", rows: pd.DataFrame, x: str, color: str) -> None:
    """An ensemble's spread: the band between its lowest and highest member's forecast (rows from a
    backtest with member_min/member_max columns; nothing for a single model)."""
    if "member_min" in rows:
        ax.fill_between(rows[x], rows["member_min"], rows["member_max"], color=color, alpha=0.2, linewidth=0,
                        label="Range of the ensemble's members")


def plot_loss(history: dict, cfg: FiguresConfig, labels: Labels = Labels()) -> "Figure":
    """Training and validation loss per epoch of one network (log scale), its best epoch marked."""
    fig, ax = _new(cfg)
    epochs = range(1, len(history["train_loss"]) + 1)
    ax.plot(epochs, history["train_loss"], label="Training loss")
    ax.plot(epochs, history["val_loss"], label="Validation loss")
    if history.get("best_epoch"):
        ax.axvline(history["best_epoch"], color="grey", linestyle=":", label=f"Best epoch ({history['best_epoch']})")
    positive = min(history["train_loss"] + history["val_loss"], default=0) > 0  # a perfect fit has no log scale
    ax.set(title=f"Training loss (MSE) — {labels.model}", xlabel="Epoch", ylabel="MSE",
           yscale="log" if positive else "linear")
    integer_ticks(ax)
    outside_legend(fig)
    ax.grid(alpha=0.3)
    return fig


def plot_losses(histories: dict[str, dict], cfg: FiguresConfig, labels: Labels = Labels(), note: str = "") -> "Figure":
    """Every network's training (solid) and validation (dashed) loss per epoch, one colour each,
    its best epoch a dot on its validation line (log scale): an ensemble's or a hybrid's members,
    by name ({"GRU-64 L24 seed 42": history.json, ...}); `note` says what has no loss (the
    statistical members, fitted rather than trained)."""
    if len(histories) == 1:
        return plot_loss(next(iter(histories.values())), cfg, labels)
    from matplotlib.lines import Line2D

    fig, ax = _new(cfg)
    values = []
    for name, h in histories.items():
        epochs = np.arange(1, len(h["train_loss"]) + 1)
        line, = ax.plot(epochs, h["train_loss"], label=name, linewidth=1.2)
        ax.plot(epochs, h["val_loss"], color=line.get_color(), linestyle="--", linewidth=1.2)
        if h.get("best_epoch"):
            ax.plot([h["best_epoch"]], [h["val_loss"][h["best_epoch"] - 1]], "o", color=line.get_color(), markersize=4)
        values += h["train_loss"] + h["val_loss"]
    positive = min(values, default=0) > 0
    title = f"Training loss (MSE) of each network — {labels.model}" + (f"\n{note}" if note else "")
    ax.set(title=title, xlabel="Epoch", ylabel="MSE", yscale="log" if positive else "linear")
    integer_ticks(ax)
    ax.grid(alpha=0.3)
    kinds = (Line2D([], [], color="black", linewidth=1.2, label="training (solid)"),
             Line2D([], [], color="black", linestyle="--", linewidth=1.2, label="validation (dashed)"),
             Line2D([], [], color="black", marker="o", linestyle="", markersize=4, label="best epoch"))
    outside_legend(fig, extra=kinds)
    return fig


def member_name(cfg) -> str:
    """A network of an ensemble as the loss figure names it: "GRU-64 L24 seed 42" (cell, hidden
    size, window length, seed) from its resolved config."""
    return f"{cfg.model.cell.upper()}-{cfg.model.hidden_size} L{cfg.window.seq_length} seed {cfg.train.seed}"


def plot_residuals(df: pd.DataFrame, cfg: FiguresConfig, labels: Labels = Labels(),
                   times: pd.DataFrame | None = None) -> "Figure":
    """Residuals (actual - predicted, lead 1) over time and their histogram."""
    fig, (ax_t, ax_h) = _new(cfg, 2, width_ratios=(3, 1))
    df = with_times(lead_one(df), times)
    x = "timestamp" if times is not None else "step"
    resid = df["actual"] - df["model"]
    ax_t.plot(df[x], resid, linewidth=0.8)
    ax_t.axhline(0, color="grey", linewidth=0.8)
    ax_t.set(title=f"Residuals of the one-step forecast on the test range — {labels.model}", xlabel=labels.time,
             ylabel=f"Actual - predicted ({labels.value})")
    time_axis(ax_t, times)
    ax_h.hist(resid, bins=30, orientation="horizontal")
    ax_h.set(title="Distribution", xlabel="Count")
    return fig


def plot_error_by_lead(per_lead: dict[str, dict[str, list[float]]], cfg: FiguresConfig,
                       labels: Labels = Labels()) -> "Figure":
    """MASE per lead time of each forecaster on the backtest (lower is better)."""
    fig, ax = _new(cfg)
    for name, m in sorted(per_lead.items(), key=lambda kv: kv[0] != "model"):  # the model first
        leads = range(1, len(m["mase"]) + 1)
        ax.plot(leads, m["mase"], marker="o", label=labels.model if name == "model" else BASELINES.get(name, name),
                linewidth=2 if name == "model" else 1)
    ax.set(title="Error by lead time on the backtest (lower is better)", xlabel="Lead time (steps ahead)",
           ylabel="MASE")
    integer_ticks(ax)
    outside_legend(fig)
    ax.grid(alpha=0.3)
    return fig


def render_all(df: pd.DataFrame, history: dict, cfg: FiguresConfig, per_lead: dict | None = None,
               labels: Labels = Labels(), times: pd.DataFrame | None = None,
               histories: dict[str, dict] | None = None, note: str = "") -> dict[str, "Figure"]:
    """Every figure by name; `times`: the series' dates by (series_id, step), for a series read
    from a file. error_by_lead only when per-lead metrics are given for more than one lead (at
    horizon 1 it is one column of points: the metrics table says it better). The loss figure
    shows every network of `histories` (an ensemble's, by name) when given, else `history`'s."""
    figs = {
        "prediction": plot_predictions(df, cfg, labels, times),
        "loss": plot_losses(histories, cfg, labels, note) if histories else plot_loss(history, cfg, labels),
        "residuals": plot_residuals(df, cfg, labels, times),
    }
    if per_lead and len(next(iter(per_lead.values()))["mase"]) > 1:
        figs["error_by_lead"] = plot_error_by_lead(per_lead, cfg, labels)
    return figs


def plot_sample(frames: dict[str, pd.DataFrame], cfg: FiguresConfig, labels: Labels = Labels(),
                times: pd.DataFrame | None = None) -> "Figure":
    """One-step-ahead forecasts of a few series of many (e.g. best, median, worst), one row each."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(cfg.width, cfg.height * len(frames) * 0.7), dpi=cfg.dpi, layout="constrained")
    x = "timestamp" if times is not None else "step"
    for ax, (label, df) in zip(fig.subplots(len(frames), 1, squeeze=False)[:, 0], frames.items()):
        one = with_times(lead_one(df).sort_values("step"), times)
        ax.plot(one[x], one["actual"], label="Actual", linewidth=2)
        line, = ax.plot(one[x], one["model"], label=f"Predicted ({labels.model})", linestyle="--")
        member_range(ax, one, x, line.get_color())
        ax.plot(one[x], one["naive"], label="Naive (last value)", linewidth=0.8, alpha=0.6)
        ax.set(title=f"{label}: {plain(df['series_id'].iloc[0])}", xlabel=labels.time, ylabel=labels.value)
        time_axis(ax, times)
        ax.grid(alpha=0.3)
    outside_legend(fig)
    return fig


DOT_LIMIT = 30  # up to this many series, MASE per series is one row each; beyond, its distribution


def plot_series_mase(by_series: pd.DataFrame, cfg: FiguresConfig, labels: Labels = Labels()) -> "Figure":
    """MASE per series on the backtest of the model and every baseline, readable at any number of
    series: up to DOT_LIMIT series one row each (a dot per forecaster, best series at the top),
    beyond that the share of series at or below each MASE (empirical CDFs; further left is
    better). Log scale when the values span more than 10x."""
    found = {name: label for name, label in {"model": labels.model, **BASELINES}.items() if f"{name}_mase" in by_series}
    n = len(by_series)
    values = np.concatenate([by_series[f"{name}_mase"].to_numpy(float) for name in found])
    finite = values[np.isfinite(values) & (values > 0)]
    log = len(finite) > 0 and finite.max() > 10 * finite.min()
    if n <= DOT_LIMIT:
        from matplotlib.figure import Figure

        rows = by_series.sort_values("model_mase", ascending=False, na_position="first", kind="stable")
        fig = Figure(figsize=(cfg.width, max(cfg.height, 1.6 + 0.28 * n)), dpi=cfg.dpi, layout="constrained")
        ax = fig.add_subplot()
        y = np.arange(n)
        for name, label in found.items():
            v = rows[f"{name}_mase"].to_numpy(float)
            ax.plot(v, y, "o" if name == "model" else "|", markersize=7 if name == "model" else 10,
                    label=f"{label} (median {np.nanmedian(v):.3g})" if np.isfinite(v).any() else label,
                    zorder=3 if name == "model" else 2)
        ax.set_yticks(y, [plain(s) for s in rows["series_id"]])
        ax.set(title=f"MASE per series on the backtest ({n} series; lower is better)", xlabel="MASE",
               xscale="log" if log else "linear")
        ax.grid(alpha=0.3, axis="x")
    else:
        fig, ax = _new(cfg)
        for name, label in found.items():
            v = np.sort(by_series[f"{name}_mase"].to_numpy(float))
            v = v[np.isfinite(v) & ((v > 0) if log else True)]
            if len(v):
                ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", linewidth=2 if name == "model" else 1,
                        label=f"{label} (median {np.median(v):.3g})")
        ax.set(title=f"MASE per series on the backtest ({n} series; further left is better)", xlabel="MASE",
               ylabel="Share of series with at most this MASE", xscale="log" if log else "linear", ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    outside_legend(fig)
    return fig


def sample_predictions(scores: store.StageRef, backtests: Sequence[store.StageRef]) -> dict[str, pd.DataFrame]:
    """The backtest rows of the sample series the evaluate stage chose, by label ("only", "best", ...)."""
    sample = read_metrics(scores.path)["sample"]
    bucket = read_by_series(scores.path).set_index("series_id")["bucket"]
    return {label: read_predictions(backtests[int(bucket.loc[sid])].path, [sid]) for label, sid in sample.items()}


def sample_times(scores: store.StageRef, series: Sequence[store.StageRef]) -> tuple[pd.DataFrame | None, dict]:
    """The dates (series_id, step, timestamp) of the sample series, None for integer times; and the
    series' metadata (source, the file's column names), read from the buckets that hold them."""
    sample = read_metrics(scores.path)["sample"]
    bucket = read_by_series(scores.path).set_index("series_id")["bucket"]
    wanted: dict[int, list[str]] = {}
    for sid in sample.values():
        wanted.setdefault(int(bucket.loc[sid]), []).append(sid)
    columns, meta = read_series_schema(series[next(iter(wanted))].path)
    if "timestamp" not in columns:
        return None, meta
    parts = [read_series(series[b].path, ["series_id", "step", "timestamp"], ids)[0] for b, ids in wanted.items()]
    return pd.concat(parts, ignore_index=True), meta


@task(**stage_task(STAGE))
def figures_task(plan, fig_cfg: FiguresConfig, name: str, scores: store.StageRef,
                 backtests: tuple[store.StageRef, ...], series: tuple[store.StageRef, ...],
                 model: store.StageRef, members: tuple[store.StageRef, ...] = (),
                 member_names: tuple[str, ...] = (), note: str = "") -> dict:
    """Write figures/*.png from the backtest (scores: combined, backtests: per bucket), the training
    history (model: a train entry, or an ensemble's, holding its best member's; members: an
    ensemble's networks' train entries, named by member_names, each one's loss drawn; note: what
    has no loss) and the series' dates and names (series: per bucket, as backtests); `name` names
    the forecaster ("GRU", "ensemble of 3"). Return the StageRef. Many series: a sample and MASE
    per series."""

    def compute(w: store.EntryWriter) -> dict:
        frames = sample_predictions(scores, backtests)
        per_lead = read_metrics(scores.path)["per_lead"]
        df = pd.concat(list(frames.values()), ignore_index=True)
        times, meta = sample_times(scores, series)
        labels = Labels.of(name, meta)
        histories = {n: read_history(m.path) for n, m in zip(member_names, members)} or None
        figs = render_all(df, read_history(model.path), fig_cfg, per_lead, labels, times, histories, note)
        if "only" not in frames:
            figs["prediction"] = plot_sample(frames, fig_cfg, labels, times)
            figs["series_mase"] = plot_series_mase(read_by_series(scores.path), fig_cfg, labels)
        for figure, fig in figs.items():
            fig.savefig(w.path(figure_file(figure)), dpi=fig_cfg.dpi)
        log.info("figures: %s", ", ".join(f"{n}.png" for n in figs))
        return {"figures": [figure_file(n) for n in figs]}

    return build(plan, compute)
