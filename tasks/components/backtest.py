"""Rolling-origin backtest over the test range, baselines, intervals and the baseline gate (pure).

Every test origin forecasts H steps from the true history up to it, never from its own earlier
forecasts:

    origin o (a window start), L inputs, leads h = 1..H
        history   values[o : o+L]              last observed index T = o + L - 1
        targets   values[T+h]
    naive           values[T]                  (the last value, repeated)
    seasonal naive  values[T + h - m*ceil(h/m)] (the same point of the last season observed)
    ets, theta      AutoETS, AutoTheta (and arima, AutoARIMA) of statsforecast, each series on
                    its own, from values[..T] only (tasks/components/references.py)

No refit by default: the trained model forecasts every origin. With refit_every K the model is
retrained (same config, same seed) before each block of K origins on all data strictly before
the block's first target, so a backtest costs ceil(n_test / K) extra trainings. Scoring follows
Hyndman & Koehler (2006): MASE divides by the in-sample one-step naive MAE of the training range.
The baseline gate faces the best of the baselines by default, or the one asked for, and is
decided before the test range: on the calibration origins (the validation origins without any),
where the forecaster that calibrates the intervals has seen nothing (decide_gate). A difference
within the measured seed noise is a tie, and passes; the forecast is the model's either way, and
the command line's exit status (3) and promotion follow the verdict. The test range only reports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from tasks.components.calendar import seasons_for
from tasks.components.conformal import calibrate, interval_stats, sequential_halfwidths, updated_halfwidths
from tasks.components.metrics import all_metrics, naive_scale
from tasks.components.references import REFERENCES, mstl_seasons, reference_forecasts
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


def actuals(values: np.ndarray, split: Split, idx: np.ndarray, steps: int | None = None) -> np.ndarray:
    """The true values at leads 1..steps after each origin: (n, steps)."""
    return values[split.target_index(idx, steps)]


def baselines(values: np.ndarray, split: Split, idx: np.ndarray, steps: int | None, season: int | None,
              more_seasons: tuple[int, ...] = ()) -> dict:
    """Naive and (if `season`) seasonal-naive forecasts from each origin: {name: (n, steps)}.

    Each of `more_seasons` m adds a "seasonal_naive_<m>" forecaster (the week of sub-daily data).
    """
    steps = steps or split.horizon
    last = split.last_observed(idx)
    h = np.arange(1, steps + 1)
    out = {"naive": np.repeat(values[last][:, None], steps, axis=1)}
    for i, m in enumerate((season, *more_seasons) if season else ()):
        name = "seasonal_naive" if i == 0 else f"seasonal_naive_{m}"
        out[name] = values[last[:, None] + h - m * np.ceil(h / m).astype(np.int64)]
    return out


def lead_metrics(y: np.ndarray, yhat: np.ndarray, scale: np.ndarray) -> tuple[dict, dict]:
    """Metrics per lead {metric: [H]} and their averages over leads {metric: float}; y, yhat (n, H).

    A metric that is undefined (MASE without a usable scale) is None, never NaN.
    """
    per = [all_metrics(y[:, h], yhat[:, h], scale) for h in range(y.shape[1])]
    per_lead = {k: [_finite(p[k]) for p in per] for k in per[0]}
    return per_lead, {k: _mean(v) for k, v in per_lead.items()}


def _finite(x: float | None) -> float | None:
    """x as a float, or None when it is missing or not finite (JSON has no NaN)."""
    return float(x) if x is not None and math.isfinite(x) else None


def _mean(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(np.mean(values))


def mase_note(split: Split, scales: np.ndarray) -> str | None:
    """Why MASE is undefined or partial: the series whose in-sample naive error is 0 (or unknown)."""
    bad = [sid for sid, sc in zip(split.ids, scales) if not (math.isfinite(sc) and sc > 0)]
    if not bad:
        return None
    names = ", ".join(repr(b) for b in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    what = "MASE is undefined" if len(bad) == len(scales) else f"MASE leaves out {len(bad)} series"
    return f"{what}: the in-sample one-step naive error of {names} is 0 (a constant training range)"


def series_scales(values: np.ndarray, split: Split) -> np.ndarray:
    """Each series' in-sample one-step naive MAE over its fit range (the MASE denominator): (n_series,)."""
    return np.array([naive_scale(values[slice(*s.fit_range)]) for s in split.series])


