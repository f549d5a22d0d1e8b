"""Read a table and turn it into validated, regular, gap-free time series (pure functions).

The calendar side (frequencies, seasons, grids) is tasks/components/calendar.py."""

from __future__ import annotations

import difflib
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.components.calendar import fmt_time, frequency_of, scalar_time
from tasks.errors import InputError

log = logging.getLogger(__name__)

CSV_SUFFIXES = frozenset({".csv", ".txt"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
FILLS = ("interpolate", "ffill")
SINGLE_SERIES_ID = "series"
COLUMNS = ["series_id", "step", "timestamp", "value"]

_MAX_LISTED = 5
_INT_LIMIT = 2**62  # keeps differences of integer times inside int64
_INT_RE = re.compile(r"[+-]?\d+")
_NUM_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?", re.IGNORECASE)
_MISSING = frozenset({"", "na", "nan", "-nan", "n/a", "nat", "null", "none"})

def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (every cell as text) or Parquet file; any problem is an InputError."""
    p, shown = Path(path), str(path)
    if not p.exists():
        raise InputError("data_path", shown, "file not found")
    if not p.is_file():
        raise InputError("data_path", shown, "not a file")
    suffix = p.suffix.lower()
    if suffix not in CSV_SUFFIXES | PARQUET_SUFFIXES:
        raise InputError("data_path", shown,
                         f"unknown file type {suffix or '(none)'!r}; expected .csv, .txt, .parquet or .pq")
    try:
        csv = suffix in CSV_SUFFIXES
        if csv:
            sep = sniff_delimiter(p)
            if sep != ",":
                log.info("reading %s with the delimiter %r", shown, sep)
            df = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True, sep=sep)
        else:
            df = pd.read_parquet(p)
    except pd.errors.EmptyDataError:
        raise InputError("data_path", shown, "empty file") from None
    except (OSError, ValueError, TypeError, NotImplementedError, ImportError) as exc:
        raise InputError("data_path", shown, "cannot read file: " + " ".join(str(exc).split())[:200]) from exc
    if df.shape[1] == 0:
        raise InputError("data_path", shown, "no columns")
    if len(df) == 0:
        raise InputError("data_path", shown, "no rows")
    return df


DELIMITERS = ",;\t|"


def sniff_delimiter(path: Path, sample_bytes: int = 65536) -> str:
    """The delimiter of a CSV file: `,` unless its header and first rows are consistently split by
    one of `;`, tab or `|` (csv.Sniffer), as in many European exports."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            sample = fh.read(sample_bytes)
        lines = sample.splitlines()
        if len(lines) > 1 and len(sample) == sample_bytes:
            sample = "\n".join(lines[:-1])  # drop a line cut short
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except (OSError, csv.Error):
        return ","


def prepare_series(
    df: pd.DataFrame, *, time_column: str, value_column: str,
    id_column: str | None = None, fill: str | None = None, min_length: int = 1,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Validate a raw table and return (long frame, summary info); bad data raises InputError."""
    if fill is not None and fill not in FILLS:
        raise InputError("fill", fill, "expected interpolate or ffill")
    if len(df) == 0:
        raise InputError("data_path", "<frame>", "no rows")
    for field, name in (("time_column", time_column), ("value_column", value_column), ("id_column", id_column)):
        if name is not None:
            _check_column(df, field, name)
    times, is_int = _parse_times(df[time_column], time_column)
    long = pd.DataFrame({
        "series_id": _parse_ids(df, id_column), "timestamp": times,
        "value": _parse_values(df[value_column], value_column), "_row": np.arange(1, len(df) + 1),
    })
    long = long.sort_values(["series_id", "timestamp"], kind="stable", ignore_index=True)
    _check_duplicates(long, time_column)
    lengths = long.groupby("series_id", sort=True).size()
    if int(lengths.min()) < min_length:
        sid, n = lengths.idxmin(), int(lengths.min())
        raise InputError("series_length", n, f"series {sid!r} has {n} point{'s' * (n != 1)}; "
                         f"needs at least {min_length} (window length + split)")
    groups = {str(sid): g.to_numpy() for sid, g in long.groupby("series_id", sort=True)["timestamp"]}
    frequency = frequency_of(groups, is_int, time_column)
    filled = _fill_missing(long, value_column, fill)
    long.insert(1, "step", long.groupby("series_id", sort=False).cumcount().astype("int64"))
    info = {
        "frequency": frequency, "n_series": len(groups),
        "lengths": {sid: len(t) for sid, t in groups.items()}, "filled": filled,
        "start": {sid: str(scalar_time(t[0])) for sid, t in groups.items()},
        "end": {sid: str(scalar_time(t[-1])) for sid, t in groups.items()},
    }
    log.debug("prepared %d series at frequency %s (%d values filled)", len(groups), frequency, filled)
    return long[COLUMNS], info


def _check_column(df: pd.DataFrame, field: str, name: str) -> None:
    """Require exactly one column called `name`, suggesting the likeliest one otherwise."""
    names = [str(c) for c in df.columns]
    count = list(df.columns).count(name)
    if count == 1:
        return
    if count > 1:
        raise InputError(field, name, "column appears more than once")
    close = suggest_column(df, field, str(name))
    hint = f"did you mean {close!r}? " if close else ""
    shown = ", ".join(n if n.isprintable() else repr(n) for n in names)  # a newline in a name: still one line
    raise InputError(field, name, f"no such column; {hint}(columns: {shown})")


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
    timelike = [c for c in names if c.strip().lower() in _TIME_WORDS or _looks_like_dates(head[c])]
    if field == "time_column":
        return timelike[0] if timelike else None
    if field == "value_column":
        numeric = [c for c in names if c not in timelike and _looks_numeric(head[c])]
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
    if id_column is None:
        return np.full(len(df), SINGLE_SERIES_ID, dtype=object)
    texts, missing = _as_text(df[id_column])
    if missing.any():
        raise InputError("id_column", id_column, f"missing ids in {_rows(np.flatnonzero(missing))}")
    return texts.to_numpy(dtype=object)


def _parse_times(col: pd.Series, name: str) -> tuple[np.ndarray, bool]:
    """Parse a time column as int64 steps or naive-UTC datetime64[ns]; returns (times, is_integer)."""
    texts: pd.Series | None = None
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        parsed = pd.to_datetime(col, utc=True)
    else:
        texts, missing = _as_text(col)
        if texts[~missing].str.fullmatch(_INT_RE.pattern).all():
            return _parse_integers(texts, missing, name), True
        parsed = _to_datetime(texts.where(~missing, None))
    naive = parsed.dt.tz_convert(None)
    bad = naive.isna() | (naive < pd.Timestamp.min) | (naive > pd.Timestamp.max)
    if bad.any():
        shown = texts if texts is not None else col.astype(object)
        raise InputError("time_column", name, "neither dates (years 1677-2262) nor integers in "
                         f"{_rows(np.flatnonzero(bad), shown)}")
    return naive.astype("datetime64[ns]").to_numpy(), False


def _parse_integers(texts: pd.Series, missing: np.ndarray, name: str) -> np.ndarray:
    """Turn integer text into int64 times, rejecting empty cells and huge numbers."""
    if missing.any():
        raise InputError("time_column", name, f"missing times in {_rows(np.flatnonzero(missing))}")
    ints = [int(t) for t in texts]
    bad = np.flatnonzero([abs(i) >= _INT_LIMIT for i in ints])
    if bad.size:
        raise InputError("time_column", name, f"integer times out of range in {_rows(bad, texts)}")
    return np.asarray(ints, dtype="int64")


def _to_datetime(texts: pd.Series) -> pd.Series:
    """Parse text as UTC datetimes: one inferred format first, then each leftover row on its own."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(texts, errors="coerce", utc=True)
        except (ValueError, TypeError, OverflowError):
            parsed = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[ns, UTC]")
        retry = parsed.isna() & texts.notna()
        if retry.any():
            try:
                parsed[retry] = pd.to_datetime(texts[retry], errors="coerce", utc=True, format="mixed")
            except (ValueError, TypeError, OverflowError):
                pass
    return parsed


def _parse_values(col: pd.Series, name: str) -> np.ndarray:
    """Return float64 values with NaN for missing or infinite; non-numeric text is an InputError."""
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
    values[~np.isfinite(values)] = np.nan
    return values


def _as_text(col: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Return (stripped text of each cell, '' where missing; mask of empty cells)."""
    if pd.api.types.is_float_dtype(col.dtype):
        finite = col.dropna()
        if ((finite % 1 == 0) & (finite.abs() < _INT_LIMIT)).all():
            col = col.astype("Int64")
    isna = col.isna().to_numpy(dtype=bool)
    texts = pd.Series([("" if m else str(x).strip()) for x, m in zip(col.astype(object), isna)], dtype=object)
    return texts, (texts == "").to_numpy(dtype=bool)


def _check_duplicates(long: pd.DataFrame, name: str) -> None:
    """Reject a time that appears more than once within one series."""
    dup = long.duplicated(["series_id", "timestamp"], keep=False)
    if not dup.any():
        return
    sid = long.loc[dup, "series_id"].iloc[0]
    rows = long[dup & (long["series_id"] == sid)]
    times = ", ".join(fmt_time(t) for t in rows["timestamp"].unique()[:_MAX_LISTED])
    raise InputError("time_column", name, f"duplicate times in series {sid!r}: {times} ({_rows(rows['_row'] - 1)})")


def _fill_missing(long: pd.DataFrame, name: str, fill: str | None) -> int:
    """Repair NaN values per series in time order (or reject them); returns how many were filled."""
    missing = long["value"].isna()
    count = int(missing.sum())
    if count == 0:
        return 0
    if fill is None:
        raise InputError("value_column", name, f"{count} missing or infinite values "
                         f"({_rows(long.loc[missing, '_row'] - 1)}); use --fill interpolate|ffill to repair")
    present = long.groupby("series_id", sort=True)["value"].count()
    if (present == 0).any():
        raise InputError("value_column", name, f"series {present.idxmin()!r} has no values to fill from")
    grouped = long.groupby("series_id", sort=False)["value"]
    if fill == "interpolate":
        long["value"] = grouped.transform(lambda s: s.interpolate(method="linear", limit_direction="both"))
    else:
        long["value"] = grouped.ffill()
        long["value"] = long.groupby("series_id", sort=False)["value"].bfill()
    return count


def _rows(positions: Any, texts: pd.Series | None = None) -> str:
    """Describe up to five 0-based positions as 1-based data rows, with their text when given."""
    pos = sorted(int(p) for p in positions)
    head = ", ".join(str(p + 1) for p in pos[:_MAX_LISTED])
    more = f" and {len(pos) - _MAX_LISTED} more" if len(pos) > _MAX_LISTED else ""
    shown = f" ({', '.join(repr(str(texts.iloc[p])[:20]) for p in pos[:_MAX_LISTED])})" if texts is not None else ""
    return f"row{'s' * (len(pos) != 1)} {head}{more}{shown}"

