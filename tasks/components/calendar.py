"""Calendars of time series: the frequency of a set of times (inferred), its grid, what comes next.

A frequency is text, one per file (every series shares it): a pandas alias, a month anchor,
business days or an integer step (tasks/components/frequency.py, with the seasons it implies).

Time zones: a sub-daily frequency is a fixed duration (an hour is 3600 s, across a daylight saving
change too), so its grid is laid in absolute time; a day or longer is a calendar step, so its grid
is laid in the series' local wall-clock time (a day across a DST change is 23 or 25 hours long,
and still one day). Checks and grids below work on zone-free times in that frame (`naive`) and
put the zone back (`zoned`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries import offsets as po
from pandas.tseries.frequencies import to_offset

from tasks.components.frequency import DAY, INTEGER_RE, OBSERVED, describe, is_subdaily, offset_of
from tasks.components.zones import format_offset, naive, zoned
from tasks.errors import InputError

_MAX_LISTED = 5
_MAX_GRID_FACTOR = 20  # a candidate grid may hold at most this many times the observed points (+100)


class SeriesTimes(Mapping):
    """The times of many series held as one array sorted by series then time: a read-only
    {series id: times} mapping whose values are views (a DatetimeIndex, or int64 steps), made on
    access, so that thousands of series cost no per-series objects until one is looked at.

    ids: (n_series,) the series ids in order; times: (n_rows,) DatetimeIndex or int64 array;
    starts: (n_series + 1,) int64 offsets, series i being times[starts[i]:starts[i + 1]].
    """

    def __init__(self, ids: np.ndarray, times: Any, starts: np.ndarray) -> None:
        self.ids, self.times, self.starts = ids, times, np.asarray(starts, dtype=np.int64)
        self._where = {str(sid): i for i, sid in enumerate(ids)}

    def __getitem__(self, sid: str) -> Any:
        i = self._where[sid]
        return self.times[self.starts[i]:self.starts[i + 1]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def lengths(self) -> np.ndarray:
        """Points per series: (n_series,) int64."""
        return np.diff(self.starts)

    def steps(self) -> np.ndarray:
        """Every difference between consecutive times within a series, in ns (or steps): int64."""
        values = self.times.asi8 if isinstance(self.times, pd.DatetimeIndex) else np.asarray(self.times)
        inside = np.ones(max(len(values) - 1, 0), dtype=bool)
        inside[self.starts[1:-1] - 1] = False  # the step from one series' last time to the next one's first
        return np.diff(values)[inside]


def _fixed_step(groups: Mapping[str, Any]) -> str | None:
    """The alias shared by every series when all their steps are one fixed, unanchored duration in
    absolute time (a Tick or a Day: the same length everywhere), else None: many series on one
    step are recognised from their differences at once, anything else series by series."""
    if isinstance(groups, SeriesTimes):
        if len(groups) < 2 or groups.lengths().min() < 3:
            return None
        diffs, first = groups.steps(), next(iter(groups.values()))
    else:
        series = [t for t in groups.values() if len(t) >= 3]
        if len(series) < 2 or len(series) != len(groups):
            return None
        diffs, first = np.concatenate([np.diff(pd.DatetimeIndex(t).asi8) for t in series]), series[0]
    if len(diffs) == 0 or diffs[0] <= 0 or not (diffs == diffs[0]).all():
        return None
    alias = regular_frequency(pd.DatetimeIndex(first))
    if alias is None:
        return None
    return alias if isinstance(offset_of(alias), (po.Tick, po.Day)) else None


# --------------------------------------------------------------------------- grids


def grid(start: pd.Timestamp, frequency: str, *, periods: int | None = None,
         end: pd.Timestamp | None = None) -> pd.DatetimeIndex:
    """The times of `frequency` from `start` on: `periods` of them or up to `end`, in start's zone.

    Like pandas.date_range, a start that is not on an anchored frequency's grid rolls forward.
    """
    offset = offset_of(frequency)
    absolute = is_subdaily(offset)
    start = pd.Timestamp(start)
    s = naive(pd.DatetimeIndex([start]), absolute)[0]
    e = None if end is None else naive(pd.DatetimeIndex([pd.Timestamp(end)]), absolute)[0]
    return zoned(pd.date_range(start=s, end=e, periods=periods, freq=offset), start.tz, absolute)


def next_timestamps(last: Any, frequency: str, n: int) -> list[Any]:
    """The n times after `last` that continue `frequency` (an alias, anchor or integer step), in
    last's zone: sub-daily steps in absolute time, longer ones in local wall-clock time."""
    if n <= 0:
        return []
    if INTEGER_RE.fullmatch(str(frequency).strip()):
        step = int(frequency)
        return [int(last) + k * step for k in range(1, n + 1)]
    last = pd.Timestamp(last)
    times = grid(last, frequency, periods=n + 1)
    return list(times[1:] if times[0] == last else times[:n])


