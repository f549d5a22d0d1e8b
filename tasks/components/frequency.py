"""Frequencies: the text a file's times are spaced by, as pandas offsets, their seasons and their
words (pure). The calendar of a set of times (inferring a frequency, grids, zones) is
tasks/components/calendar.py.

A frequency is text, one per file (every series shares it):

    pandas alias     "MS", "D", "h", "30min", "2W-SUN", "B", "QS-OCT", "bh", ...
    month anchor     "M@15", "3M@15": every (3) month(s) on day 15; days 29-31 fall on the last
                     day of shorter months (pandas DateOffset(months=k, day=d))
    business days    "C:2023-01-16,2023-02-20": weekdays except the listed holidays;
                     "C:us-federal": weekdays except pandas' USFederalHolidayCalendar
    integer step     "1", "7" for integer times
"""

from __future__ import annotations

import re
import warnings
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries import offsets as po
from pandas.tseries.frequencies import to_offset
from pandas.tseries.holiday import USFederalHolidayCalendar

from tasks.errors import InputError


DAY = pd.Timedelta(days=1)
WEEK = pd.Timedelta(days=7)
HOLIDAY_CALENDARS = {"us-federal": USFederalHolidayCalendar}
OBSERVED = "observed"  # --holidays observed: the weekdays missing from the data are holidays
INTEGER_RE = re.compile(r"[+-]?\d+")
_ANCHOR_RE = re.compile(r"(\d*)M@(\d{1,2})")
_UNITS = {
    po.MonthBegin: "month", po.MonthEnd: "month", po.QuarterBegin: "quarter", po.QuarterEnd: "quarter",
    po.YearBegin: "year", po.YearEnd: "year", po.Week: "week", po.Day: "day", po.BusinessDay: "business day",
    po.CustomBusinessDay: "business day", po.Hour: "hour", po.Minute: "minute", po.Second: "second",
    po.BusinessHour: "business hour",
}
_MONTHLY = (po.MonthBegin, po.MonthEnd, po.BusinessMonthBegin, po.BusinessMonthEnd, po.CustomBusinessMonthBegin,
            po.CustomBusinessMonthEnd, po.WeekOfMonth, po.LastWeekOfMonth)
_QUARTERLY = (po.QuarterBegin, po.QuarterEnd, po.BQuarterBegin, po.BQuarterEnd, po.FY5253Quarter)


def offset_of(frequency: str) -> pd.DateOffset:
    """The pandas offset of a frequency (see the module docstring); InputError for anything else."""
    text = str(frequency).strip()
    if m := _ANCHOR_RE.fullmatch(text):
        months, day = int(m[1] or 1), int(m[2])
        if months >= 1 and 1 <= day <= 31:
            return pd.DateOffset(months=months, day=day)
    elif text.startswith("C:"):
        return po.CustomBusinessDay(**holiday_arguments(text[2:]))
    else:
        try:
            with warnings.catch_warnings():  # pandas warns about some aliases before refusing them
                warnings.simplefilter("ignore", FutureWarning)
                return to_offset(text)
        except (ValueError, TypeError):
            pass
    raise InputError("frequency", frequency, "not a pandas frequency alias, month anchor or integer step")


def is_subdaily(offset: pd.DateOffset) -> bool:
    """True for a fixed step shorter than a day (laid in absolute time), False for calendar steps."""
    return isinstance(offset, po.Tick) and offset.nanos < DAY.value


def holiday_arguments(spec: str) -> dict[str, Any]:
    """CustomBusinessDay keyword arguments of a holiday spec: a calendar name or comma-separated dates."""
    if spec in HOLIDAY_CALENDARS:
        return {"calendar": HOLIDAY_CALENDARS[spec]()}
    return {"holidays": [d for d in spec.split(",") if d]}


