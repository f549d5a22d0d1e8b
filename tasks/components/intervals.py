"""Prediction intervals from conformal scores: each test origin's band, the band columns and
their coverage on the test range (pure numpy; the scores come from tasks/components/backtest.py,
the quantiles from tasks/components/conformal.py).
"""

from __future__ import annotations

import numpy as np

from tasks.components.baselines import finite
from tasks.components.conformal import interval_stats, sequential_halfwidths
from tasks.components.split import Split


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
        out[name] = {"coverage": finite(stats["coverage"]), "mean_width": finite(stats["mean_width"]),
                     "coverage_by_lead": [finite(c) for c in by_lead], "zero_width": zero}
    return out
