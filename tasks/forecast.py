"""Stage 6: the future. Forecast `horizon` steps past the end of every series, with conformal bands.

    refit      one entry, only with refit_full: the model retrained on every window of every series
    predict    one entry per bucket: its series' forecasts, with its bucket's calibration
    forecast   one entry: every bucket's forecasts (forecast.parquet) and figures/forecast.png

    series s:  ... values[end-L : end] | forecast leads 1..H at the next H times of its frequency
    band:      forecast +- (score half-width of the lead, from the bucket's backtest) * score scale

The score scale is computed exactly as for the calibration (backtest.interval_scales): the last
input window's std for normalize="window", else the series' MASE scale; for an ensemble, its
members' std plus a small share of that. With refit_full the
model is first retrained on every window (train, val and test) for the best epoch count found
with validation. The score half-widths are the backtest's final_halfwidths: the calibration
residuals plus every test residual (all observed once the series ended), each level found as the
calibration origins decided ("halfwidths", the calibration origins' alone, in files written before).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from prefect import task

from tasks.components.backtest import forecasts_and_scales, nonnegative_history, Predict
from tasks.components.intervals import band_columns
from tasks.components.calendar import next_timestamps
from tasks.components.zones import wall_clock
from tasks.components.ensemble import Ensemble, Member
from tasks.components.fit import retrain
from tasks.components.split import Split, concat_splits
from tasks.config import FiguresConfig, ModelConfig, TrainConfig
from tasks.formats.figures import outside_legend, plain
from tasks.formats.forecast import FORECAST_FIGURE, FORECAST_FILE, range_words, read_forecast, write_forecast
from tasks.formats.ensemble import hybrid_of
from tasks.formats.model import ModelFile, load_model, save_model
from tasks.formats.scores import read_metrics
from tasks.formats.series import read_series
from tasks.formats.window import read_window
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

_RUN_ONLY = frozenset({"device", "checkpoint_every", "log_every", "deadline"})
REFIT = StageSpec("refit", phase="forecast", packages=("torch",), run_only=_RUN_ONLY, trains=lambda inputs: True)
PREDICT = StageSpec("predict", phase="forecast", packages=("numpy", "pandas", "torch"))
STAGE = StageSpec("forecast", packages=("pandas", "matplotlib"), files=(FORECAST_FILE, FORECAST_FIGURE),
                  words=(("name", "the forecaster's name"),))


def future_times(frame: pd.DataFrame, split: Split, steps: int) -> dict[str, dict[str, list]]:
    """Per series the next `steps` integer steps and, for files, timestamps continuing the frequency in
    the series' own time zone (tasks/components/calendar.py: next_timestamps)."""
    last = frame.groupby("series_id", sort=False).tail(1).set_index("series_id")
    freq = split.frequency or "1"
    out = {}
    for sid in split.ids:
        row = last.loc[sid]
        times = {"step": next_timestamps(int(row["step"]), "1", steps)}
        if "timestamp" in last.columns:
            times["timestamp"] = next_timestamps(row["timestamp"], freq, steps)
        out[sid] = times
    return out


def future_forecast(
    model: torch.nn.Module | Predict, values: np.ndarray, split: Split, intervals: dict,
    model_split: Split | None = None,
) -> dict[str, np.ndarray]:
    """Forecast (n_series, H) after each series' end, plus lower_/upper_<level> bands of the same shape.

    model: a network, or an ensemble (tasks.components.ensemble.Ensemble; `split` is then its
    reference split); model_split: the split the model reads the series through (its scalers),
    when not `split`; intervals: the bucket's backtest intervals, whose "final_halfwidths" {level:
    (H,)} (else "halfwidths") give the bands. A series with no negative value is forecast, and
    its bands bounded, at 0 and above (backtest.floor_at_zero).
    """
    H, origins = split.horizon, split.last_origins()
    pred, scales, _ = forecasts_and_scales(model, values, split, origins, H, model_split=model_split)
    widths = intervals.get("final_halfwidths") or intervals["halfwidths"]  # calibration + every test target
    floor = nonnegative_history(values, split, origins)  # a series never below 0 is bounded at 0
    return {"forecast": pred, **band_columns(pred, scales, {"halfwidths": widths}, floor)}


