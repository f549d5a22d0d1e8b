"""Turn a table's text into checked, regular, gap-free time series (pure functions).

The calendar side is tasks/components/calendar.py (grids), frequency.py (frequencies, seasons) and
zones.py; reading a source is tasks/components/scan.py. One concern, about 550 lines: the user's
cells parsed (ids, times, values) and every refusal naming the rows and file it comes from; its
parsers share that row-naming context, so they stay together.
"""

from __future__ import annotations

import difflib
import logging
import re
import warnings
from contextvars import ContextVar
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.components.calendar import SeriesTimes, calendar_of, fmt_time, scalar_time
from tasks.components.zones import format_offset, zone_name, zone_of_offsets
from tasks.components.frequency import parse_holidays
from tasks.errors import InputError

log = logging.getLogger(__name__)

FILLS = ("interpolate", "ffill")
SINGLE_SERIES_ID = "series"
COLUMNS = ["series_id", "step", "timestamp", "value"]

_MAX_LISTED = 5
_INT_LIMIT = 2**62  # keeps differences of integer times inside int64
FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT_RE = re.compile(r"[+-]?\d+")
_NUM_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?", re.IGNORECASE)
_MISSING = frozenset({"", "na", "nan", "-nan", "n/a", "nat", "null", "none"})
# a staged bucket's column holding each row's 1-based row in the user's file (generate stage):
# errors name those rows, not the row's place in its bucket
SOURCE_ROW = "__rnnflow_source_row"
# a dataset's files: [(the 1-based source row each starts at, its name)], so that errors name the
# file and its own row (a frame's attrs key, read_table's; the generate entry's files.json)
SOURCE_FILES = "rnnflow_source_files"
_ROW_NUMBERS: ContextVar[np.ndarray | None] = ContextVar("rnnflow_source_rows", default=None)
_ROW_FILES: ContextVar[tuple[np.ndarray, list[str]] | None] = ContextVar("rnnflow_source_files", default=None)
# the zone found for times written with several UTC offsets, and those offsets (_one_zone -> info)
_ZONE_FOUND: ContextVar[tuple[str, list[str]] | None] = ContextVar("rnnflow_zone_found", default=None)