def mase_scales(values: np.ndarray, split: Split, idx: np.ndarray) -> np.ndarray:
    """Each origin's MASE scale: its series' in-sample naive MAE on the training range: (n,)."""
    return series_scales(values, split)[split.series_index(np.asarray(idx))]


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


def season_for(split: Split, season_length: int | None) -> int | None:
    """The seasonal-naive lag: `season_length` if given, else the one inferred from the frequency.

    None when unknown, or when some series has fewer points before its first test target
    than one season (the baseline would reach into the previous series).
    """
    seasons = seasons_of(split, season_length)
    return seasons[0] if seasons else None


def seasons_of(split: Split, season_length: int | None) -> tuple[int, ...]:
    """The seasonal-naive lags, main one first: (`season_length`,) when given (it overrides the
    calendar), else the split's season and the further seasons its calendar implies (the week of
    sub-daily data, where every series holds two weeks). Each must fit before the test range."""
    if season_length:
        seasons: tuple[int, ...] = (int(season_length),)
    elif split.seasons:  # the calendar's seasons, decided over all series (the same in every bucket)
        seasons = tuple(int(m) for m in split.seasons)
    elif split.season_length:
        shortest = min(s.length for s in split.series)
        seasons = (int(split.season_length), *seasons_for(split.frequency, shortest)[1:])
    else:
        return ()
    room = min(s.test[0] + split.seq_length - s.offset for s in split.series)
    for m in seasons:
        if m > room:
            log.warning("season length %d exceeds the %d points before the test range; no seasonal-naive baseline "
                        "for it", m, room)
    return tuple(m for m in seasons if m <= room)


# --------------------------------------------------------------------------- refits


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


# --------------------------------------------------------------------------- intervals and the gate


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
    "part" ("cal" or "val"): what the gate is decided on (not JSON: backtest takes them out)."""
    part = "cal" if split.count("cal") else "val"  # origins neither early stopping nor selection saw
    if hasattr(model, "for_calibration"):  # a hybrid: the weights found without these origins
        model = model.for_calibration()
    val = split.origins(part)
    pred, scales, _ = forecasts_and_scales(model, values, split, val, split.horizon, chunk)
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
            "forecasts": pred}


UPDATED = "each test origin's band adds the earlier test targets observed by then"


def sequential_bands(split: Split, idx: np.ndarray, cal_scores: np.ndarray, test_scores: np.ndarray,
                     levels: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Score half-widths of every test origin {level: (n, H)}: calibrated on the calibration
    scores (n_calibration, H) plus the test scores (n, H; rows as `idx`) of the earlier test
    origins of the same series whose target at that lead is observed at the origin
    (target_index(j, h) <= last_observed(i)); pooled over leads, all leads' observed scores
    (conformal.sequential_halfwidths: Xu & Xie 2021, EnbPI). The first test origin of a series
    gets the calibration-only half-widths; no origin reads a target after its last observed point.
    """
    idx = np.asarray(idx)
    order = np.argsort(idx, kind="stable")
    o = idx[order]  # by series (offsets ascend), then in time
    series, last = split.series_index(o), split.last_observed(o)
    start = np.searchsorted(series, series, side="left")  # the row of each series' first test origin
    h = np.arange(1, cal_scores.shape[1] + 1)
    seen = np.maximum(np.searchsorted(last, last[:, None] - h, side="right") - start[:, None], 0)
    found = sequential_halfwidths(cal_scores, levels, np.abs(test_scores)[order], start, seen)
    out = {}
    for name, q in found.items():
        out[name] = np.empty_like(q)
        out[name][order] = q
    return out