def forecast_frame(split: Split, times: dict, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per series and lead: series_id, lead, step, [timestamp], forecast, lower_80, upper_80, ..."""
    H = next(iter(columns.values())).shape[1]
    rows = []
    for i, sid in enumerate(split.ids):
        t = times[sid]
        rows.append(pd.DataFrame({"series_id": sid, "lead": np.arange(1, H + 1), **t,
                                  **{c: v[i] for c, v in columns.items()}}))
    return pd.concat(rows, ignore_index=True)


def outside_history(fc: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """The series whose forecast leaves [min - span, max + span] of its own history (span = max -
    min; a constant series: exactly its value, up to rounding): one row each, series_id, lowest,
    highest (the forecast's), min, max (the history's). fc: forecast_frame rows; history: the
    series' long frame (series_id, value). What a run that forecasts anyway must say it did."""
    hist = history.groupby("series_id", sort=False)["value"].agg(["min", "max"])
    got = fc.groupby("series_id", sort=False)["forecast"].agg(lowest="min", highest="max")
    both = got.join(hist, how="inner")
    span = both["max"] - both["min"]
    tol = 1e-9 * np.maximum(1.0, np.maximum(both["min"].abs(), both["max"].abs()))
    out = both[(both["lowest"] < both["min"] - span - tol) | (both["highest"] > both["max"] + span + tol)]
    return out.reset_index()


FORECAST_PANELS = 4  # series drawn in forecast.png (one panel each); forecast.parquet holds every one


def plot_forecast(history: pd.DataFrame, fc: pd.DataFrame, cfg: FiguresConfig, season: int | None = None,
                  model: str = "RNN", meta: dict | None = None) -> "Figure":
    """History, forecast and conformal bands of the first FORECAST_PANELS series of `history`, one
    panel each (the title says how many of all); `model` names the network, `meta` (series.parquet
    metadata) the value and time columns of a file; the legend below the panels, never over the
    data. matplotlib loads only here."""
    from matplotlib.figure import Figure

    params = (meta or {}).get("params", {}) if (meta or {}).get("source") == "file" else {}
    shown = [sid for sid in dict.fromkeys(fc["series_id"]) if (history["series_id"] == sid).any()][:FORECAST_PANELS]
    shown = shown or [fc["series_id"].iloc[0]]
    total = fc["series_id"].nunique()
    fig = Figure(figsize=(cfg.width, cfg.height * (1 if len(shown) == 1 else 0.62 * len(shown))), dpi=cfg.dpi,
                 layout="constrained")
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    for ax, sid in zip(axes, shown):
        _forecast_panel(ax, history[history["series_id"] == sid], fc[fc["series_id"] == sid], season, model)
        ax.set(title=plain(sid) if len(shown) > 1 else f"{model} forecast of the next "
                                                         f"{(fc['series_id'] == sid).sum()} step(s) — {plain(sid)}",
               ylabel=plain(params.get("value_column", "Value")))
    axes[-1].set_xlabel(plain(params.get("time_column", "Time step")))
    if len(shown) > 1:
        fig.suptitle(f"{model} forecast of the next {int(fc['lead'].max())} step(s) — {len(shown)} of {total} series")
    outside_legend(fig, [axes[0]], ncols=4)
    return fig


def _forecast_panel(ax, h: pd.DataFrame, f: pd.DataFrame, season: int | None, model: str) -> None:
    """One series' recent history, its forecast and bands on `ax`."""
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.ticker import MaxNLocator

    x = "timestamp" if "timestamp" in f else "step"
    h = h.tail(max(5 * len(f), 3 * (season or 0), 60))
    if x == "timestamp":  # the data's own local time on the axis, not UTC
        h, f = h.assign(timestamp=wall_clock(h[x])), f.assign(timestamp=wall_clock(f[x]))
    ax.plot(h[x], h["value"], label="History", linewidth=1.5)
    bands = sorted((c[len("lower_"):] for c in f if c.startswith("lower_")), key=int, reverse=True)
    bands = [b for b in bands if (f[f"upper_{b}"] > f[f"lower_{b}"]).any()]  # zero width: not an interval
    for i, (alpha, name) in enumerate(zip((0.18, 0.3, 0.42, 0.54, 0.66), bands)):
        if len(f) == 1:  # one step has no band to fill: a bar, wider for the wider interval
            ax.vlines(f[x], f[f"lower_{name}"], f[f"upper_{name}"], alpha=alpha + 0.1, color="tab:orange",
                      linewidth=10 - 3 * i, label=f"{name}% interval")
        else:
            ax.fill_between(f[x], f[f"lower_{name}"], f[f"upper_{name}"], alpha=alpha, color="tab:orange",
                            linewidth=0, label=f"{name}% interval")
    joined_x, joined_y = [h[x].iloc[-1], *f[x]], [h["value"].iloc[-1], *f["forecast"]]  # from the last point on
    ax.plot(joined_x, joined_y, label=f"Forecast ({model})", color="tab:orange", marker="." if len(f) < 50 else None)
    if pd.api.types.is_datetime64_any_dtype(f[x]):
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def refit_on_everything(values: np.ndarray, split: Split, record: ModelFile, model_cfg: ModelConfig,
                        train_cfg: TrainConfig) -> tuple[torch.nn.Module, Split]:
    """(model retrained on all windows for the best epoch count, the split it read)."""
    full = split.all_origins(values)
    epochs = max(int(record.trained.get("best_epoch") or train_cfg.epochs), 1)
    log.info("forecast: refitting on all %d origins for %d epochs", full.count("train"), epochs)
    train = {**train_cfg.model_dump(), "epochs": epochs, "patience": 0}
    return retrain(values, full, model_cfg.model_dump(), train, torch.device(train_cfg.device)), full


@task(**stage_task(REFIT))
def refit_task(plan, model_cfg: ModelConfig, train_cfg: TrainConfig, splits: tuple[store.StageRef, ...],
               model: store.StageRef, group: str | None = None) -> dict:
    """Retrain the model on every window of every series (of `group`, for per-group models) for
    its best epoch count; write model.pt. Its scalers are refitted on all of each series."""

    def compute(w: store.EntryWriter) -> dict:
        torch.set_num_threads(train_cfg.threads)
        parts = [(values, sp.subset(group)) for values, sp in (read_window(ref.path) for ref in splits)]
        values, sp = concat_splits([(v, sp) for v, sp in parts if sp.series])
        _, record = load_model(model.path)
        net, full = refit_on_everything(values, sp, record, model_cfg, train_cfg)
        trained = {**record.trained, "refit_full": True}
        save_model(w.dir, net, dataclasses.replace(record, scalers=full.scalers, trained=trained))
        return {"refit_full": True}

    return build(plan, compute)


def ensemble_of(models: Sequence[store.StageRef], member_splits: Sequence[store.StageRef], combine: str,
                packed: store.StageRef | None = None, reference: Split | None = None) -> Ensemble:
    """The ensemble of train (or refit) entries, each reading the bucket through its own window
    entry; a refit member reads it with the scalers of all of each series (Split.all_origins).
    `models` are the networks that forecast (a cross-fitted ensemble's others only calibrate the
    backtest's intervals: the flow leaves them out). A hybrid's statistical members and weights
    come from its `packed` ensemble entry; they read the bucket through `reference` (the longest
    window's split) and, forecasting from the end, are fitted on all of each series."""
    members = []
    for m, s in zip(models, member_splits):
        net, record = load_model(m.path)
        values, own = read_window(s.path)
        members.append(Member(net, own.all_origins(values) if record.trained.get("refit_full") else own))
    statistical, combination = hybrid_of(packed)  # the bands come from the backtest's calibration
    members += [Member(m, reference) for m in statistical]
    return Ensemble(members, combine, weights=combination.get("weights", ()))


@task(**stage_task(PREDICT))
def predict_task(plan, series: store.StageRef, split: store.StageRef, model: store.StageRef | tuple[store.StageRef, ...],
                 backtest: store.StageRef, group: str | None = None,
                 member_splits: tuple[store.StageRef, ...] | None = None, combine: str = "median",
                 packed: store.StageRef | None = None) -> dict:
    """Forecast one bucket's series (of `group`, for per-group models) past their end
    (forecast.parquet), with the bands of its backtest's calibration; `model` is the trained
    model, or the refit one, or an ensemble's members (each reading the bucket through its entry
    of `member_splits`; `split`: the reference, the longest window), combined by `combine`, with
    a hybrid's statistical members and weights from its `packed` ensemble entry."""

    def compute(w: store.EntryWriter) -> dict:
        values, sp = read_window(split.path)
        sp = sp.subset(group)
        frame, _ = read_series(series.path)
        intervals = read_metrics(backtest.path)["intervals"]
        if isinstance(model, store.StageRef):
            net, record = load_model(model.path)
            model_split = sp.all_origins(values) if record.trained.get("refit_full") else None
        else:
            net, model_split = ensemble_of(model, member_splits, combine, packed, sp), None
        columns = future_forecast(net, values, sp, intervals, model_split)
        fc = forecast_frame(sp, future_times(frame, sp, columns["forecast"].shape[1]), columns)
        write_forecast(w.dir, fc)
        outside = outside_history(fc, frame)
        return {"rows": len(fc), "outside": {"n": len(outside), "series": outside.head(5).to_dict("records")}}

    return build(plan, compute)


@task(**stage_task(STAGE))
def forecast_task(plan, fig_cfg: FiguresConfig, name: str, predictions: tuple[store.StageRef, ...],
                  series: tuple[store.StageRef, ...]) -> dict:
    """Every bucket's forecasts in one forecast.parquet, and figures/forecast.png of the first
    series (its history from its bucket of `series`; `name` names the forecaster: "GRU",
    "ensemble of 3"); return the entry's StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        fc = pd.concat([read_forecast(ref.path) for ref in predictions], ignore_index=True)
        write_forecast(w.dir, fc)
        parts = [ref.manifest()["meta"].get("outside", {"n": 0, "series": []}) for ref in predictions]
        outside = {"n": sum(p["n"] for p in parts), "series": [r for p in parts for r in p["series"]][:5]}
        if outside["n"]:
            log.warning("forecast: %s", range_words(outside))
        history, meta = read_series(series[0].path)
        figure = plot_forecast(history, fc, fig_cfg, meta.get("season_length"), name, meta)
        figure.savefig(w.path(FORECAST_FIGURE), dpi=fig_cfg.dpi)
        first = fc.iloc[0]
        log.info("forecast: %d series x %d steps from %s", fc["series_id"].nunique(), int(fc["lead"].max()),
                 first.get("timestamp", first["step"]))
        return {"rows": len(fc), "outside": outside}

    return build(plan, compute)