def steps_that_fit(last: Any, frequency: str, steps: int) -> int:
    """How many of the `steps` times after `last` on `frequency` pandas can hold (its Timestamp
    runs out on 2262-04-11): `steps`, or fewer where the grid runs past the end. Integer steps
    always fit. A binary search of next_timestamps: about log2(steps) grids."""
    if INTEGER_RE.fullmatch(str(frequency).strip()):
        return steps

    def fits(n: int) -> bool:
        try:
            times = next_timestamps(last, frequency, n)
        except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime, AssertionError):
            return False  # (pandas' date_range asserts on some ranges that overflow near its bounds)
        return len(times) == n

    if fits(steps):
        return steps
    lo, hi = 0, steps  # fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def check_forecast_range(ends: Mapping[str, Any], frequency: str | None, horizon: int, where: str) -> None:
    """Refuse a forecast that would run past the last time pandas can hold (2262-04-11), before
    anything is trained: InputError naming --horizon, the series and its last time, and the
    horizon that fits. ends: each series' last time (its text, or a Timestamp); `where`: the data
    file, for the message. Integer steps and generated data are never out of range."""
    if not ends or frequency is None or INTEGER_RE.fullmatch(str(frequency).strip()):
        return
    sid, last = max(((k, pd.Timestamp(v)) for k, v in ends.items()), key=lambda kv: kv[1])
    n = steps_that_fit(last, frequency, horizon)
    if n >= horizon:
        return
    who = "the series" if len(ends) == 1 else f"series {sid!r}"
    fits = f"--horizon {n} fits" if n else "no forecast past it fits"
    raise InputError("window.horizon", horizon, f"{who} in {where} ends at {fmt_time(last)}: its forecast "
                     f"{horizon} step(s) of {describe(frequency)} past that would run beyond "
                     f"{pd.Timestamp.max:%Y-%m-%d %H:%M:%S}, the last time pandas can hold; {fits}")


# --------------------------------------------------------------------------- inferring a calendar


@dataclass(frozen=True)
class GridFit:
    """How sorted times sit on the grid of `frequency` laid from the first time to the last.

    on_grid: (n,) bool per time; missing: grid times with no observation, in the times' zone.
    """

    frequency: str
    on_grid: np.ndarray
    missing: pd.DatetimeIndex
    grid_size: int

    @property
    def coverage(self) -> float:
        """Share of the grid that was observed."""
        return float(self.on_grid.sum()) / max(self.grid_size, 1)


def fit_grid(times: pd.DatetimeIndex, frequency: str, limit: int | None = None) -> GridFit | None:
    """Lay `frequency`'s grid from times[0] to times[-1] and compare; None when it would exceed `limit` points."""
    offset = offset_of(frequency)
    absolute = is_subdaily(offset)
    x = naive(times, absolute)
    if limit is not None and _estimated_size(x[0], x[-1], offset) > limit:
        return None
    try:
        g = pd.date_range(start=x[0], end=x[-1], freq=offset)
    except (ValueError, OverflowError):
        return None
    missing = g.difference(x)
    return GridFit(frequency, np.asarray(x.isin(g)), zoned(missing, times.tz, absolute), len(g))


