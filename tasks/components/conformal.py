"""Split-conformal prediction intervals, per lead time: pure numpy.

Calibrate on validation residuals (never the test range): for level 1 - alpha, the half-width
at lead h is the ceil((n + 1)(1 - alpha))-th smallest |residual| at that lead. Under
exchangeability the interval y_hat +- q covers the truth with probability >= 1 - alpha.
"""

from __future__ import annotations

import math

import numpy as np


def conformal_halfwidths(residuals: np.ndarray, levels: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Half-widths per level and lead from calibration residuals (n, horizon) -> {level: (horizon,)}."""
    r = np.abs(np.asarray(residuals, dtype=float))
    if r.ndim == 1:
        r = r[:, None]
    n = r.shape[0]
    out = {}
    for level in levels:
        k = math.ceil((n + 1) * level)
        if n == 0:
            q = np.full(r.shape[1], np.nan)
        elif k > n:  # too few calibration points for this level: the interval is unbounded
            q = np.full(r.shape[1], np.inf)
        else:
            q = np.sort(r, axis=0)[k - 1]
        out[level_name(level)] = q
    return out


def level_name(level: float) -> str:
    """0.8 -> '80' (the key used in tables and files)."""
    return f"{round(level * 100):d}"


def interval_stats(y: np.ndarray, yhat: np.ndarray, halfwidth: np.ndarray) -> dict[str, float]:
    """Empirical coverage and mean width of yhat +- halfwidth over y, both (n, horizon)."""
    y, yhat = np.asarray(y, dtype=float), np.asarray(yhat, dtype=float)
    inside = np.abs(y - yhat) <= halfwidth
    return {"coverage": float(inside.mean()), "mean_width": float(np.mean(2 * np.broadcast_to(halfwidth, y.shape)))}


def calibrate(scores: np.ndarray, levels: tuple[float, ...]) -> dict:
    """Score half-widths {level: (horizon,)} from calibration scores (n, horizon), and how they were found.

    Per lead when every level has enough points (n >= level / (1 - level)); else the scores are
    divided by each lead's mean score and pooled over leads (n * horizon points), the quantile
    scaled back per lead. A level still out of reach is clipped at the largest score and named
    in "clipped" (the exact split-conformal interval would be unbounded).
    """
    s = np.abs(np.asarray(scores, dtype=float))
    s = s[:, None] if s.ndim == 1 else s
    n, h = s.shape
    profile = np.ones(h)
    if n and not all(math.ceil((n + 1) * lv) <= n for lv in levels) and h > 1:
        profile = s.mean(axis=0)
        profile = np.where(profile > 0, profile, 1.0)
        method, pooled = "pooled over leads", (s / profile).reshape(-1, 1)
    else:
        method, pooled = "per lead", s
    widths = conformal_halfwidths(pooled, levels)
    clipped = [k for k, q in widths.items() if np.isinf(q).any()]
    for k in clipped:
        widths[k] = np.where(np.isinf(widths[k]), pooled.max(axis=0), widths[k])
    widths = {k: q * profile for k, q in widths.items()}
    return {"method": method, "n_calibration": int(n), "halfwidths": widths, "clipped": clipped}
