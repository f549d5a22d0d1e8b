"""What every forecast is scored against: the targets, the naive and seasonal-naive baselines,
the MASE scales and the metrics per lead (pure numpy).

    origin o (a window start), L inputs, leads h = 1..H
        history   values[o : o+L]              last observed index T = o + L - 1
        targets   values[T+h]
    naive           values[T]                  (the last value, repeated)
    seasonal naive  values[T + h - m*ceil(h/m)] (the same point of the last season observed)

Scoring follows Hyndman & Koehler (2006): MASE divides by the in-sample one-step naive MAE of the
training range. An undefined metric is None, never NaN (strict JSON).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from tasks.components.frequency import seasons_for
from tasks.components.metrics import all_metrics, naive_scale
from tasks.components.split import Split

log = logging.getLogger(__name__)


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
    per_lead = {k: [finite(p[k]) for p in per] for k in per[0]}
    return per_lead, {k: mean_or_none(v) for k, v in per_lead.items()}


def finite(x: float | None) -> float | None:
    """x as a float, or None when it is missing or not finite (JSON has no NaN)."""
    return float(x) if x is not None and math.isfinite(x) else None


def mean_or_none(values: list[float | None]) -> float | None:
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
