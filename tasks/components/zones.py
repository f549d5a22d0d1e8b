"""Time zones of a series' times: zone-free times in a frame and back, the zone that a set of UTC
offsets implies, and how a zone or an offset is written (pure).

A sub-daily frequency is a fixed duration (an hour is 3600 s, across a daylight saving change
too), so its grid is laid in absolute time; a day or longer is a calendar step, so its grid is
laid in the series' local wall-clock time (a day across a DST change is 23 or 25 hours long, and
still one day). Checks and grids work on zone-free times in that frame (`naive`) and put the zone
back (`zoned`): tasks/components/calendar.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def naive(times: pd.DatetimeIndex, absolute: bool) -> pd.DatetimeIndex:
    """The times without their zone: as UTC instants (`absolute`) or as local wall-clock readings."""
    if times.tz is None:
        return times
    return times.tz_convert("UTC").tz_localize(None) if absolute else times.tz_localize(None)


def zoned(times: pd.DatetimeIndex, tz: Any, absolute: bool) -> pd.DatetimeIndex:
    """The inverse of `naive`: zone-free times back in zone `tz` (None: left as they are).

    A wall-clock time that a DST change skips moves forward to the first time that exists; one that
    it repeats is read as the first (daylight-saving) occurrence.
    """
    if tz is None:
        return times
    if absolute:
        return times.tz_localize("UTC").tz_convert(tz)
    return times.tz_localize(tz, ambiguous=np.ones(len(times), dtype=bool), nonexistent="shift_forward")


# Zones tried first when times carry offsets but no zone (zone_of_offsets): one per common set of
# daylight-saving rules, so that data from Paris or Rome reads as Europe/Berlin's identical offsets
# rather than as the alphabetically first zone that shares them (Africa/Ceuta).
PREFERRED_ZONES = ("Europe/London", "Europe/Berlin", "Europe/Helsinki", "Europe/Lisbon", "America/New_York",
                   "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Halifax", "America/Santiago",
                   "Australia/Sydney", "Australia/Adelaide", "Pacific/Auckland", "Asia/Jerusalem")


_AREAS = ("Africa", "America", "Antarctica", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific")


def zone_of_offsets(utc: pd.DatetimeIndex, offsets: np.ndarray) -> str | None:
    """An IANA zone whose UTC offset at every instant of `utc` (sorted or not, zone-aware) is the
    one written with it, `offsets` (n,) in seconds: the zone of times written with their local
    offset across a daylight saving change (2024-03-30T00:00+01:00, 2024-03-31T00:00+02:00); None
    when no zone fits. Every zone that fits gives the same local times and offsets over the data,
    so which one is named does not change a time; PREFERRED_ZONES are tried first, then every
    Area/City zone by name. Cost: each zone is tried on the instants around each change of offset
    (a few), the one found on them all."""
    from zoneinfo import available_timezones

    utc = pd.DatetimeIndex(utc).tz_convert("UTC")
    offsets = np.asarray(offsets, dtype=np.int64)
    order = np.argsort(utc.asi8, kind="stable")
    utc, offsets = utc[order], offsets[order]
    change = np.flatnonzero(np.diff(offsets))
    probe = np.unique(np.concatenate([[0, len(utc) - 1], change, change + 1]))

    def fits(zone: str, at: np.ndarray) -> bool:
        t = utc[at]
        local = t.tz_convert(zone).tz_localize(None)
        return bool(((local - t.tz_localize(None)).total_seconds().to_numpy() == offsets[at]).all())

    others = sorted(z for z in available_timezones() if z.split("/")[0] in _AREAS and "/" in z)
    for zone in dict.fromkeys([*PREFERRED_ZONES, *others]):
        try:
            if fits(zone, probe) and fits(zone, np.arange(len(utc))):
                return zone
        except (KeyError, ValueError):  # a zone this system's database lacks
            continue
    return None


def zone_name(tz: Any) -> str | None:
    """A zone as text: its IANA name ("Europe/Berlin"), "UTC", or a fixed offset ("+05:30"); None for none."""
    if tz is None:
        return None
    key = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if key:
        return str(key)
    offset = pd.Timestamp("2000-01-01", tz=tz).utcoffset()
    return "UTC" if not offset else format_offset(offset)


def format_offset(offset: Any) -> str:
    """A UTC offset (timedelta) as "+05:30"."""
    minutes = int(pd.Timedelta(offset).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def wall_clock(times: pd.Series) -> pd.Series:
    """Zone-aware times as the local wall-clock readings they show (for plotting); others unchanged."""
    if isinstance(times.dtype, pd.DatetimeTZDtype):
        return times.dt.tz_localize(None)
    return times