def band_columns(pred: np.ndarray, scales: np.ndarray, cal: dict, floor: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
    """lower_<level> / upper_<level> arrays (n, H) around `pred` for every calibrated level;
    scales: (n,) or (n, H) (interval_scales); cal["halfwidths"]: {level: (H,)} for every origin, or
    (n, H), each origin's own (sequential_bands), nested across levels (conformal.nested), so
    lower_95 <= lower_80 <= pred <= upper_80 <= upper_95. floor: (n,) bool, the origins whose
    history has no negative value (nonnegative_history): their bands are cut at 0, which keeps
    them nested (a monotone map of every bound)."""
    out = {}
    for name, q in cal["halfwidths"].items():
        half = _half(q, scales)
        lower, upper = pred - half, pred + half
        if floor is not None and floor.any():
            lower = np.where(floor[:, None], np.maximum(lower, 0.0), lower)
            upper = np.where(floor[:, None], np.maximum(upper, 0.0), upper)
        out[f"lower_{name}"], out[f"upper_{name}"] = lower, upper
    return out


def _half(q, scales: np.ndarray) -> np.ndarray:
    """Half-widths in the series' units (n, H): score half-widths (H,) or (n, H) times scales (n,) or (n, H)."""
    q = np.asarray(q, dtype=float)
    return (q if q.ndim == 2 else q[None, :]) * (scales if scales.ndim == 2 else scales[:, None])


def interval_report(y: np.ndarray, pred: np.ndarray, scales: np.ndarray, cal: dict) -> dict:
    """Empirical coverage (overall and per lead) and mean width of each level on the test origins;
    y, pred: (n, H); scales and cal["halfwidths"] as band_columns takes them.

    A level whose intervals have no width (every calibration residual was 0, within 1e-9 of the
    series' level) is marked zero_width: it is a point forecast, not a prediction interval.
    """
    out = {}
    level = float(np.mean(np.abs(y))) if y.size else 0.0
    for name, q in cal["halfwidths"].items():
        half = _half(q, scales)
        stats = interval_stats(y, pred, half)
        by_lead = (np.abs(y - pred) <= half).mean(axis=0)
        zero = bool(np.isfinite(half).all() and stats["mean_width"] <= 1e-9 * level)
        out[name] = {"coverage": _finite(stats["coverage"]), "mean_width": _finite(stats["mean_width"]),
                     "coverage_by_lead": [_finite(c) for c in by_lead], "zero_width": zero}
    return out


def interval_words(name: str, test: dict) -> str:
    """One level of the interval line: coverage and width, or why it is not an interval."""
    if test.get("zero_width"):
        return f"{name}%: zero width (every validation forecast was exact), not an interval"
    if test.get("mean_width") is None:
        return f"{name}%: not available"
    return f"{name}%: coverage {test['coverage']:.2f}, mean width {test['mean_width']:.4g}"


GATE_METRICS = ("mase", "mae")  # MASE; MAE on the same targets when MASE is undefined
TIE_RTOL = 1e-9
GATE_BASELINES = ("best", "naive", "seasonal_naive", *REFERENCES)
GATE_ORIGINS = {"cal": "calibration", "val": "validation"}
GATE_FAILED_STATUS = 3  # the command line's exit status when the gate did not pass (flows/commands.py)


def baseline_names(metrics: dict) -> list[str]:
    """Every baseline forecaster of a metrics dict, in the gate's order of preference on a tie:
    the seasonal-naive ones, naive, then the statistical references."""
    names = [k for k in metrics if k != "model"]
    return sorted(names, key=lambda k: (0 if k.startswith("seasonal_naive") else 1 if k == "naive" else 2))


def gate_candidates(metrics: dict, baseline: str = "best") -> tuple[list[str], str | None]:
    """The forecasters the gate may face for `baseline` (it faces the best of them), and a note
    when the one asked for is not there.

    best: every baseline; seasonal_naive: every seasonal-naive lag (naive when no season is
    known); naive, ets, theta, arima: that one. Raises ValueError for another name.
    """
    if baseline not in GATE_BASELINES:
        raise ValueError(f"unknown gate baseline {baseline!r} (known: {', '.join(GATE_BASELINES)})")
    every = baseline_names(metrics)
    if baseline == "best":
        return every, None
    if baseline == "seasonal_naive":
        seasonal = [k for k in every if k.startswith("seasonal_naive")]
        return (seasonal, None) if seasonal else (["naive"], "no season is known: the gate faced naive")
    if baseline in metrics:
        return [baseline], None
    return [], f"{baseline} was not computed in this backtest"


def baseline_gate(metrics: dict[str, dict[str, float | None]], undefined: dict[str, str] | None = None,
                  baseline: str = "best", tolerance: float = 0.0) -> dict:
    """Does the model beat the baseline the gate faces: by default the best of every baseline
    (naive, seasonal naive, the statistical references), or the one `baseline` names?

    Judged on MASE, or on MAE when MASE is undefined (None: a constant training range; the
    reason is taken from `undefined`). A difference within `tolerance` of the baseline's value
    (relative: the measured seed noise, see decide_gate; 1e-9 at least) is a tie, and a tie
    passes: the model is as good as the baseline as far as can be told. A value that is NaN or
    infinite is never compared: the gate fails and says why. "versus" holds the model's ratio to
    every baseline (model / baseline on the judged metric; < 1: the model is better), whichever
    one the gate faced.
    """
    names, note = gate_candidates(metrics, baseline)
    out = {"asked": baseline, "metric": None, "baseline": names[0] if names else baseline, "model": None,
           "baseline_value": None, "passed": False, "tie": False, "tolerance": float(tolerance), "versus": {}}
    if not names:
        return {**out, "reason": note}
    metric = next((m for m in GATE_METRICS if all(metrics[k].get(m) is not None for k in ("model", *names))), None)
    out["metric"] = metric
    if metric is None:
        return {**out, "reason": "no metric is defined for the model and the baseline"}
    reasons = [note] if note else []
    if metric != GATE_METRICS[0]:
        reasons.append(f"judged on {metric.upper()}: {(undefined or {}).get('mase', 'MASE is undefined')}")
    if reasons:
        out["reason"] = "; ".join(reasons)
    values = {k: float(metrics[k][metric]) for k in ("model", *names)}
    if not all(math.isfinite(v) for v in values.values()):
        bad = next(k for k, v in values.items() if not math.isfinite(v))
        return {**out, "model": _finite(values["model"]), "reason": f"{bad} {metric.upper()} is {values[bad]}"}
    base = min(names, key=lambda k: values[k])
    model, ref = values["model"], values[base]
    tie = math.isclose(model, ref, rel_tol=max(TIE_RTOL, float(tolerance)), abs_tol=0.0)
    versus = {}
    for k in baseline_names(metrics):
        v = _finite(metrics[k].get(metric))
        versus[k] = {"value": v, "ratio": _finite(model / v) if v else (1.0 if v == 0 and model == 0 else None)}
    return {**out, "baseline": base, "model": model, "baseline_value": ref, "passed": bool(tie or model < ref),
            "tie": tie, "versus": versus}


def pretest_scores(values: np.ndarray, split: Split, part: str, pred: np.ndarray, seasons: tuple[int, ...],
                   references: tuple[str, ...] = ()) -> dict:
    """The model's and every baseline's scores on the origins of `part` ("cal" or "val": those
    before the test range), what the gate is decided on: {"origins": "calibration" | "validation",
    "n", "per_lead", "metrics"}. pred: the model's forecasts there (n, H), as conformal_bands made
    them (for a hybrid, the one weighted without these origins). The baselines are the test
    range's, each from the history before these origins only: naive, the seasonal-naive lags
    that fit before them (`seasons`, main first), and the `references` fitted once per series on
    the history up to its first such origin (reference_forecasts).
    """
    idx = split.origins(part)
    out = {"origins": GATE_ORIGINS[part], "n": int(len(idx)), "per_lead": {}, "metrics": {}}
    if not len(idx):
        return out
    room = min(s.part(part)[0] + split.seq_length - s.offset for s in split.series if s.count(part))
    fitting = tuple(m for m in seasons if m <= room) if seasons and seasons[0] <= room else ()
    H = split.horizon
    forecasts = {"model": pred, **baselines(values, split, idx, H, fitting[0] if fitting else None, fitting[1:])}
    if references:
        found, _ = reference_forecasts(values, split, idx, H, fitting[0] if fitting else None, tuple(references))
        forecasts.update(found)
    y, scale = actuals(values, split, idx), mase_scales(values, split, idx)
    for name, f in forecasts.items():
        out["per_lead"][name], out["metrics"][name] = lead_metrics(y, f, scale)
    return out


def network_weight(result: dict) -> float:
    """The weight a backtest result's forecaster puts on what a seed changes: a hybrid's weight on
    its networks' combination (of the hybrid that calibrates, the one the gate judges), else 1."""
    ens = result.get("ensemble") or {}
    weights = ens.get("calibration_weights") or ens.get("weights")
    return float(weights[0]) if ens.get("statistical") and weights else 1.0


def decide_gate(pretest: dict, test_metrics: dict, undefined: dict | None = None, baseline: str = "best",
                noise: dict | None = None, weight: float = 1.0) -> dict:
    """The baseline gate, decided on the origins before the test range (`pretest`: pretest_scores,
    never the test range), with ties within the measured seed noise.

    noise: {"relative": the median relative difference between two seeds of one configuration on
    these origins (tasks.validate.seed_noise; None: one seed, not measured), ...}; `weight`: the
    forecaster's weight on its networks (network_weight: a hybrid's statistical members do not
    change with the seed). The tolerance is their product. Besides baseline_gate's fields:
    "origins" and "n_origins" (what it was decided on), "noise", "decided" (False when there were
    no such origins: the gate did not pass, for want of anything to go by) and "test": the same
    pair on the test range ({"model", "baseline"} on the judged metric), to say by how much the
    model won or lost there.
    """
    relative = (noise or {}).get("relative")
    tolerance = float(relative) * float(weight) if relative is not None else 0.0
    if not pretest.get("n"):
        return {"asked": baseline, "metric": None, "baseline": baseline, "model": None, "baseline_value": None,
                "passed": False, "tie": False, "tolerance": tolerance, "versus": {}, "decided": False,
                "origins": pretest.get("origins", "validation"), "n_origins": 0, "noise": noise,
                "reason": "no validation or calibration origins before the test range to decide it on "
                          "(--val-fraction 0)"}
    gate = baseline_gate(pretest["metrics"], undefined, baseline, tolerance)
    gate.update(decided=gate["metric"] is not None, origins=pretest["origins"], n_origins=pretest["n"], noise=noise)
    metric, base = gate["metric"], gate["baseline"]
    if metric and base in test_metrics and "model" in test_metrics:
        gate["test"] = {"model": _finite(test_metrics["model"].get(metric)),
                        "baseline": _finite(test_metrics[base].get(metric))}
    return gate


def gate_line(gate: dict, horizon: int, n_origins: int) -> str:
    """The gate as one line of the summary: where it was decided (the origins before the test
    range), the baseline it faced and why that one, the verdict (a tie within the seed noise
    passes), what the forecast is, and the same pair on the test range (`n_origins` origins,
    `horizon` leads): always in the judged metric, MASE unless it is undefined."""
    name = gate["baseline"].replace("_", "-")
    before = f"{gate.get('n_origins', 0)} {gate.get('origins', 'validation')} origins before the test range"
    failed = f"the forecast is still the model's (exit status {GATE_FAILED_STATUS}; never promoted)"
    if not gate.get("decided", True) or gate.get("metric") is None or gate["model"] is None \
            or gate["baseline_value"] is None:
        return f"gate: not passed: {gate.get('reason', 'no metric to judge on')}; {failed}"
    metric = gate["metric"].upper()
    spec = ".3f" if gate["metric"] == "mase" else ".4g"
    pair = f"model {metric} {gate['model']:{spec}} vs {name} {gate['baseline_value']:{spec}}"
    diff = ratio_phrase(gate["model"], gate["baseline_value"])
    noise = (gate.get("noise") or {}).get("relative")
    tolerance = gate.get("tolerance", 0.0)
    if gate.get("tie"):
        head = f"gate: passed, a tie within the seed noise (±{_pct(tolerance)}) on the {before}: {pair} ({diff})" \
            if tolerance > TIE_RTOL else f"gate: passed, a tie on the {before}: {pair} ({diff})"
    elif gate["passed"]:
        head = f"gate: passed on the {before}: {pair} ({diff})"
    else:
        head = f"gate: FAILED on the {before}: {pair} ({diff})"
    asked = gate.get("asked", "best")
    if asked == "best" and len(gate.get("versus") or {}) > 1:
        head += f", the best of {len(gate['versus'])} baselines there"
    elif asked != "best":
        head += f", the baseline asked for (--gate-baseline {asked})"
    if not gate["passed"]:
        head += (f", more than the seed noise (±{_pct(tolerance)})" if tolerance > TIE_RTOL else
                 "; seed noise not measured (one seed: ties are exact)" if noise is None else "")
    head += "; the forecast is the model's" if gate["passed"] else f"; {failed}"
    if (test := gate.get("test")) and test.get("model") is not None and test.get("baseline") is not None:
        head += (f"; on the test range ({n_origins} origins, horizon {horizon}): {metric} {test['model']:{spec}} vs "
                 f"{test['baseline']:{spec}} ({ratio_phrase(test['model'], test['baseline'])})")
    return head + (f"; {gate['reason']}" if gate.get("reason") else "")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x >= 0.001 else f"{100 * x:.2g}%"


def ratio_phrase(model: float | None, base: float | None) -> str:
    """How a model's error compares with a baseline's, in words right both ways: "8.7x lower",
    "1.3x higher", and as a percentage of the baseline under 1.1x ("4.0% lower", "0.2% higher"),
    "equal", "exact" (model 0, baseline not), or "undefined"."""
    if model is None or base is None or not (math.isfinite(model) and math.isfinite(base)):
        return "undefined"
    if model == base:
        return "equal"
    if model == 0:
        return "exact"
    if base == 0:
        return "the baseline is exact"
    r = base / model if model < base else model / base
    side = "lower" if model < base else "higher"
    if r < 1.095:
        return f"{_pct(abs(model / base - 1))} {side}"
    return f"{r:.1f}x {side}" if r < 1000 else f"over 1000x {side}"


def metric_text(value: float | None, spec: str = ".3f") -> str:
    """A metric for a summary line: formatted, or "undefined" for None."""
    return "undefined" if value is None else format(value, spec)


# --------------------------------------------------------------------------- the whole backtest


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
    cal_scores, part = cal.pop("scores"), cal.pop("part")
    pretest = pretest_scores(values, split, part, cal.pop("forecasts"), seasons, tuple(references))
    test_scores = (y - pred) / (scores if scores.ndim == 2 else scores[:, None])
    bands = {**cal, "halfwidths": sequential_bands(split, idx, cal_scores, test_scores, levels)}
    final = updated_halfwidths(cal_scores, levels, test_scores)
    bounds = band_columns(pred, scores, bands, nonnegative_history(values, split, idx))
    df = backtest_frame(split, idx, {"actual": y, **forecasts, **bounds, **spread})
    intervals = {**cal, "halfwidths": {k: [_finite(x) for x in q] for k, q in cal["halfwidths"].items()},
                 "final_halfwidths": {k: [_finite(x) for x in q] for k, q in final.items()}, "updated": UPDATED,
                 "test": interval_report(y, pred, scores, bands)}
    intervals["zero_width"] = [k for k, t in intervals["test"].items() if t["zero_width"]]
    model_mse, naive_mse = metrics["model"]["mse"], metrics["naive"]["mse"]
    ratio = _finite(naive_mse / model_mse) if model_mse else None
    if ratio is None:
        undefined["naive_mse_ratio"] = "both test MSEs are 0" if naive_mse == 0 else "the model's test MSE is 0"
    return df, {"metrics": metrics, "per_lead": per_lead, "n_test": len(idx), "horizon": H,
                "naive_mse_ratio": ratio, "season_length": seasons[0] if seasons else None,
                "seasons": list(seasons), "frequency": split.frequency, "intervals": intervals,
                "pretest": pretest, "gate": decide_gate(pretest, metrics, undefined, gate_baseline),
                "undefined": undefined,
                "references": refs, "refit_every": refit_every, "refits": n_fits,
                **({"ensemble": ensemble_report(spread, scale, model)} if spread else {})}


def member_forecasts(ensemble, each: np.ndarray, season: int | None, mstl: tuple[int, ...]
                     ) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
    """The test forecasts a hybrid's statistical members have just made ({name: (forecasts (n,
    steps), fallbacks)}), for the references of the same name and season policy to use instead of
    fitting and forecasting again: the same model, history and origins give the same forecasts.
    each: the forecasts of ensemble.active() (k, n, steps)."""
    out = {}
    for m, f in zip(ensemble.active(), each):
        stat = m.model if not m.is_network else None
        if stat is not None and getattr(stat, "season", None) == (int(season) if season and season > 1 else None) \
                and getattr(stat, "mstl", ()) == tuple(mstl):
            out[stat.name] = (f, dict(getattr(stat, "fallback", {})))
    return out


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
            "mean_spread": _finite(float(np.mean(width))) if width.size else None}


