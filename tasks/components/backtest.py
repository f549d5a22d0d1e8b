"""The rolling-origin backtest: forecasting over origins, the model's and its baselines', their
interval calibration, and the scores a search ranks members by (pure).

Every test origin forecasts H steps from the true history up to it, never from its own earlier
forecasts (the origin arithmetic and the baselines: tasks/components/baselines.py; ets, theta:
AutoETS, AutoTheta (and arima, AutoARIMA) of statsforecast, each series on its own, from
values[..T] only: tasks/components/references.py).

No refit by default: the trained model forecasts every origin. With refit_every K the model is
retrained (same config, same seed) before each block of K origins on all data strictly before
the block's first target, so a backtest costs ceil(n_test / K) extra trainings. The gate is
tasks/components/gate.py's, the bands tasks/components/intervals.py's, and many buckets' results
become one in tasks/components/aggregate.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from tasks.components.baselines import (
    actuals, baselines, finite, lead_metrics, mase_note, mase_scales, series_scales, seasons_of,
)
from tasks.components.conformal import calibrate, updated_halfwidths
from tasks.components.gate import decide_gate, pretest_scores
from tasks.components.intervals import UPDATED, band_columns, interval_report, sequential_bands
from tasks.components.metrics import all_metrics
from tasks.components.references import member_forecasts, mstl_seasons, reference_forecasts
from tasks.components.series_data import predict, series_data
from tasks.components.split import Split
from tasks.errors import NumericalError

log = logging.getLogger(__name__)

Refit = Callable[[Split], torch.nn.Module]  # a split with train/val ranges -> a freshly trained model


class NonFiniteForecast(NumericalError):
    """The model forecast NaN or an infinity somewhere: nothing built from it is published."""


def model_forecasts(
    model: torch.nn.Module, values: np.ndarray, split: Split, idx: np.ndarray, steps: int, chunk: int = 65_536
) -> np.ndarray:
    """Forecasts of `steps` values after each origin `idx`, in the series' own units: (n, steps).

    Raises NonFiniteForecast when any forecast is NaN or infinite.
    """
    data = series_data(values, split)
    out = predict(model, data, torch.as_tensor(idx), chunk, series_units=True, steps=steps).double().numpy()
    k = split.series_index(np.asarray(idx))
    mean = np.array([sc.mean for sc in split.scalers], dtype=float)[k]
    std = np.array([sc.std for sc in split.scalers], dtype=float)[k]
    return require_finite(out * std[:, None] + mean[:, None], split, idx)  # each series' scaler undone


def require_finite(pred: np.ndarray, split: Split, idx: np.ndarray) -> np.ndarray:
    """`pred` (n, steps) if every value is finite; else NonFiniteForecast naming how many and where."""
    bad = ~np.isfinite(pred)
    if bad.any():
        row = int(np.flatnonzero(bad.any(axis=1))[0])
        sid = split.ids[int(split.series_index(np.asarray(idx)[row : row + 1])[0])]
        raise NonFiniteForecast(f"the model forecast {int(bad.sum())} non-finite value(s) of {bad.size} (first in "
                                f"series {sid!r}, origin {int(split.local(np.asarray(idx)[row : row + 1])[0])}); "
                                "nothing was published")
    return pred


Predict = Callable[[np.ndarray, Split, np.ndarray, int], np.ndarray]  # (values, split, origins, steps) -> (n, steps)


def as_predict(model: torch.nn.Module | Predict, chunk: int = 65_536) -> Predict:
    """A forecaster as a function of (values, split, origins, steps): a network through
    `model_forecasts`, an ensemble (tasks.components.ensemble.Ensemble) as it is."""
    if isinstance(model, torch.nn.Module):
        return lambda values, split, idx, steps: model_forecasts(model, values, split, idx, steps, chunk)
    return model


def score_scales(values: np.ndarray, split: Split, idx: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """What a residual is divided by for conformal scores: (n,).

    normalize="window": the input window's own std, floored at its series' window floor
    (Scaler.floor, in the series' units) as tasks.components.scaling computes it, so intervals
    widen with the level of a growing series (1 for a window with neither); otherwise the series'
    MASE scale.
    """
    idx = np.asarray(idx)
    if split.normalize != "window":
        s = mase_scales(values, split, idx)
        return np.where(np.isfinite(s) & (s > 0), s, 1.0)
    floors = np.array([sc.floor * sc.std for sc in split.scalers], dtype=float)[split.series_index(idx)]
    out = np.empty(len(idx))
    for i in range(0, len(idx), chunk):
        x = values[split.input_index(idx[i : i + chunk])]
        std = np.sqrt(((x - x.mean(axis=1, keepdims=True)) ** 2).mean(axis=1))
        s = np.maximum(std, floors[i : i + chunk])
        out[i : i + chunk] = np.where(s > 0, s, 1.0)
    return out


SPREAD_FLOOR = 0.05  # an ensemble's interval scale: member std + SPREAD_FLOOR x score_scales


def interval_scales(model, values: np.ndarray, split: Split, idx: np.ndarray, steps: int,
                    each: np.ndarray | None = None, chunk: int = 65_536) -> np.ndarray:
    """What a residual is divided by for conformal scores, per origin and lead: (n, steps).

    A single network: score_scales, the same at every lead. An ensemble (anything with
    `forecasts`; `each`: its members' forecasts (k, n, steps) if already made): the standard
    deviation of its members' forecasts plus SPREAD_FLOOR x score_scales, so the intervals widen
    where the members disagree (normalized nonconformity scores: Papadopoulos, Vovk & Gammerman
    (2011), "Regression conformal prediction with nearest neighbours", JAIR 40; Papadopoulos et al.
    (2008), ICTAI; the floor keeps a scale where every member agrees). Measured on the quality
    panel (benchmarks/RESULTS.md, 3 seeds): coverage one season ahead rose from 0.73 / 0.87 (the
    networks' median on the series' scale) to 0.748 / 0.910 at 80% / 95%.
    """
    base = score_scales(values, split, idx, chunk)[:, None]
    if not hasattr(model, "forecasts"):
        return np.broadcast_to(base, (len(base), steps)).copy()
    each = model.forecasts(values, split, idx, steps) if each is None else each
    return each.std(axis=0) + SPREAD_FLOOR * base


def forecasts_and_scales(model, values: np.ndarray, split: Split, idx: np.ndarray, steps: int,
                         chunk: int = 65_536, model_split: Split | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(forecast (n, steps), interval_scales (n, steps), the members' forecasts (k, n, steps) or
    None): an ensemble's members are forecast once, for both. model_split: the split a single
    network reads the series through, when not `split` (a refit model's scalers). The forecast
    of an origin whose history holds no negative value is floored at 0 (`floor_at_zero`)."""
    if hasattr(model, "forecasts"):
        each = model.forecasts(values, split, idx, steps)
        pred = floor_at_zero(model.combined(each), values, split, idx)
        return pred, interval_scales(model, values, split, idx, steps, each, chunk), each
    pred = floor_at_zero(as_predict(model, chunk)(values, model_split or split, idx, steps), values, split, idx)
    return pred, interval_scales(model, values, split, idx, steps, chunk=chunk), None


def nonnegative_history(values: np.ndarray, split: Split, idx: np.ndarray) -> np.ndarray:
    """Whether each origin's history (its series from the first point to the origin's last
    observed one) holds no negative value: (n,) bool. Demand, counts, sales: such a series is
    forecast, and its intervals bounded, at 0 and above."""
    idx = np.asarray(idx, dtype=np.int64)
    negatives = np.concatenate([[0], np.cumsum(np.asarray(values) < 0)])  # negatives[i]: in values[:i]
    first = np.array([s.offset for s in split.series], dtype=np.int64)[split.series_index(idx)]
    return negatives[split.last_observed(idx) + 1] == negatives[first]


def floor_at_zero(pred: np.ndarray, values: np.ndarray, split: Split, idx: np.ndarray) -> np.ndarray:
    """Forecasts (n, steps) with those of origins whose history has no negative value
    (nonnegative_history) raised to 0 where below: an intermittent series (mostly zeros) is never
    forecast below zero. Reads no target: only each origin's own history."""
    keep = nonnegative_history(values, split, idx)
    if not keep.any() or not (pred < 0).any():
        return pred
    return np.where(keep[:, None], np.maximum(pred, 0.0), pred)


def refit_forecasts(
    values: np.ndarray, split: Split, every: int, refit: Refit, steps: int, chunk: int = 65_536
) -> tuple[np.ndarray, np.ndarray, int]:
    """Origins, their forecasts (n, steps) from a model retrained before each block, and the number of fits."""
    blocks = split.refit_blocks(values, every)
    idx, preds = [], []
    for i, (sub, origins) in enumerate(blocks, 1):
        log.info("backtest refit %d/%d on %d training origins", i, len(blocks), sub.count("train"))
        preds.append(model_forecasts(refit(sub), values, sub, origins, steps, chunk))
        idx.append(origins)
    order = np.argsort(np.concatenate(idx), kind="stable")
    return np.concatenate(idx)[order], np.concatenate(preds)[order], len(blocks)


def conformal_bands(
    model: torch.nn.Module | Predict, values: np.ndarray, split: Split, levels: tuple[float, ...],
    chunk: int = 65_536,
) -> dict:
    """Split-conformal score half-widths per level and lead (Vovk et al. 2005; per lead as in
    Stankeviciute et al. 2021), calibrated on the calibration origins (the validation origins when
    the split has none): never on the test range. Scores are residuals over interval_scales; a
    hybrid ensemble's are its calibration weights' (Ensemble.for_calibration). "scores": those
    calibration scores (n_calibration, H), what sequential_bands adds the test scores to, and
    "forecasts", the forecasts they are the residuals of (n_calibration, H), on the origins of
    "part" ("cal" or "val"): what the gate is decided on, and "members", an ensemble's members'
    forecasts there ({"ensemble": the one calibrated, "each": (k, n_calibration, H)}, or None): what
    the gate's references of the same name reuse (not JSON: backtest takes them out)."""
    part = "cal" if split.count("cal") else "val"  # origins neither early stopping nor selection saw
    if hasattr(model, "for_calibration"):  # a hybrid: the weights found without these origins
        model = model.for_calibration()
    val = split.origins(part)
    pred, scales, each = forecasts_and_scales(model, values, split, val, split.horizon, chunk)
    found = np.abs((actuals(values, split, val) - pred) / scales)
    cal = calibrate(found, levels)
    origins = "calibration" if part == "cal" else "validation"
    if not cal["n_calibration"]:
        log.warning("no calibration or validation origins: no prediction intervals (the windows leave the split "
                    "no room; lower --seq-length or --horizon)")
    elif cal["clipped"]:
        log.warning("only %d %s origins: the %s%% interval(s) are clipped at the largest score",
                    cal["n_calibration"], origins, ", ".join(cal["clipped"]))
    scale = "window std" if split.normalize == "window" else "series"
    if hasattr(model, "forecasts"):
        scale = f"members' std + {SPREAD_FLOOR:g} x {scale}"
    return {**cal, "levels": list(levels), "origins": origins, "scale": scale, "scores": found, "part": part,
            "forecasts": pred, "members": None if each is None else {"ensemble": model, "each": each}}


def backtest_frame(split: Split, idx: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per (test origin, lead): series_id, target step, origin step (the last observed
    point), lead, then `columns` (n, H) raveled."""
    k = split.series_index(idx)
    n, H = next(iter(columns.values())).shape
    origin = np.repeat(split.local(split.last_observed(idx)), H)
    lead = np.tile(np.arange(1, H + 1), n)
    ids = np.array(split.ids, dtype=object)[k]
    return pd.DataFrame({"series_id": np.repeat(ids, H), "step": origin + lead, "origin": origin, "lead": lead,
                         **{c: v.ravel() for c, v in columns.items()}})


def backtest(
    model: torch.nn.Module, values: np.ndarray, split: Split, *, levels: tuple[float, ...],
    season_length: int | None = None, chunk: int = 65_536, refit_every: int = 0, refit: Refit | None = None,
    references: tuple[str, ...] = (), gate_baseline: str = "best",
) -> tuple[pd.DataFrame, dict]:
    """Predictions table (one row per test origin and lead) and the metrics of the backtest.

    The model, the baselines and the statistical `references` ("ets", "theta", "arima":
    tasks.components.references) are scored on the same targets, per lead and averaged over
    leads; intervals are calibrated on the calibration origins (the validation origins when the
    split has none), each test origin's band adding the scores of the earlier test targets
    observed by then (sequential_bands), and their coverage measured here; "halfwidths" are the
    calibration origins' alone, "final_halfwidths" add every test target (what the future
    forecast's bands use);
    the gate is decided on those calibration (or validation) origins, never the test range, facing
    `gate_baseline` (decide_gate; "pretest" holds the scores it read). The result is strict JSON: an undefined value
    is None and "undefined" says why. Raises NonFiniteForecast when the model forecasts a NaN or
    an infinity.
    """
    seasons = seasons_of(split, season_length)
    mstl = mstl_seasons(split.frequency, seasons, season_length)
    H = split.horizon
    n_fits, spread, given = 0, {}, {}
    if refit is not None and refit_every:
        idx, pred, n_fits = refit_forecasts(values, split, refit_every, refit, H, chunk)
        pred = floor_at_zero(pred, values, split, idx)
        scores = score_scales(values, split, idx)
    else:
        idx = split.origins("test")
        pred, scores, each = forecasts_and_scales(model, values, split, idx, H, chunk)
        if each is not None:  # an ensemble: its members' range
            spread = {"member_min": each.min(axis=0), "member_max": each.max(axis=0)}
            given = member_forecasts(model, each, seasons[0] if seasons else None, mstl)
    y = actuals(values, split, idx)
    forecasts = {"model": pred, **baselines(values, split, idx, H, seasons[0] if seasons else None, seasons[1:])}
    refs: dict = {"names": []}
    if references:
        found, refs = reference_forecasts(values, split, idx, H, seasons[0] if seasons else None, tuple(references),
                                          refit_every if refit is not None else 0, mstl, given)
        forecasts.update(found)
    scale = mase_scales(values, split, idx)
    per_lead, metrics = {}, {}
    for name, f in forecasts.items():
        per_lead[name], metrics[name] = lead_metrics(y, f, scale)
    undefined = {}
    if note := mase_note(split, series_scales(values, split)):
        undefined["mase"] = note
    cal = conformal_bands(model, values, split, levels, chunk)
    cal_scores, part, cal_members = cal.pop("scores"), cal.pop("part"), cal.pop("members")
    pretest = pretest_scores(values, split, part, cal.pop("forecasts"), seasons, tuple(references), cal_members,
                             season_length)
    test_scores = (y - pred) / (scores if scores.ndim == 2 else scores[:, None])
    bands = {**cal, "halfwidths": sequential_bands(split, idx, cal_scores, test_scores, levels)}
    final = updated_halfwidths(cal_scores, levels, test_scores)
    bounds = band_columns(pred, scores, bands, nonnegative_history(values, split, idx))
    df = backtest_frame(split, idx, {"actual": y, **forecasts, **bounds, **spread})
    intervals = {**cal, "halfwidths": {k: [finite(x) for x in q] for k, q in cal["halfwidths"].items()},
                 "final_halfwidths": {k: [finite(x) for x in q] for k, q in final.items()}, "updated": UPDATED,
                 "test": interval_report(y, pred, scores, bands)}
    intervals["zero_width"] = [k for k, t in intervals["test"].items() if t["zero_width"]]
    model_mse, naive_mse = metrics["model"]["mse"], metrics["naive"]["mse"]
    ratio = finite(naive_mse / model_mse) if model_mse else None
    if ratio is None:
        undefined["naive_mse_ratio"] = "both test MSEs are 0" if naive_mse == 0 else "the model's test MSE is 0"
    return df, {"metrics": metrics, "per_lead": per_lead, "n_test": len(idx), "horizon": H,
                "naive_mse_ratio": ratio, "season_length": seasons[0] if seasons else None,
                "seasons": list(seasons), "frequency": split.frequency, "intervals": intervals,
                "pretest": pretest, "gate": decide_gate(pretest, metrics, undefined, gate_baseline),
                "undefined": undefined,
                "references": refs, "refit_every": refit_every, "refits": n_fits,
                **({"ensemble": ensemble_report(spread, scale, model)} if spread else {})}


def ensemble_report(spread: dict[str, np.ndarray], scale: np.ndarray, ensemble) -> dict:
    """How far the members of an ensemble disagree: their mean range (max - min) over origins and
    leads, in the series' MASE units (so 0.5 is half an in-sample naive step); its members (those
    it forecasts with: Ensemble.active), the statistical ones among them by name ("AutoETS"), and how they combine (the weights of the
    networks and of each statistical member, for a hybrid, and those of the hybrid that calibrated
    the intervals). mean_spread is None where no series has a naive step (constant ones)."""
    usable = np.isfinite(scale) & (scale > 0)  # a constant training range has no naive step to measure by
    width = (spread["member_max"] - spread["member_min"])[usable] / scale[usable, None]
    statistical = [m.model.label for m in ensemble.members if not m.is_network]
    return {"members": len(ensemble.active()), "statistical": statistical, "combine": ensemble.combine,
            "weights": list(ensemble.weights), "calibration_weights": list(ensemble.for_calibration().weights),
            "mean_spread": finite(float(np.mean(width))) if width.size else None}


def holdout_frame(values: np.ndarray, split: Split, model_pred: np.ndarray, season: int | None) -> pd.DataFrame:
    """One row per test target (lead 1): series_id, step, actual, and each forecaster's prediction."""
    idx = split.origins("test")
    targets = split.target_index(idx, 1)[:, 0]
    df = pd.DataFrame({"series_id": np.array(split.ids, dtype=object)[split.series_index(idx)],
                       "step": split.local(targets), "actual": values[targets], "model": model_pred})
    for name, pred in baselines(values, split, idx, 1, season).items():
        df[name] = pred[:, 0]
    return df


def score_frame(df: pd.DataFrame, values: np.ndarray, split: Split) -> dict:
    """Metrics of every forecaster column of a holdout frame, with MASE scaled per series
    (None where a metric is undefined)."""
    scales = dict(zip(split.ids, series_scales(values, split)))
    scale = df["series_id"].map(scales).to_numpy(float)
    forecasters = [c for c in ("model", "naive", "seasonal_naive") if c in df]
    return {name: {k: finite(v) for k, v in all_metrics(df["actual"].to_numpy(), df[name].to_numpy(), scale).items()}
            for name in forecasters}


def one_step_forecasts(model: torch.nn.Module, values: np.ndarray, split: Split, chunk: int = 65_536) -> np.ndarray:
    """One-step (lead 1) model forecasts for every test origin, in the series' units: (n_test,)."""
    return model_forecasts(model, values, split, split.origins("test"), 1, chunk)[:, 0]


def spaced_origins(split: Split, part: str, most: int = 0) -> np.ndarray:
    """The origins of `part`, at most `most` per series (0: all), evenly spaced over each series'
    range, first and last kept: (n,), in the split's order. A long series' validation range then
    costs a statistical member (which forecasts every origin it is scored on) a fixed amount."""
    idx = split.origins(part)
    if not most or len(idx) <= most:
        return idx
    k = split.series_index(idx)
    keep = []
    for j in np.unique(k):
        rows = np.flatnonzero(k == j)
        keep.append(rows if len(rows) <= most else rows[np.unique(np.round(np.linspace(0, len(rows) - 1, most))
                                                               .astype(np.int64))])
    return idx[np.sort(np.concatenate(keep))]


def validation_scores(model: torch.nn.Module | Predict, values: np.ndarray, split: Split,
                      season_length: int | None = None,
                      chunk: int = 65_536, part: str = "val", most: int = 0) -> dict:
    """The rolling-origin backtest of `model` over the validation origins only (never the test range):
    {"metrics": {forecaster: {metric: mean over leads}}, "per_lead": ..., "n_val": origins}.

    What a sweep or a model search ranks members by. part="cal" scores the calibration origins
    instead (what a hybrid's forecasting weights add to the validation range; "n_val" then counts
    those). most: at most this many origins per series, evenly spaced (spaced_origins; 0: all).
    Raises ValueError when the part has no origins.
    """
    idx = spaced_origins(split, part, most)
    if len(idx) == 0:
        raise ValueError("no validation origins to rank by (val_fraction is 0 or the series are too short)"
                         if part == "val" else f"no {part} origins to score")
    season = season_length or split.season_length
    room = min(s.part(part)[0] + split.seq_length - s.offset for s in split.series if s.count(part))
    season = season if season and season <= room else None
    y = actuals(values, split, idx)
    pred = floor_at_zero(as_predict(model, chunk)(values, split, idx, split.horizon), values, split, idx)
    forecasts = {"model": pred,
                 **baselines(values, split, idx, split.horizon, season)}
    scale = mase_scales(values, split, idx)
    per_lead, metrics = {}, {}
    for name, f in forecasts.items():
        per_lead[name], metrics[name] = lead_metrics(y, f, scale)
    return {"metrics": metrics, "per_lead": per_lead, "n_val": len(idx), "season_length": season}
