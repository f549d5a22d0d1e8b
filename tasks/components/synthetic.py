"""The generated series: the tutorial's sine, optionally with trend, noise and more components."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

SERIES_ID = "sine"


def sine_values(
    n_points: int = 1020, x_max: float = 10 * math.pi, amplitude: float = 1.0, period: float = 2 * math.pi,
    noise: float = 0.0, trend: float = 0.0, components: Iterable[Mapping[str, float]] = (), seed: int = 0,
    **_: Any,
) -> np.ndarray:
    """y(x) = amplitude*sin(2*pi*x/period) + sum of components + trend*x + noise, x = linspace(0, x_max, n): (n_points,).

    components: mappings with amplitude, period and phase (radians); noise: std of seeded Gaussian noise.
    """
    x = np.linspace(0.0, x_max, n_points)
    # 2*pi/period is exactly 1.0 for the default period, so the default is bit-for-bit sin(x).
    y = amplitude * np.sin(x * (2 * np.pi / period))
    for c in components:
        y = y + c["amplitude"] * np.sin(x * (2 * np.pi / c["period"]) + c["phase"])
    if trend:
        y = y + trend * x
    if noise:
        y = y + np.random.default_rng(seed).normal(0.0, noise, size=n_points)
    return y


def sine_frame(values: np.ndarray) -> pd.DataFrame:
    """A generated series in the long layout: series_id 'sine', step 0..n-1, value."""
    return pd.DataFrame(
        {
            "series_id": pd.Series([SERIES_ID] * len(values), dtype="string"),
            "step": np.arange(len(values), dtype=np.int64),
            "value": np.asarray(values, dtype=np.float64),
        }
    )