# --------------------------------------------------------------------------- one-step holdout scores


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
    return {name: {k: _finite(v) for k, v in all_metrics(df["actual"].to_numpy(), df[name].to_numpy(), scale).items()}
            for name in forecasters}


def one_step_forecasts(model: torch.nn.Module, values: np.ndarray, split: Split, chunk: int = 65_536) -> np.ndarray:
    """One-step (lead 1) model forecasts for every test origin, in the series' units: (n_test,)."""
    return model_forecasts(model, values, split, split.origins("test"), 1, chunk)[:, 0]


# --------------------------------------------------------------------------- many series


def series_metrics(df: pd.DataFrame, scales: dict[str, float]) -> pd.DataFrame:
    """Metrics of each series over its test origins and leads, for every forecaster column.

    df: a backtest frame (series_id, lead, actual, model, naive[, seasonal_naive...][, ets, theta, arima], ...);
    scales: each series' MASE denominator. Returns one row per series: series_id, n (rows), and
    <forecaster>_<metric> for metric in mse, rmse, mae, smape, mase (NaN where the series'
    in-sample naive error is 0: MASE is undefined for it).
    """
    forecasters = [c for c in df if c in ("model", "naive", *REFERENCES) or c.startswith("seasonal_naive")]
    scale = df["series_id"].map(scales).to_numpy(float)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)  # MASE undefined: NaN, per series
    y = df["actual"].to_numpy(float)
    cols = {"series_id": df["series_id"].to_numpy(object)}
    for f in forecasters:
        e = y - df[f].to_numpy(float)
        den = np.abs(y) + np.abs(df[f].to_numpy(float))
        cols[f"{f}_se"] = e**2
        cols[f"{f}_ae"] = np.abs(e)
        cols[f"{f}_sape"] = np.divide(200.0 * np.abs(e), den, out=np.zeros_like(den), where=den > 0)
        cols[f"{f}_ase"] = np.abs(e) / scale
    means = pd.DataFrame(cols).groupby("series_id", sort=False).mean()
    out = pd.DataFrame({"series_id": means.index.astype(str),
                        "n": df.groupby("series_id", sort=False).size().loc[means.index].to_numpy()})
    for f in forecasters:
        out[f"{f}_mse"] = means[f"{f}_se"].to_numpy()
        out[f"{f}_rmse"] = np.sqrt(means[f"{f}_se"].to_numpy())
        out[f"{f}_mae"] = means[f"{f}_ae"].to_numpy()
        out[f"{f}_smape"] = means[f"{f}_sape"].to_numpy()
        out[f"{f}_mase"] = means[f"{f}_ase"].to_numpy()
    return out


