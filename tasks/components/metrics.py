"""Forecast accuracy metrics: pure numpy functions returning floats."""

from __future__ import annotations

import numpy as np


def mse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean squared error."""
    return float(np.mean((np.asarray(y) - np.asarray(yhat)) ** 2))


def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(mse(y, yhat)))


def mae(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(yhat))))


def smape(y: np.ndarray, yhat: np.ndarray) -> float:
    """Symmetric MAPE in percent: mean of 200*|y - yhat| / (|y| + |yhat|); 0 where both are 0.

    A NaN forecast (or actual) makes the result NaN: it is never scored as perfect.
    """
    y, yhat = np.asarray(y, dtype=float), np.asarray(yhat, dtype=float)
    num, den = 2.0 * np.abs(y - yhat), np.abs(y) + np.abs(yhat)
    safe = np.where(den > 0, den, 1.0)
    ratio = np.where(den > 0, num / safe, np.where(num == 0, 0.0, np.nan))
    return float(100.0 * np.mean(ratio))


def naive_scale(history: np.ndarray, season: int = 1) -> float:
    """In-sample MAE of the (seasonal) naive forecast on `history`: mean |y[t] - y[t-season]|
    (NaN when the history is not longer than one season)."""
    history = np.asarray(history, dtype=float)
    if len(history) <= season:
        return float("nan")
    return float(np.mean(np.abs(history[season:] - history[:-season])))


def mase(y: np.ndarray, yhat: np.ndarray, scale: float | np.ndarray) -> float:
    """Mean absolute scaled error: mean(|y - yhat| / scale), `scale` per point or one number.

    Points whose scale is zero or not finite are left out: MASE is undefined for a series whose
    in-sample naive error is zero (a constant training range; Hyndman & Koehler 2006, section 3).
    NaN when no point is left, or when a forecast is NaN.
    """
    err = np.abs(np.asarray(y, dtype=float) - np.asarray(yhat, dtype=float))
    s = np.broadcast_to(np.asarray(scale, dtype=float), err.shape)
    ok = np.isfinite(s) & (s > 0)
    if not ok.any():
        return float("nan")
    return float(np.mean(err[ok] / s[ok]))


def all_metrics(y: np.ndarray, yhat: np.ndarray, scale: float | np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE, sMAPE and MASE of one forecast (NaN where a metric is undefined)."""
    return {
        "mse": mse(y, yhat),
        "rmse": rmse(y, yhat),
        "mae": mae(y, yhat),
        "smape": smape(y, yhat),
        "mase": mase(y, yhat, scale),
    }


def metric_text(value: float | None, spec: str = ".3f") -> str:
    """A metric for a summary line: formatted, or "undefined" for None."""
    return "undefined" if value is None else format(value, spec)