def parse_holidays(text: str | None) -> str | None:
    """Check a --holidays value: None, "observed", a calendar name or dates (YYYY-MM-DD, comma-separated).

    Returns it in canonical form (dates sorted and deduplicated); InputError naming "holidays" otherwise.
    """
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    if text in HOLIDAY_CALENDARS or text == OBSERVED:
        return text
    parts = [p.strip() for p in text.split(",") if p.strip()]
    dates = pd.to_datetime(pd.Series(parts, dtype=object), format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        bad = parts[int(np.argmax(dates.isna().to_numpy()))]
        names = ", ".join([OBSERVED, *HOLIDAY_CALENDARS])
        raise InputError("holidays", text, f"{bad!r} is not a date (YYYY-MM-DD); expected dates, or one of {names}")
    return ",".join(sorted(set(dates.dt.strftime("%Y-%m-%d"))))


def season_lengths(frequency: str | None) -> tuple[int, ...]:
    """The seasons a calendar implies, in steps, main season first (empty when none is known).

    Sub-daily: one day, then one week (30min -> (48, 336), h -> (24, 168)); business hours: one
    business day, one business week; daily: 7; business days: 5; weekly: 52; semi-monthly: 24;
    monthly (any anchor): 12; quarterly: 4; yearly, integer steps: none. A multiple step keeps a
    season only where it divides it (2h -> 12, 2D -> none).
    """
    if frequency is None or INTEGER_RE.fullmatch(str(frequency).strip()):
        return ()
    try:
        offset = offset_of(frequency)
    except InputError:
        return ()
    n = abs(offset.n) or 1
    if isinstance(offset, po.Tick):
        step = pd.Timedelta(offset)
        periods = (DAY, WEEK) if step < DAY else (WEEK,)
        return tuple(int(p // step) for p in periods if p % step == pd.Timedelta(0) and p // step >= 2)
    if isinstance(offset, po.BusinessHour):
        day0 = date(2000, 1, 1)
        hours = sum((datetime.combine(day0, e) - datetime.combine(day0, s)).seconds
                    for s, e in zip(offset.start, offset.end)) // 3600
        return _per(hours, n) + _per(5 * hours, n)
    per_year = {po.Week: 52, po.SemiMonthBegin: 24, po.SemiMonthEnd: 24}
    if isinstance(offset, (po.BusinessDay, po.CustomBusinessDay)):
        return _per(5, n)
    if isinstance(offset, po.Day):
        return _per(7, n)
    for kind, count in per_year.items():
        if isinstance(offset, kind):
            return _per(count, n)
    if isinstance(offset, _MONTHLY):
        return _per(12, n)
    if isinstance(offset, _QUARTERLY):
        return _per(4, n)
    months = getattr(offset, "kwds", {}).get("months") if type(offset) is pd.DateOffset else None
    return _per(12, months) if months else ()


def _per(count: int, n: int) -> tuple[int, ...]:
    return (count // n,) if count % n == 0 and count // n >= 2 else ()


def infer_season_length(frequency: str | None) -> int | None:
    """The main season of a frequency in steps (season_lengths' first), or None."""
    seasons = season_lengths(frequency)
    return seasons[0] if seasons else None


def seasons_for(frequency: str | None, shortest: int) -> tuple[int, ...]:
    """The calendar's seasons that a file's series can use: the main one always, a further one
    (the week of sub-daily data) only where the shortest series holds two of its cycles."""
    seasons = season_lengths(frequency)
    return seasons[:1] + tuple(s for s in seasons[1:] if shortest >= 2 * s)


def describe(frequency: str) -> str:
    """A frequency in words for messages: 'MS' -> '1 month', '30min' -> '30 minutes', 'M@15' -> '1 month'."""
    try:
        offset = offset_of(frequency)
    except InputError:
        return f"spacing {frequency}"
    if type(offset) is pd.DateOffset and "months" in offset.kwds:
        n, unit = offset.kwds["months"], "month"
    else:
        n = abs(offset.n)
        unit = next((u for kind, u in _UNITS.items() if type(offset) is kind), None)
    return f"{n} {unit}{'s' * (n != 1)}" if unit else f"spacing {frequency}"