def calendar_of(groups: Mapping[str, Any], is_integer: bool, name: str, *, holidays: str | None = None,
                fill_missing: bool = False) -> tuple[str, dict[str, Any]]:
    """The one frequency every series follows, and per series the grid times it lacks.

    groups: series id -> sorted times (a DatetimeIndex, zone-aware or not, or int64 steps);
    holidays: a parse_holidays value. Missing grid times are refused (InputError naming the
    first one) unless `fill_missing`, which returns them for the caller to add; a time off the
    grid, or a series that would more than double, is always refused.
    """
    if is_integer:
        return _integer_calendar(groups, name, fill_missing)
    if holidays is None and (fixed := _fixed_step(groups)) is not None:
        return fixed, {}
    if holidays == OBSERVED:
        holidays = observed_holidays(groups)
    freqs: dict[str, str] = {}
    for sid, t in groups.items():
        if len(t) < 3:
            continue
        f = regular_frequency(t, holidays)
        if f is None:
            best = best_fit(t, holidays)
            if best is None or not fill_missing or not best.on_grid.all():
                raise irregular(sid, t, best, name, fill_missing)
            f = best.frequency
        freqs[sid] = f
    if not freqs:
        freqs = {sid: _delta_alias(t) for sid, t in groups.items() if len(t) == 2}
    frequency = _shared(freqs, name)
    missing = {}
    for sid, t in groups.items():
        fit = fit_grid(t, frequency, _MAX_GRID_FACTOR * len(t) + 100)
        if fit is None:
            raise InputError("time_column", name, f"irregular spacing in series {sid!r}: its {len(t)} times are "
                             f"far sparser than the {frequency} grid of the other series")
        if not fit.on_grid.all() or (len(fit.missing) and not fill_missing):
            raise irregular(sid, t, fit, name, fill_missing)
        if len(fit.missing):
            missing[sid] = _checked_fill(sid, len(t), fit.missing, name)
    return frequency, missing


def regular_frequency(times: pd.DatetimeIndex, holidays: str | None = None) -> str | None:
    """The frequency whose grid from times[0] is exactly `times` (3 or more sorted times), or None.

    pandas' inference first (sub-daily in absolute time, longer in wall-clock time), then the
    anchors it lacks: a day of the month, business days with `holidays`.
    """
    found = _infer(naive(times, absolute=True))
    if found is not None and is_subdaily(offset_of(found)):
        return found
    wall = naive(times, absolute=False)
    if times.tz is not None:
        found = _infer(wall)
    if found is not None and not is_subdaily(offset_of(found)):
        return _with_holidays(found, wall, holidays)
    for f in (_month_anchor(wall), _business_days(wall, holidays)):
        if f is not None and _on_grid(wall, f):
            return f
    return None


def best_fit(times: pd.DatetimeIndex, holidays: str | None = None) -> GridFit | None:
    """The most plausible grid of irregular times: of the candidate frequencies, one that every time
    is on, covering most of its grid (else the one with most times on it); None without candidates."""
    limit = _MAX_GRID_FACTOR * len(times) + 100
    fits = [f for f in (fit_grid(times, c, limit) for c in candidates(times, holidays)) if f is not None]
    if not fits:
        return None
    whole = [f for f in fits if f.on_grid.all()]
    if whole:
        return max(whole, key=lambda f: f.coverage)
    return max(fits, key=lambda f: (f.on_grid.mean(), f.coverage))


def candidates(times: pd.DatetimeIndex, holidays: str | None = None) -> list[str]:
    """Frequencies that irregular times may follow: pandas' inference on runs of three times (most
    frequent first), a day-of-month anchor, business days, and the most common spacing."""
    absolute, wall = naive(times, True), naive(times, False)
    found: list[str] = []
    if len(times) >= 3:
        for i in np.unique(np.linspace(0, len(times) - 3, num=min(len(times) - 2, 50)).astype(int)):
            a = _infer(absolute[i:i + 3])
            if a is not None and is_subdaily(offset_of(a)):
                found.append(a)
                continue
            w = _infer(wall[i:i + 3]) if times.tz is not None else a
            if w is not None and not is_subdaily(offset_of(w)):
                found.append(w)
    out = sorted(set(found), key=lambda f: (-found.count(f), f))
    out += [_month_anchor(wall), _business_days(wall, None), _business_days(wall, holidays), _delta_alias(times)]
    return list(dict.fromkeys(f for f in out if f is not None))


