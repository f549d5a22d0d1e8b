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


def panel_ids(n_series: int) -> list[str]:
    """Ids of a generated panel: 'sine' for one series (the tutorial), else 'sine-00000', 'sine-00001', ..."""
    return [SERIES_ID] if n_series == 1 else [f"{SERIES_ID}-{i:05d}" for i in range(n_series)]


def panel_values(index: int, seed: int = 0, **sine: Any) -> np.ndarray:
    """Series `index` of a generated panel, (n_points,).

    Series 0 is `sine_values(seed=seed, **sine)` itself (the tutorial's sine by default). Series
    i > 0 draws, from a generator seeded with (seed, i), a phase phi (0..2*pi), an amplitude factor
    a (0.5..1.5) and a level c (N(0, 1)):

        y_i(x) = a * amplitude * sin(2*pi*x/period + phi) + components + trend*x + c + noise
    """
    if index == 0:
        return sine_values(seed=seed, **sine)
    rng = np.random.default_rng([seed, index])
    phi, a, c = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5), rng.normal(0.0, 1.0)
    rest = sine_values(**{**sine, "amplitude": 0.0, "noise": 0.0})  # components and trend
    x = np.linspace(0.0, sine.get("x_max", 10 * math.pi), len(rest))
    main = a * sine.get("amplitude", 1.0) * np.sin(x * (2 * np.pi / sine.get("period", 2 * math.pi)) + phi)
    return main + rest + c + rng.normal(0.0, sine.get("noise", 0.0), size=len(rest))