def prepare_series(
    df: pd.DataFrame, *, time_column: str, value_column: str,
    id_column: str | None = None, fill: str | None = None, min_length: int = 1,
    fill_missing_dates: bool = False, time_zone: str | None = None, holidays: str | None = None,
    files: list[tuple[int, str]] | None = None, dayfirst: bool | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validate one raw table and return (long frame, summary info); bad data raises InputError.

    Long frame: series_id, step (0..n-1 per series), timestamp (datetime64[ns], in the data's own
    zone when it has one, or int64 steps), value (float64), sorted by series and time.
    Times keep their zone (an offset like +05:30, a Parquet column's zone, or `time_zone`, which
    localises zone-free times and converts others); the calendar is checked in local time
    (tasks/components/calendar.py). `fill_missing_dates` adds the grid times a series lacks, then
    `fill` repairs their values with the other missing ones. Values beyond float32's range are
    refused. info: frequency, time_zone, n_series, lengths, start, end, filled (values repaired),
    added (rows added), utc_offsets (when times mixed several offsets and were read as UTC),
    zone_from_offsets (when they mixed several offsets of one zone's daylight saving rules:
    {"zone", "offsets"}, the times read in that zone: calendar.zone_of_offsets).
    Errors name rows of the user's file: the frame's `SOURCE_ROW` column where it has one (a
    staged bucket), else its own row positions; in a dataset of several files (`files`, else the
    frame's attrs[SOURCE_FILES]: [(first source row, file name)]) the file and its own row.
    """
    files = files if files is not None else df.attrs.get(SOURCE_FILES)
    token = _ROW_NUMBERS.set(source_rows(df))
    where = _ROW_FILES.set((np.array([f[0] for f in files], dtype=np.int64), [str(f[1]) for f in files])
                           if files else None)
    zone = _ZONE_FOUND.set(None)
    try:
        return _prepare(df, time_column=time_column, value_column=value_column, id_column=id_column, fill=fill,
                        min_length=min_length, fill_missing_dates=fill_missing_dates, time_zone=time_zone,
                        holidays=holidays, dayfirst=dayfirst)
    finally:
        _ZONE_FOUND.reset(zone)
        _ROW_FILES.reset(where)
        _ROW_NUMBERS.reset(token)


def source_rows(frame: pd.DataFrame) -> np.ndarray:
    """The 1-based row in the user's file of each row of `frame`: its SOURCE_ROW column (a staged
    bucket), else its own positions: (n_rows,) int64."""
    if SOURCE_ROW in frame.columns:
        return frame[SOURCE_ROW].to_numpy(dtype=np.int64)
    return np.arange(1, len(frame) + 1, dtype=np.int64)


def _prepare(
    df: pd.DataFrame, *, time_column: str, value_column: str, id_column: str | None, fill: str | None,
    min_length: int, fill_missing_dates: bool, time_zone: str | None, holidays: str | None,
    dayfirst: bool | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    if fill is not None and fill not in FILLS:
        raise InputError("fill", fill, "expected interpolate or ffill")
    holidays = parse_holidays(holidays)
    if len(df) == 0:
        raise InputError("data_path", "<frame>", "no rows")
    for field, name in (("time_column", time_column), ("value_column", value_column), ("id_column", id_column)):
        if name is not None:
            _check_column(df, field, name)
    times, is_int, offsets = _parse_times(df[time_column], time_column, time_zone, dayfirst)
    uniques, codes = _series_codes(df, id_column)
    long = pd.DataFrame({"_code": codes, "timestamp": times, "value": _parse_values(df[value_column], value_column),
                         "_row": np.arange(1, len(df) + 1)})
    long = _sorted(long, uniques, time_column)
    groups = _series_times(long, uniques, is_int)
    try:
        frequency, missing = calendar_of(groups, is_int, time_column, holidays=holidays,
                                         fill_missing=fill_missing_dates)
    except InputError as exc:
        if offsets and exc.field == "time_column":
            raise InputError(exc.field, exc.value, f"{exc.message}; the times carry UTC offsets "
                             f"{', '.join(offsets)} and were read as UTC: name their zone with --time-zone "
                             "(an IANA name such as Europe/Berlin) to check them in local time") from None
        raise
    long, added = _add_rows(long, uniques, missing)
    starts = _starts(long["_code"].to_numpy()) if added else groups.starts
    lengths = np.diff(starts)
    if int(lengths.min()) < min_length:
        i = int(np.argmin(lengths))
        sid, n = uniques[i], int(lengths[i])
        raise InputError("series_length", n, f"series {sid!r} has {n} point{'s' * (n != 1)}; "
                         f"needs at least {min_length} (window length + split)")
    filled = _fill_missing(long, uniques, value_column, fill)
    long.insert(0, "series_id", uniques[long["_code"].to_numpy()])
    long.insert(1, "step", np.arange(len(long), dtype=np.int64) - np.repeat(starts[:-1], lengths))
    stamps = long["timestamp"]
    first, last = stamps.iloc[starts[:-1]], stamps.iloc[starts[1:] - 1]
    info = {
        "frequency": frequency, "time_zone": None if is_int else zone_name(stamps.dt.tz),
        "n_series": len(uniques), "lengths": {str(k): int(v) for k, v in zip(uniques, lengths)}, "filled": filled,
        "added": added, "start": {str(k): str(scalar_time(v)) for k, v in zip(uniques, first)},
        "end": {str(k): str(scalar_time(v)) for k, v in zip(uniques, last)},
    }
    if offsets:
        info["utc_offsets"] = offsets
    if (found := _ZONE_FOUND.get()) and time_zone is None:
        info["zone_from_offsets"] = {"zone": found[0], "offsets": found[1]}
    log.debug("prepared %d series at frequency %s (%d rows added, %d values filled)", len(uniques), frequency,
              added, filled)
    return long[COLUMNS], info


def _series_codes(df: pd.DataFrame, id_column: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, codes): the distinct series ids as text, sorted, (n_series,) object; each row's index
    into them, (n_rows,) int64. Ids are cleaned once per distinct raw value, not once per row."""
    if id_column is None:
        return np.array([SINGLE_SERIES_ID], dtype=object), np.zeros(len(df), dtype=np.int64)
    raw_codes, raw = pd.factorize(df[id_column], use_na_sentinel=True)
    texts, missing = _as_text(pd.Series(raw, dtype=df[id_column].dtype))
    missing_rows = (raw_codes < 0) | missing[np.maximum(raw_codes, 0)]
    if missing_rows.any():
        raise InputError("id_column", id_column, f"missing ids in {_rows(np.flatnonzero(missing_rows))}")
    ids, inverse = np.unique(texts.to_numpy(dtype=object), return_inverse=True)  # " a" and "a" are one series
    return ids.astype(object), inverse.astype(np.int64)[raw_codes]


def _sorted(long: pd.DataFrame, ids: np.ndarray, name: str) -> pd.DataFrame:
    """Rows sorted by series then time (stable; skipped when they already are); a time that
    appears twice within one series is an InputError naming it."""
    codes = long["_code"].to_numpy()
    t = _time_keys(long["timestamp"])
    same = codes[1:] == codes[:-1]
    if (codes[1:] >= codes[:-1]).all() and (t[1:][same] > t[:-1][same]).all():
        return long
    order = np.lexsort((t, codes))
    long = long.take(order).reset_index(drop=True)
    codes, t = codes[order], t[order]
    dup = np.zeros(len(long), dtype=bool)
    twice = (codes[1:] == codes[:-1]) & (t[1:] == t[:-1])
    dup[1:] |= twice
    dup[:-1] |= twice
    if dup.any():
        code = codes[np.argmax(dup)]
        rows = long[dup & (codes == code)]
        times = ", ".join(fmt_time(x) for x in rows["timestamp"].unique()[:_MAX_LISTED])
        raise InputError("time_column", name, f"duplicate times in series {ids[code]!r}: {times} "
                         f"({_rows(rows['_row'] - 1)})")
    return long


def _time_keys(times: pd.Series) -> np.ndarray:
    """Times as int64 sort keys (ns since the epoch in UTC, or the integer steps): (n_rows,)."""
    if pd.api.types.is_datetime64_any_dtype(times.dtype):
        return pd.DatetimeIndex(times).asi8
    return times.to_numpy(dtype=np.int64)


def _starts(codes: np.ndarray) -> np.ndarray:
    """Offsets of each run of equal sorted codes, and the end: (n_series + 1,) int64."""
    cuts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    return np.concatenate([[0], cuts, [len(codes)]]).astype(np.int64)


def _series_times(long: pd.DataFrame, ids: np.ndarray, is_int: bool) -> SeriesTimes:
    """The sorted times of every series, as the calendar reads them."""
    times = long["timestamp"]
    values = times.to_numpy(dtype=np.int64) if is_int else pd.DatetimeIndex(times)
    return SeriesTimes(ids, values, _starts(long["_code"].to_numpy()))


def _add_rows(long: pd.DataFrame, ids: np.ndarray, missing: dict[str, Any]) -> tuple[pd.DataFrame, int]:
    """The frame with a row (value NaN, no source row) at every missing grid time; how many were added."""
    if not missing:
        return long, 0
    code = {str(sid): i for i, sid in enumerate(ids)}
    parts = [pd.DataFrame({"_code": code[sid], "timestamp": t, "value": np.nan, "_row": 0})
             for sid, t in missing.items()]
    added = pd.concat(parts, ignore_index=True)
    added["timestamp"] = added["timestamp"].astype(long["timestamp"].dtype)
    out = pd.concat([long, added], ignore_index=True)
    order = np.lexsort((_time_keys(out["timestamp"]), out["_code"].to_numpy()))
    return out.take(order).reset_index(drop=True), len(added)


def _check_column(df: pd.DataFrame, field: str, name: str) -> None:
    """Require exactly one column called `name`, suggesting the likeliest one otherwise."""
    names = [str(c) for c in df.columns]
    count = list(df.columns).count(name)
    if count == 1:
        return
    if count > 1:
        where = " and ".join(str(i + 1) for i, c in enumerate(df.columns) if c == name)
        raise InputError(field, name, f"{count} columns have this name (columns {where} of "
                         f"{', '.join(n if n.isprintable() else repr(n) for n in names)}): rename one")
    close = suggest_column(df, field, str(name))
    hint = f"; did you mean {close!r}?" if close else ""
    shown = ", ".join(n if n.isprintable() else repr(n) for n in names)  # a newline in a name: still one line
    raise InputError(field, name, f"no such column{hint} (columns: {shown})")


_TIME_WORDS = ("date", "time", "timestamp", "ds", "day", "week", "month", "quarter", "year", "period", "hour", "t")


def suggest_column(df: pd.DataFrame, field: str, name: str) -> str | None:
    """The column a misnamed `field` most likely means: a close spelling, else by what it holds:
    for time_column a column named like a time (date, month, ...) or holding dates; for
    value_column the one numeric column that is not a time. None when nothing fits."""
    names = [str(c) for c in df.columns]
    close = difflib.get_close_matches(name, names, n=1)
    if close:
        return close[0]
    head = df.head(20)
    columns = [(n, head.iloc[:, i]) for i, n in enumerate(names)]  # by position: a name may repeat
    timelike = [n for n, c in columns if n.strip().lower() in _TIME_WORDS or _looks_like_dates(c)]
    if field == "time_column":
        return timelike[0] if timelike else None
    if field == "value_column":
        numeric = [n for n, c in columns if n not in timelike and _looks_numeric(c)]
        return numeric[0] if len(numeric) == 1 else None
    return None


def _looks_like_dates(col: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return True
    texts = col.astype(str).str.strip()
    if texts.empty or texts.str.fullmatch(_NUM_RE.pattern).all():
        return False
    return bool(_to_datetime(texts).notna().all())


def _looks_numeric(col: pd.Series) -> bool:
    if pd.api.types.is_numeric_dtype(col.dtype):
        return True
    texts = col.astype(str).str.strip()
    texts = texts[~texts.str.lower().isin(_MISSING)]
    return not texts.empty and bool(texts.str.fullmatch(_NUM_RE.pattern, flags=re.IGNORECASE).all())


def _parse_ids(df: pd.DataFrame, id_column: str | None) -> np.ndarray:
    """Return the series id of each row as text."""
    ids, codes = _series_codes(df, id_column)
    return ids[codes]


def _parse_times(col: pd.Series, name: str, time_zone: str | None,
                 dayfirst: bool | None = None) -> tuple[Any, bool, list[str]]:
    """Parse a time column: (int64 steps, True, []) or (datetime64[ns] Series in one zone or none,
    False, the UTC offsets when the text mixed several and was read as UTC). Dates written in
    several ways, and dates like 01/02/2023 whose order no date tells (and `dayfirst` does not),
    are refused (date_order)."""
    texts: pd.Series | None = None
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        parsed = col.reset_index(drop=True)
    else:
        texts, missing = _as_text(col)
        if texts[~missing].str.fullmatch(_INT_RE.pattern).all():
            if time_zone is not None:
                raise InputError("time_zone", time_zone, f"column {name!r} holds integer steps, not dates")
            return _parse_integers(texts, missing, name), True, []
        first = date_order(texts, missing, name, dayfirst)
        parsed = _to_datetime(texts.where(~missing, None), dayfirst=bool(first))
    parsed, offsets = _one_zone(parsed, name, texts)
    local = parsed.dt.tz_localize(None) if parsed.dt.tz is not None else parsed
    bad = local.isna() | (local < pd.Timestamp.min) | (local > pd.Timestamp.max)
    if bad.any():
        shown = texts if texts is not None else col.astype(object)
        raise InputError("time_column", name, "neither dates (years 1677-2262) nor integers in "
                         f"{_rows(np.flatnonzero(bad), shown)}")
    parsed = parsed.dt.as_unit("ns")
    if time_zone is not None:
        parsed, offsets = _in_zone(parsed, time_zone, name, texts), []
    return parsed, False, offsets


# How a date is written, by its first characters: a family of formats (the time after it is free)
DATE_FAMILIES = (
    ("year first", re.compile(r"[+-]?\d{4}[-/.]\d{1,2}(?:\D|$)")),
    ("day or month first", re.compile(r"(\d{1,2})([-/.])(\d{1,2})\2(?:\d{4}|\d{2})(?:\D|$)")),
    ("with a month name", re.compile(r".*\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b",
                                     re.IGNORECASE)),
)


def date_family(text: str) -> str:
    """The way a date is written: "year first" (2024-03-31), "day or month first" (31/03/2024,
    03.31.24), "with a month name" (31 Mar 2024), or "other" (whatever pandas reads, 2024Q1, or
    not a date at all: no format of its own)."""
    for family, pattern in DATE_FAMILIES:
        if pattern.match(text):
            return family
    return "other"


def date_order(texts: pd.Series, missing: np.ndarray, name: str, dayfirst: bool | None) -> bool | None:
    """Whether dates written day or month first (01/02/2023) are day first: True, False, or None
    when the column has none. InputError naming the rows when the column writes its dates in
    several ways (year first in some rows, day or month first in others: read alike they would
    collide or scatter); when one date can only be day first and another only month first; when
    `dayfirst` (the --dayfirst option) contradicts a date; and when no date tells the order (no
    day above 12) and `dayfirst` is not given: the refusal names --dayfirst. Costs one pass over
    the distinct texts."""
    uniques, inverse = np.unique(texts[~missing].to_numpy(dtype=str), return_inverse=True)
    if not len(uniques):
        return None
    families = np.array([date_family(t) for t in uniques], dtype=object)
    rows = np.flatnonzero(~missing)
    found = [f for f in dict.fromkeys(families[inverse]) if f != "other"]  # in order of first row
    if not found:
        return None
    if len(found) > 1:
        firsts = [rows[np.argmax(families[inverse] == f)] for f in found]
        listed = "; ".join(f"{f}: {_rows([r], texts)}" for f, r in zip(found, firsts))
        raise InputError("time_column", name, f"dates written in {len(found)} ways ({listed}): one column needs one "
                         "date format")
    if found[0] != "day or month first":
        return None
    matches = [DATE_FAMILIES[1][1].match(t) for t in uniques]
    parts = np.array([m.group(1, 3) if m else (0, 0) for m in matches], dtype=np.int64)  # ("other": neither)
    first, second = parts[:, 0], parts[:, 1]
    at = {k: rows[np.argmax(np.isin(inverse, np.flatnonzero(mask)))] for k, mask in
          (("day", first > 12), ("month", second > 12))}
    if (first > 12).any() and (second > 12).any():
        raise InputError("time_column", name, "dates neither all day first nor all month first: "
                         f"{_rows([at['day']], texts)} "
                         f"can only be day first, {_rows([at['month']], texts)} only month first")
    if (first > 12).any() or (second > 12).any():
        found_first = bool((first > 12).any())
        if dayfirst is not None and dayfirst != found_first:
            which = "day" if found_first else "month"
            raise InputError("dayfirst", dayfirst, f"the dates of column {name!r} are {which} first "
                             f"({_rows([at[which]], texts)} has no other reading)")
        return found_first
    if dayfirst is not None or (first == second).all():
        return dayfirst
    example = rows[np.argmax(np.isin(inverse, np.flatnonzero(first != second)))]
    raise InputError("time_column", name, f"dates such as {_rows([example], texts)} read both day first and month "
                     "first, and no date has a day above 12 to tell: give --dayfirst on (day first: 01/02 is 1 "
                     "February) or --dayfirst off (month first: January 2)")


def _to_datetime(texts: pd.Series, dayfirst: bool = False) -> pd.Series:
    """Parse text as datetimes: one inferred format first, then each leftover row on its own
    (`dayfirst`: dates like 01/02/2023 are day first).

    datetime64 (zone-free or one zone), or object holding Timestamps when zones or offsets differ.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = _coerce(texts, dayfirst=dayfirst)
        retry = (parsed.isna() & texts.notna()).to_numpy()
        if retry.any():
            again = _coerce(texts[retry], format="mixed", dayfirst=dayfirst)
            if again.notna().any():
                merged = parsed.astype(object)
                merged[retry] = again.astype(object)
                parsed = merged
    return parsed


def _coerce(texts: pd.Series, **kwargs: Any) -> pd.Series:
    try:
        return pd.to_datetime(texts, errors="coerce", **kwargs)
    except (ValueError, TypeError, OverflowError):
        return pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ns]")


def _one_zone(parsed: pd.Series, name: str, texts: pd.Series | None) -> tuple[pd.Series, list[str]]:
    """Times in one zone: datetime64 as it is; object times all zone-free, or in one zone, made
    datetime64; several UTC offsets read as UTC (returning the offsets); a mix of times with and
    without an offset refused."""
    if parsed.dtype != object:
        return parsed, []
    stamps = [pd.NaT if pd.isna(x) else pd.Timestamp(x) for x in parsed]
    zoned = np.array([s is not pd.NaT and s.tz is not None for s in stamps])
    bare = np.array([s is not pd.NaT and s.tz is None for s in stamps])
    if zoned.any() and bare.any():
        raise InputError("time_column", name, f"times without a UTC offset ({_rows(np.flatnonzero(bare)[:1], texts)}) "
                         f"among times with one ({_rows(np.flatnonzero(zoned)[:1], texts)})")
    if not zoned.any():
        return pd.Series(pd.to_datetime(pd.Series(stamps, dtype=object)), dtype="datetime64[ns]"), []
    utc = pd.Series([s if s is pd.NaT else s.tz_convert("UTC") for s in stamps], dtype=object)
    utc = pd.Series(pd.to_datetime(utc, utc=True))
    offsets = sorted({format_offset(s.utcoffset()) for s in stamps if s is not pd.NaT})
    if len(offsets) == 1:
        return utc.dt.tz_convert(next(s for s in stamps if s is not pd.NaT).tz), []
    present = np.flatnonzero(utc.notna().to_numpy())
    seconds = np.array([stamps[i].utcoffset().total_seconds() for i in present], dtype=np.int64)
    if zone := zone_of_offsets(pd.DatetimeIndex(utc.iloc[present]), seconds):  # local offsets across DST
        _ZONE_FOUND.set((zone, offsets))
        return utc.dt.tz_convert(zone), []
    return utc, offsets


def _in_zone(parsed: pd.Series, time_zone: str, name: str, texts: pd.Series | None) -> pd.Series:
    """Times in `time_zone`: zone-aware ones converted, zone-free ones read as its local time."""
    try:
        pd.Timestamp("2000-01-01", tz=time_zone)
    except Exception:  # pandas/zoneinfo/pytz raise several types for an unknown zone
        raise InputError("time_zone", time_zone, "not a time zone; expected an IANA name such as Europe/Berlin, "
                         "UTC or an offset such as +05:30") from None
    if parsed.dt.tz is not None:
        return parsed.dt.tz_convert(time_zone)
    local = parsed.dt.tz_localize(time_zone, ambiguous="NaT", nonexistent="NaT")
    bad = local.isna() & parsed.notna()
    if bad.any():
        raise InputError("time_column", name, f"local times that a daylight saving change in {time_zone} skips "
                         f"or repeats in {_rows(np.flatnonzero(bad), texts)}; give them with their UTC offset")
    return local


def _parse_integers(texts: pd.Series, missing: np.ndarray, name: str) -> np.ndarray:
    """Turn integer text into int64 times, rejecting empty cells and huge numbers."""
    if missing.any():
        raise InputError("time_column", name, f"missing times in {_rows(np.flatnonzero(missing))}")
    ints = [int(t) for t in texts]
    bad = np.flatnonzero([abs(i) >= _INT_LIMIT for i in ints])
    if bad.size:
        raise InputError("time_column", name, f"integer times out of range in {_rows(bad, texts)}")
    return np.asarray(ints, dtype="int64")


def _parse_values(col: pd.Series, name: str) -> np.ndarray:
    """Return float64 values with NaN for missing or infinite; non-numeric text, and numbers beyond
    float32's range (the network computes in float32), are InputErrors."""
    texts: pd.Series | None = None
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_complex_dtype(col.dtype):
        values = np.array(col.to_numpy(dtype="float64", na_value=np.nan))  # a writable copy
    else:
        texts, missing = _as_text(col)
        missing = missing | texts.str.lower().isin(_MISSING).to_numpy(dtype=bool)
        numeric = texts.str.fullmatch(_NUM_RE.pattern, flags=re.IGNORECASE).fillna(False).astype(bool)
        bad = np.flatnonzero(~missing & ~numeric)
        if bad.size:
            raise InputError("value_column", name, f"non-numeric values in {_rows(bad, texts)}")
        values = np.array([float(t) if ok else np.nan for t, ok in zip(texts, numeric & ~missing)], dtype="float64")
        written_inf = texts.str.contains("inf", case=False, regex=False).to_numpy(dtype=bool)
        values[np.isinf(values) & ~written_inf] = np.float64(np.finfo(np.float64).max)  # 1e400: too large, not "inf"
    _check_range(values, name, texts)
    values[~np.isfinite(values)] = np.nan
    return values


def _check_range(values: np.ndarray, name: str, texts: pd.Series | None) -> None:
    """Refuse finite values that float32 cannot hold (|v| > 3.4e38), naming the largest."""
    big = np.isfinite(values) & (np.abs(values) > FLOAT32_MAX)
    if not big.any():
        return
    i = int(np.argmax(np.where(big, np.abs(values), -np.inf)))
    shown = texts.iloc[i] if texts is not None else f"{values[i]:.6g}"
    raise InputError("value_column", name, f"{int(big.sum())} value(s) beyond float32's range (+-{FLOAT32_MAX:.3g}), "
                     f"the largest {shown} in {_rows([i])}; rescale the column (e.g. to other units)")


def _as_text(col: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Return (stripped text of each cell, '' where missing; mask of empty cells)."""
    if pd.api.types.is_float_dtype(col.dtype):
        finite = col.dropna()
        if ((finite % 1 == 0) & (finite.abs() < _INT_LIMIT)).all():
            col = col.astype("Int64")
    if pd.api.types.is_string_dtype(col.dtype) or pd.api.types.is_integer_dtype(col.dtype):  # vectorised (Arrow)
        arr = pa.array(col if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object
                       else col.astype(object).to_numpy(), from_pandas=True)
        stripped = pc.utf8_trim_whitespace(arr if pa.types.is_string(arr.type) else arr.cast(pa.string()))
        empty = pc.or_kleene(pc.is_null(stripped), pc.equal(stripped, "")).fill_null(True)
        return (pd.Series(stripped.fill_null("").to_numpy(zero_copy_only=False), dtype=object),
                empty.to_numpy(zero_copy_only=False))
    isna = col.isna().to_numpy(dtype=bool)
    texts = pd.Series([("" if m else str(x).strip()) for x, m in zip(col.astype(object), isna)], dtype=object)
    return texts, (texts == "").to_numpy(dtype=bool)


def _fill_missing(long: pd.DataFrame, ids: np.ndarray, name: str, fill: str | None) -> int:
    """Repair NaN values per series in time order (or reject them); returns how many were filled.

    Rows added by --fill-missing-dates (no source row) count as missing values too.
    """
    missing = long["value"].isna()
    count = int(missing.sum())
    if count == 0:
        return 0
    if fill is None:
        source = missing & (long["_row"] > 0)
        parts = []
        if source.any():
            parts.append(f"{int(source.sum())} missing or infinite values ({_rows(long.loc[source, '_row'] - 1)})")
        if count > int(source.sum()):
            added = count - int(source.sum())
            parts.append(f"{added} added date{'s' * (added != 1)} without values")
        raise InputError("value_column", name, f"{' and '.join(parts)}; use --fill interpolate|ffill to repair")
    present = long.groupby("_code", sort=True)["value"].count()
    if (present == 0).any():
        raise InputError("value_column", name, f"series {ids[present.idxmin()]!r} has no values to fill from")
    grouped = long.groupby("_code", sort=False)["value"]
    if fill == "interpolate":
        long["value"] = grouped.transform(lambda s: s.interpolate(method="linear", limit_direction="both"))
    else:
        long["value"] = grouped.ffill()
        long["value"] = long.groupby("_code", sort=False)["value"].bfill()
    return count


def _rows(positions: Any, texts: pd.Series | None = None) -> str:
    """Describe up to five 0-based positions as 1-based data rows (of the user's file, when the
    frame being prepared came from a staged bucket), with their text when given."""
    pos = sorted(int(p) for p in positions)
    numbers = _ROW_NUMBERS.get()
    rows = [int(numbers[p]) if numbers is not None else p + 1 for p in pos[:_MAX_LISTED]]
    more = f" and {len(pos) - _MAX_LISTED} more" if len(pos) > _MAX_LISTED else ""
    shown = f" ({', '.join(repr(str(texts.iloc[p])[:20]) for p in pos[:_MAX_LISTED])})" if texts is not None else ""
    files = _ROW_FILES.get()
    if files is None:
        return f"row{'s' * (len(pos) != 1)} {', '.join(map(str, rows))}{more}{shown}"
    starts, names = files  # a dataset: each row as the row of its own file
    which = np.searchsorted(starts, rows, side="right") - 1
    head = ", ".join(f"row {r - starts[f] + 1} of {names[f]}" for r, f in zip(rows, which))
    return f"{head}{more}{shown}"