def observed_holidays(groups: dict[str, pd.DatetimeIndex]) -> str | None:
    """The weekdays that any weekday-only series lacks between its first and last time, as a
    holiday spec (None when there are none)."""
    days: set[pd.Timestamp] = set()
    for t in groups.values():
        wall = naive(t, absolute=False)
        if len(wall) < 2 or (wall.day_of_week >= 5).any():
            continue
        days |= set(pd.bdate_range(wall[0].normalize(), wall[-1].normalize()).difference(wall.normalize()))
    return ",".join(sorted(d.strftime("%Y-%m-%d") for d in days)) or None


def irregular(sid: str, times: Any, fit: GridFit | None, name: str, fill_missing: bool = False) -> InputError:
    """The refusal of irregular times: the first time off the grid, or the first missing grid time
    with the observations around it, whichever comes first."""
    if fit is None:
        return InputError("time_column", name, f"irregular spacing in series {sid!r}: no regular calendar fits")
    t = pd.DatetimeIndex(times)
    off = np.flatnonzero(~fit.on_grid)
    gap = int(t.searchsorted(fit.missing[0])) if len(fit.missing) else len(t)
    if off.size and off[0] <= gap:
        i = int(off[0])
        after = f" (after {fmt_time(t[i - 1])})" if i else ""
        where = f"{fmt_time(t[i])} is not on the {fit.frequency} grid{after}"
    else:
        n = len(fit.missing)
        more = f"; {n} missing in all" if n > 1 else ""
        where = (f"expected {describe(fit.frequency)} between {fmt_time(t[gap - 1])} and {fmt_time(t[gap])} "
                 f"({fmt_time(fit.missing[0])} missing{more})")
        if not fill_missing:
            hint = "--fill-missing-dates adds missing rows"
            if isinstance(offset_of(fit.frequency), (po.BusinessDay, po.CustomBusinessDay)):
                hint += ", --holidays names holidays"
            where += f"; {hint}"
    return InputError("time_column", name, f"irregular spacing in series {sid!r}: {where}")


def _checked_fill(sid: str, n: int, missing: Any, name: str) -> Any:
    """The missing times of a series, unless adding them would more than double it."""
    if len(missing) > n:
        raise InputError("fill_missing_dates", True, f"series {sid!r} would gain {len(missing)} rows on "
                         f"{n} observed; that is not a series with a few missing dates")
    return missing