def _weighted(values: list, weights: list[float]) -> float | None:
    """The weighted mean; None when any value is undefined (as `lead_metrics` treats one)."""
    if any(v is None for v in values):
        return None
    w = np.asarray(weights, dtype=float)
    return float(np.dot(np.asarray(values, dtype=float), w) / w.sum()) if w.sum() else None


def combine(results: list[dict]) -> dict:
    """The backtest metrics of all buckets as one (metrics.json of the evaluate stage).

    One bucket: its result as it is. Several: per-lead means weighted by each bucket's test
    origins (rmse from the combined mse; undefined anywhere, undefined combined), over the
    forecasters every bucket has (the references included); interval coverage and width weighted
    likewise, the calibration of each bucket kept per bucket (its halfwidths and final_halfwidths:
    each bucket's forecast reads its own bucket's); the baseline gate on the combined
    metrics, facing the baseline the buckets' gates were asked to face.
    """
    if len(results) == 1:
        return {**results[0], "n_buckets": 1}
    first, n = results[0], [r["n_test"] for r in results]
    names = [k for k in first["per_lead"] if all(k in r["per_lead"] for r in results)]
    per_lead = combine_per_lead([r["per_lead"] for r in results], n, names, first["horizon"])
    metrics = {name: {k: _mean(v) for k, v in per.items()} for name, per in per_lead.items()}
    test = {}
    for level in first["intervals"]["test"]:
        stats = [r["intervals"]["test"][level] for r in results]
        test[level] = {"coverage": _weighted([s["coverage"] for s in stats], n),
                       "mean_width": _weighted([s["mean_width"] for s in stats], n),
                       "coverage_by_lead": [_weighted([s["coverage_by_lead"][h] for s in stats], n)
                                            for h in range(first["horizon"])],
                       "zero_width": all(s.get("zero_width", False) for s in stats)}
    iv = [r["intervals"] for r in results]
    intervals = {"levels": first["intervals"]["levels"], "scale": first["intervals"]["scale"],
                 "origins": first["intervals"].get("origins", "validation"),
                 **({"updated": first["intervals"]["updated"]} if "updated" in first["intervals"] else {}),
                 "method": "/".join(sorted({i["method"] for i in iv})), "test": test,
                 "n_calibration": sum(i["n_calibration"] for i in iv),
                 "clipped": sorted({c for i in iv for c in i["clipped"]}),
                 "zero_width": [k for k, t in test.items() if t["zero_width"]],
                 "per_bucket": [{"n_calibration": i["n_calibration"], "halfwidths": i["halfwidths"],
                                 **({"final_halfwidths": i["final_halfwidths"]} if "final_halfwidths" in i else {})}
                                for i in iv]}
    undefined = {k: v for r in results for k, v in r.get("undefined", {}).items()}
    model_mse, naive_mse = metrics["model"]["mse"], metrics["naive"]["mse"]
    ratio = _finite(naive_mse / model_mse) if model_mse else None
    if ratio is None:
        undefined["naive_mse_ratio"] = "both test MSEs are 0" if naive_mse == 0 else "the model's test MSE is 0"
    seasons = [m for m in first.get("seasons", []) if f"seasonal_naive_{m}" in names or m == first["season_length"]]
    refs = combine_references([r.get("references") or {"names": []} for r in results], names)
    pretest = combine_pretest([r["pretest"] for r in results], first["horizon"])
    gate = decide_gate(pretest, metrics, undefined, first["gate"].get("asked", "best"))
    return {**{k: first.get(k) for k in ("horizon", "season_length", "frequency", "refit_every")},
            "seasons": seasons, "metrics": metrics, "per_lead": per_lead, "n_test": sum(n),
            "naive_mse_ratio": ratio, "intervals": intervals, "pretest": pretest, "gate": gate, "references": refs,
            "undefined": undefined, "refits": sum(r["refits"] for r in results), "n_buckets": len(results),
            **({"ensemble": {**first["ensemble"], "mean_spread": _weighted([r["ensemble"]["mean_spread"]
                                                                             for r in results], n)}}
               if all("ensemble" in r for r in results) else {})}


