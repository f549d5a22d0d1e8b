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
    """Symmetric MAPE in percent: mean of 200*|y - yhat| / (|y| + |yhat|); 0 where both are 0."""
    y, yhat = np.asarray(y, dtype=float), np.asarray(yhat, dtype=float)
    den = np.abs(y) + np.abs(yhat)
    ratio = np.divide(2.0 * np.abs(y - yhat), den, out=np.zeros_like(den), where=den > 0)
    return float(100.0 * np.mean(ratio))


def naive_scale(history: np.ndarray, season: int = 1) -> float:
    """In-sample MAE of the (seasonal) naive forecast on `history`: mean |y[t] - y[t-season]|."""
    history = np.asarray(history, dtype=float)
    if len(history) <= season:
        return float("nan")
    return float(np.mean(np.abs(history[season:] - history[:-season])))


def mase(y: np.ndarray, yhat: np.ndarray, scale: float | np.ndarray) -> float:
    """Mean absolute scaled error: mean(|y - yhat| / scale); `scale` per point or one number."""
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(yhat)) / np.asarray(scale)))


def all_metrics(y: np.ndarray, yhat: np.ndarray, scale: float | np.ndarray) -> dict[str, float]:
    """MSE, RMSE, MAE, sMAPE and MASE of one forecast."""
    return {
        "mse": mse(y, yhat),
        "rmse": rmse(y, yhat),
        "mae": mae(y, yhat),
        "smape": smape(y, yhat),
        "mase": mase(y, yhat, scale),
    }