def _integer_calendar(groups: dict[str, np.ndarray], name: str, fill_missing: bool) -> tuple[str, dict]:
    """The common positive step of integer times as text, and the steps each series lacks."""
    steps, missing = {}, {}
    for sid, t in groups.items():
        if len(t) < 2:
            continue
        diffs = np.diff(t)
        values, counts = np.unique(diffs, return_counts=True)
        step = int(values[np.argmax(counts)])
        off = (t - t[0]) % step != 0
        if (diffs != step).any() and (off.any() or not fill_missing):
            i = int(np.argmax(off)) - 1 if off.any() else int(np.argmax(diffs != step))
            raise InputError("time_column", name, f"irregular spacing in series {sid!r}: "
                             f"expected step {step} between {t[i]} and {t[i + 1]}")
        steps[sid] = step
        count = int((t[-1] - t[0]) // step) + 1
        if count > len(t):
            _checked_fill(sid, len(t), range(count - len(t)), name)  # before laying a grid that large
            missing[sid] = np.setdiff1d(np.arange(t[0], t[-1] + 1, step), t)
    return str(_shared(steps, name)), missing


def _shared(freqs: dict[str, Any], name: str) -> Any:
    """Return the single frequency all series agree on."""
    if not freqs:
        raise InputError("series_length", 1, "every series has 1 point; need at least 2 to infer the frequency")
    distinct = set(freqs.values())
    if len(distinct) > 1:
        listed = ", ".join(f"{sid}={f}" for sid, f in list(freqs.items())[:_MAX_LISTED])
        raise InputError("time_column", name, f"series have different frequencies: {listed}")
    return distinct.pop()


def _infer(t: pd.DatetimeIndex) -> str | None:
    """pandas' inferred alias for sorted zone-free times, or None when irregular."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            freq = pd.infer_freq(t)
        except (ValueError, TypeError):
            return None
    return None if freq is None else getattr(freq, "freqstr", freq)


def _on_grid(x: pd.DatetimeIndex, frequency: str) -> bool:
    """Are zone-free times exactly the grid of `frequency` from x[0]?"""
    try:
        return bool(pd.date_range(start=x[0], periods=len(x), freq=offset_of(frequency)).equals(x))
    except (ValueError, OverflowError):
        return False


def _month_anchor(wall: pd.DatetimeIndex) -> str | None:
    """"kM@d" for wall-clock times on day d of every k-th month (the last day of shorter months
    when d > 28); None when most times are not a month or more apart, and for d = 1 (pandas' MS).

    d is the most common day (or a later one where it exists), k the greatest common divisor of
    the month steps: a candidate that tolerates holes and moved times (the grid check decides).
    """
    if len(wall) < 2:
        return None
    steps = np.diff(np.asarray(wall.year * 12 + wall.month))
    if (steps < 0).any() or (steps > 0).mean() <= 0.5:
        return None
    days = np.asarray(wall.day)
    values, counts = np.unique(days, return_counts=True)
    day = int(max(values[np.argmax(counts)], days.max() if (days > 28).any() else 0))
    if day == 1:
        return None
    k = int(np.gcd.reduce(steps[steps > 0]))
    return f"{k}M@{day}" if k > 1 else f"M@{day}"


def _business_days(wall: pd.DatetimeIndex, holidays: str | None) -> str | None:
    """"B", or "C:<holidays>" with holidays, when most times fall on weekdays (the grid check decides)."""
    if len(wall) < 2 or (wall.day_of_week >= 5).mean() >= 0.5:
        return None
    return f"C:{holidays}" if holidays else "B"


def _with_holidays(found: str, wall: pd.DatetimeIndex, holidays: str | None) -> str:
    """pandas' "B" becomes business days without `holidays` where the series has no row on one."""
    if found != "B" or not holidays:
        return found
    custom = f"C:{holidays}"
    return custom if _on_grid(wall, custom) else found


def _delta_alias(times: pd.DatetimeIndex) -> str | None:
    """The most common spacing as an alias: whole days of wall-clock time ("D", "7D"), else absolute."""
    if len(times) < 2:
        return None
    absolute = naive(times, True)
    values, counts = np.unique(np.diff(absolute.asi8), return_counts=True)
    step = pd.Timedelta(int(values[np.argmax(counts)]))
    if step <= pd.Timedelta(0):
        return None
    if step < DAY * 0.9:  # hours, minutes, ...: absolute
        return to_offset(step).freqstr
    days = np.diff(naive(times, False).normalize().asi8) // DAY.value
    values, counts = np.unique(days, return_counts=True)
    k = int(values[np.argmax(counts)])
    return None if k <= 0 else ("D" if k == 1 else f"{k}D")


def _estimated_size(first: pd.Timestamp, last: pd.Timestamp, offset: pd.DateOffset) -> float:
    """About how many grid times lie between two times (from one step's length at `first`)."""
    try:
        step = (first + offset) - first
    except (ValueError, OverflowError):
        return float("inf")
    return (last - first) / step + 1 if step > pd.Timedelta(0) else float("inf")


# --------------------------------------------------------------------------- words


def scalar_time(t: Any) -> Any:
    """Turn a numpy time into a Timestamp (keeping its zone) or an int."""
    return pd.Timestamp(t) if isinstance(t, (np.datetime64, datetime)) else int(t)


def fmt_time(t: Any) -> str:
    """Format a time briefly: dates without a midnight time part; other times with their UTC offset."""
    t = scalar_time(t)
    if not isinstance(t, pd.Timestamp):
        return str(t)
    if t == t.normalize():
        return t.strftime("%Y-%m-%d")
    if t.second == 0 and t.microsecond == 0 and t.nanosecond == 0:
        text = t.strftime("%Y-%m-%d %H:%M")
    else:
        text = t.strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + (format_offset(t.utcoffset()) if t.tz is not None else "")
