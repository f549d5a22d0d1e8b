"""Calendars of time series: the frequency of a set of times, its season, and what comes next.

A frequency is a pandas alias ("MS", "D", "h", "2W-SUN", ...) for dates, or an integer step
written as text ("1", "5") for integer times. Every series of one file shares one frequency.
"""

from __future__ import annotations

import re
import warnings
from datetime import datetime
from typing import Any, NoReturn

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from tasks.errors import InputError

_MAX_LISTED = 5
_INT_RE = re.compile(r"[+-]?\d+")
_FREQ_RE = re.compile(r"([+-]?\d*)([A-Za-z]*)(?:-[A-Za-z]+)?")
_SEASONS = {"MS": 12, "M": 12, "ME": 12, "BMS": 12, "BME": 12, "BM": 12, "QS": 4, "Q": 4, "QE": 4, "BQS": 4,
            "BQE": 4, "BQ": 4, "W": 52, "D": 7, "B": 5, "h": 24, "H": 24, "min": 60, "T": 60, "s": 60, "S": 60}
_UNITS = {
    "MS": "month", "ME": "month", "QS": "quarter", "QE": "quarter", "YS": "year", "YE": "year",
    "W": "week", "D": "day", "B": "business day", "h": "hour", "min": "minute", "s": "second",
}


def frequency_of(groups: dict[str, np.ndarray], is_integer: bool, name: str) -> str:
    """The one frequency every series' sorted times follow (InputError naming `name` otherwise).

    Many series on one fixed step (days, hours, minutes, ...) are recognised from their time
    differences at once (`_fixed_step`); anything else is inferred series by series.
    """
    if is_integer:
        return _integer_frequency(groups, name)
    return _fixed_step(groups) or _date_frequency(groups, name)


def _fixed_step(groups: dict[str, np.ndarray]) -> str | None:
    """The alias shared by every series when all their steps are one fixed, unanchored duration
    (a Tick or a Day: the same length everywhere), else None (the series-by-series path decides)."""
    series = [t for t in groups.values() if len(t) >= 3]
    if len(series) < 2 or len(series) != len(groups):
        return None
    diffs = np.concatenate([np.diff(t) for t in series])
    if len(diffs) == 0 or not (diffs == diffs[0]).all() or diffs[0] <= np.timedelta64(0):
        return None
    alias = _infer_freq(series[0])
    if alias is None:
        return None
    offset = to_offset(alias)
    return alias if isinstance(offset, (pd.offsets.Tick, pd.offsets.Day)) else None


def infer_season_length(frequency: str) -> int | None:
    """Return the usual season length for a pandas frequency alias, or None (years, integer steps)."""
    mult, base = _split_alias(frequency)
    season = _SEASONS.get(base)
    if season is None or mult == 1:
        return season
    return season // mult if mult > 1 and season % mult == 0 and season // mult >= 2 else None


def next_timestamps(last: Any, frequency: str, n: int) -> list[Any]:
    """Return the n times after `last` that continue `frequency` (an alias or an integer step)."""
    if n <= 0:
        return []
    if _INT_RE.fullmatch(str(frequency).strip()):
        step = int(frequency)
        return [int(last) + k * step for k in range(1, n + 1)]
    try:
        with warnings.catch_warnings():  # pandas warns about some aliases before refusing them
            warnings.simplefilter("ignore", FutureWarning)
            offset = to_offset(frequency)
    except (ValueError, TypeError) as exc:
        raise InputError("frequency", frequency, "not a pandas frequency alias or integer step") from exc
    return list(pd.date_range(start=pd.Timestamp(last) + offset, periods=n, freq=offset))


def _split_alias(frequency: str) -> tuple[int, str]:
    """Split an alias like '2W-SUN' into (2, 'W'); no number means 1."""
    match = _FREQ_RE.fullmatch(str(frequency).strip())
    if match is None:
        return 1, ""
    return (int(match.group(1)) if match.group(1).lstrip("+-") else 1), match.group(2)


def _integer_frequency(groups: dict[str, np.ndarray], name: str) -> str:
    """Return the common positive step of integer times as text."""
    steps: dict[str, int] = {}
    for sid, t in groups.items():
        if len(t) < 2:
            continue
        diffs = np.diff(t)
        values, counts = np.unique(diffs, return_counts=True)
        step = int(values[np.argmax(counts)])
        if (diffs != step).any():
            i = int(np.argmax(diffs != step))
            raise InputError("time_column", name, f"irregular spacing in series {sid!r}: "
                             f"expected step {step} between {t[i]} and {t[i + 1]}")
        steps[sid] = step
    return str(_shared(steps, name))