def combine_per_lead(parts: list[dict], n: list[int], names: list[str], horizon: int) -> dict:
    """Per-lead metrics of several buckets as one: each metric's mean weighted by the buckets'
    origins `n` (rmse from the combined mse), for the forecasters `names`."""
    per_lead: dict = {}
    for name in names:
        per = {metric: [_weighted([p[name][metric][h] for p in parts], n) for h in range(horizon)]
               for metric in ("mse", "mae", "smape", "mase")}
        per["rmse"] = [None if v is None else float(np.sqrt(v)) for v in per["mse"]]
        per_lead[name] = {k: per[k] for k in ("mse", "rmse", "mae", "smape", "mase")}
    return per_lead


def combine_pretest(parts: list[dict], horizon: int) -> dict:
    """Several buckets' pretest_scores as one, weighted by their origins (the forecasters every
    bucket with origins has)."""
    used = [p for p in parts if p["n"]]
    out = {"origins": parts[0]["origins"], "n": sum(p["n"] for p in used), "per_lead": {}, "metrics": {}}
    if used:
        names = [k for k in used[0]["per_lead"] if all(k in p["per_lead"] for p in used)]
        out["per_lead"] = combine_per_lead([p["per_lead"] for p in used], [p["n"] for p in used], names, horizon)
        out["metrics"] = {name: {k: _mean(v) for k, v in per.items()} for name, per in out["per_lead"].items()}
    return out


def combine_references(infos: list[dict], kept: list[str]) -> dict:
    """The references' info of every bucket as one: the names kept (every bucket has them) and
    every series that fell back to the naive forecast, per reference."""
    fallback: dict[str, dict[str, str]] = {}
    for info in infos:
        for name, series in info.get("fallback", {}).items():
            if name in kept:
                fallback.setdefault(name, {}).update(series)
    return {**infos[0], "names": [k for k in infos[0]["names"] if k in kept], "fallback": fallback}


def sample_series(by_series: pd.DataFrame, metric: str = "model_mase") -> dict[str, str]:
    """Series to show in figures: best, median and worst by `metric` (finite values), or the only one."""
    ok = by_series[np.isfinite(by_series[metric].to_numpy(float))].sort_values(metric, kind="stable")
    if ok.empty:
        ok = by_series
    if len(ok) == 1:
        return {"only": str(ok["series_id"].iloc[0])}
    ids = ok["series_id"].astype(str).tolist()
    return {"best": ids[0], "median": ids[(len(ids) - 1) // 2], "worst": ids[-1]}


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