def _date_frequency(groups: dict[str, np.ndarray], name: str) -> str:
    """Infer one pandas frequency shared by every series, or raise an InputError."""
    freqs = {sid: _infer_freq(t) for sid, t in groups.items() if len(t) >= 3}
    for sid, freq in freqs.items():
        if freq is None:
            _raise_irregular(sid, groups[sid], name)
    if not freqs:
        freqs = {sid: _delta_alias(t[1] - t[0]) for sid, t in groups.items() if len(t) == 2}
    frequency = _shared(freqs, name)
    for sid, t in groups.items():
        _check_grid(sid, t, frequency, name)
    return frequency


def _shared(freqs: dict[str, Any], name: str) -> Any:
    """Return the single frequency all series agree on."""
    if not freqs:
        raise InputError("series_length", 1, "every series has 1 point; need at least 2 to infer the frequency")
    distinct = set(freqs.values())
    if len(distinct) > 1:
        listed = ", ".join(f"{sid}={f}" for sid, f in list(freqs.items())[:_MAX_LISTED])
        raise InputError("time_column", name, f"series have different frequencies: {listed}")
    return distinct.pop()


def _infer_freq(t: np.ndarray) -> str | None:
    """Return pandas' inferred alias for sorted times, or None when irregular."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            freq = pd.infer_freq(pd.DatetimeIndex(t))
        except (ValueError, TypeError):
            return None
    return None if freq is None else getattr(freq, "freqstr", freq)


def _raise_irregular(sid: str, t: np.ndarray, name: str) -> NoReturn:
    """Raise an InputError that names the usual spacing and the first place it breaks."""
    positions = np.unique(np.linspace(0, len(t) - 3, num=min(len(t) - 2, 50)).astype(int))
    found = [f for f in (_infer_freq(t[i:i + 3]) for i in positions) if f is not None]
    if found:
        guess = max(set(found), key=found.count)
    else:
        values, counts = np.unique(np.diff(t), return_counts=True)
        guess = _delta_alias(values[np.argmax(counts)])
    _check_grid(sid, t, guess, name)
    raise InputError("time_column", name, f"irregular spacing in series {sid!r}")


def _check_grid(sid: str, t: np.ndarray, frequency: str, name: str) -> None:
    """Require the times to be exactly date_range(first, len, frequency)."""
    try:
        expected = pd.date_range(start=t[0], periods=len(t), freq=frequency).to_numpy(dtype="datetime64[ns]")
        wrong = np.flatnonzero(expected != t)
    except (ValueError, OverflowError):
        wrong = np.array([1])
    if not wrong.size:
        return
    i = int(wrong[0])
    where = (f"{fmt_time(t[0])} is not on the {frequency} grid" if i == 0 else
             f"expected {_describe(frequency)} between {fmt_time(t[i - 1])} and {fmt_time(t[i])}")
    raise InputError("time_column", name, f"irregular spacing in series {sid!r}: {where}")


def _delta_alias(delta: Any) -> str:
    """Turn a time difference into a frequency alias ('D', '7D', 'h', ...)."""
    td = pd.Timedelta(delta)
    if td % pd.Timedelta(days=1) == pd.Timedelta(0):
        return "D" if td.days == 1 else f"{td.days}D"
    return to_offset(td).freqstr


def _describe(frequency: str) -> str:
    """Put a frequency alias in words, e.g. 'MS' -> '1 month', '2D' -> '2 days'."""
    n, base = _split_alias(frequency)
    unit = _UNITS.get(base)
    return f"{n} {unit}{'s' * (n != 1)}" if unit else f"spacing {frequency}"


def scalar_time(t: Any) -> Any:
    """Turn a numpy time into a Timestamp or int."""
    return pd.Timestamp(t) if isinstance(t, (np.datetime64, datetime)) else int(t)


def fmt_time(t: Any) -> str:
    """Format a time briefly: dates without a midnight time part."""
    t = scalar_time(t)
    return t.strftime("%Y-%m-%d") if isinstance(t, pd.Timestamp) and t == t.normalize() else str(t)
