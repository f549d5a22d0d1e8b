"""Tests for tasks.ingest: reading tables, validating series, frequencies and filling."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.components.calendar import next_timestamps
from tasks.components.frequency import infer_season_length
from tasks.components.ingest import prepare_series
from tasks.components.scan import read_table
from tasks.errors import InputError


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    """Write text to a file under tmp_path and return its path."""
    path = tmp_path / name
    path.write_text(text)
    return path


def prep(df: pd.DataFrame, **kwargs):
    """Call prepare_series with the usual column names."""
    kwargs.setdefault("time_column", "date")
    kwargs.setdefault("value_column", "value")
    return prepare_series(df, **kwargs)


@contextmanager
def raises(field: str, *fragments: str) -> Iterator[None]:
    """Expect an InputError on `field`, one line long, whose text holds every fragment."""
    with pytest.raises(InputError) as info:
        yield
    err = info.value
    assert err.field == field, str(err)
    for fragment in fragments:
        assert fragment in str(err), (fragment, str(err))
    assert "\n" not in str(err)


MONTHLY = "date,value\n2020-01-01,1\n2020-02-01,2\n2020-03-01,3\n2020-04-01,4\n"


# ---------------------------------------------------------------- read_table

def test_read_csv_keeps_text(tmp_path: Path) -> None:
    df = read_table(write(tmp_path, "date,value\n2020-01,1.5\n2020-02,\n2020-03,abc\n"))
    assert list(df.columns) == ["date", "value"]
    assert df["value"].tolist() == ["1.5", "", "abc"]


def test_read_txt_and_parquet(tmp_path: Path) -> None:
    assert len(read_table(write(tmp_path, MONTHLY, "data.txt"))) == 4
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=3, freq="D"), "value": [1.0, 2.0, 3.0]})
    for name in ("data.parquet", "data.pq"):
        frame.to_parquet(tmp_path / name)
        back = read_table(tmp_path / name)
        long, info = prep(back)
        assert info["frequency"] == "D"
        assert long["value"].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda p: p / "missing.csv", "not found"),
        (lambda p: p, "a directory without .parquet files"),
        (lambda p: write(p, MONTHLY, "data.xlsx"), "unknown file type"),
        (lambda p: write(p, "", "empty.csv"), "empty"),
        (lambda p: write(p, "date,value\n", "header.csv"), "no rows"),
        (lambda p: write(p, "not parquet at all", "bad.parquet"), "cannot read"),
        (lambda p: write(p, 'a,b\n"1,2\n3,4', "quote.csv"), "cannot read"),
    ],
)
def test_read_table_errors(tmp_path: Path, make, fragment: str) -> None:
    path = make(tmp_path)
    with raises("data_path", str(path), fragment):
        read_table(path)


def test_read_table_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "garbled.csv"
    path.write_bytes(b"\xff\xfe\x00\x81date,value\n\x9f\x00,1\n")
    with raises("data_path", str(path)):
        read_table(path)


# ---------------------------------------------------------------- happy paths

def test_monthly_dates_from_csv(tmp_path: Path) -> None:
    long, info = prep(read_table(write(tmp_path, MONTHLY)))
    assert list(long.columns) == ["series_id", "step", "timestamp", "value"]
    assert long["timestamp"].dtype == "datetime64[ns]"
    assert long["step"].dtype == "int64" and long["value"].dtype == "float64"
    assert long["step"].tolist() == [0, 1, 2, 3]
    assert set(long["series_id"]) == {"series"}
    assert info == {
        "frequency": "MS", "time_zone": None, "n_series": 1, "lengths": {"series": 4}, "filled": 0, "added": 0,
        "start": {"series": "2020-01-01 00:00:00"}, "end": {"series": "2020-04-01 00:00:00"},
    }


def test_year_month_strings_and_daily(tmp_path: Path) -> None:
    _, info = prep(pd.DataFrame({"date": ["2020-01", "2020-02", "2020-03"], "value": [1, 2, 3]}))
    assert info["frequency"] == "MS"
    days = pd.DataFrame({"date": pd.date_range("2021-03-01", periods=10, freq="D"), "value": np.arange(10)})
    _, info = prep(days)
    assert info["frequency"] == "D"


def test_timezone_aware_times_keep_their_zone() -> None:
    times = pd.date_range("2020-01-01", periods=4, freq="h", tz="Europe/Berlin")
    long, info = prep(pd.DataFrame({"date": times, "value": [1.0, 2.0, 3.0, 4.0]}))
    assert str(long["timestamp"].dt.tz) == "Europe/Berlin"
    assert long["timestamp"].iloc[0] == pd.Timestamp("2020-01-01 00:00", tz="Europe/Berlin")
    assert info["frequency"] == "h" and info["time_zone"] == "Europe/Berlin"


def test_integer_times_unsorted_multi_series() -> None:
    df = pd.DataFrame({
        "t": ["7", "1", "4", "3", "1", "2", "2"],
        "v": ["70", "10", "40", "3", "1", "2", "20"],
        "id": ["b", "b", "b", "a", "a", "a", "b"],
    })
    with raises("time_column", "irregular spacing in series 'b'", "expected step 1 between 2 and 4"):
        prepare_series(df, time_column="t", value_column="v", id_column="id")
    df = df[df["t"] != "2"]
    df = pd.concat([df, pd.DataFrame({"t": ["2"], "v": ["2"], "id": ["a"]})])
    with raises("time_column", "different frequencies", "a=1", "b=3"):
        prepare_series(df, time_column="t", value_column="v", id_column="id")
    good = pd.DataFrame({"t": [3, 1, 2, 12, 10, 11], "v": [3, 1, 2, 12, 10, 11], "id": [2, 2, 2, 1, 1, 1]})
    long, info = prepare_series(good, time_column="t", value_column="v", id_column="id")
    assert long["series_id"].tolist() == ["1", "1", "1", "2", "2", "2"]
    assert long["timestamp"].dtype == "int64"
    assert long["timestamp"].tolist() == [10, 11, 12, 1, 2, 3]
    assert long["step"].tolist() == [0, 1, 2, 0, 1, 2]
    assert long["value"].tolist() == [10.0, 11.0, 12.0, 1.0, 2.0, 3.0]
    assert info["frequency"] == "1" and info["n_series"] == 2
    assert info["lengths"] == {"1": 3, "2": 3}
    assert info["start"] == {"1": "10", "2": "1"} and info["end"] == {"1": "12", "2": "3"}


def test_integer_step_seven() -> None:
    _, info = prepare_series(pd.DataFrame({"t": [0, 7, 14, -7], "v": [1, 2, 3, 4]}), time_column="t", value_column="v")
    assert info["frequency"] == "7"


def test_two_point_series_follow_the_shared_frequency() -> None:
    df = pd.DataFrame({
        "date": ["2020-01-01", "2020-02-01", "2020-03-01", "2021-05-01", "2021-06-01"],
        "value": [1, 2, 3, 4, 5], "id": ["a", "a", "a", "b", "b"],
    })
    _, info = prep(df, id_column="id")
    assert info["frequency"] == "MS" and info["lengths"] == {"a": 3, "b": 2}
    with raises("time_column", "'b'", "2021-05-15 is not on the MS grid"):
        prep(df.replace("2021-05-01", "2021-05-15"), id_column="id")
    with raises("time_column", "'b'", "expected 1 month between 2021-05-01 and 2021-07-01"):
        prep(df.replace("2021-06-01", "2021-07-01"), id_column="id")
    _, info = prep(df[df["id"] == "b"])
    assert info["frequency"] == "31D"  # two points alone only give the difference


# ---------------------------------------------------------------- fill

GAPPY = pd.DataFrame({
    "date": ["2020-05", "2020-01", "2020-02", "2020-03", "2020-04", "2020-06"],
    "value": ["", "", "2", "nan", "8", "inf"],
})


def test_missing_values_rejected_by_default() -> None:
    with raises("value_column", "4 missing or infinite values", "rows 1, 2, 4, 6", "--fill"):
        prep(GAPPY)


def test_fill_interpolate_values() -> None:
    long, info = prep(GAPPY, fill="interpolate")
    # sorted: Jan NaN, Feb 2, Mar NaN, Apr 8, May NaN, Jun inf -> edges nearest, middle linear
    assert long["value"].tolist() == [2.0, 2.0, 5.0, 8.0, 8.0, 8.0]
    assert info["filled"] == 4


def test_fill_ffill_values() -> None:
    long, info = prep(GAPPY, fill="ffill")
    assert long["value"].tolist() == [2.0, 2.0, 2.0, 8.0, 8.0, 8.0]
    assert info["filled"] == 4


def test_fill_is_per_series() -> None:
    df = pd.DataFrame({"date": [1, 2, 3, 1, 2, 3], "value": [1, None, 3, None, 10, None], "id": list("aaabbb")})
    long, info = prep(df, id_column="id", fill="interpolate")
    assert long["value"].tolist() == [1.0, 2.0, 3.0, 10.0, 10.0, 10.0]
    assert info["filled"] == 3


def test_fill_all_missing_series_and_unknown_fill() -> None:
    df = pd.DataFrame({"date": [1, 2, 1, 2], "value": [1, 2, None, None], "id": list("aabb")})
    with raises("value_column", "'b'"):
        prep(df, id_column="id", fill="ffill")
    with raises("fill", "expected interpolate or ffill"):
        prep(df, fill="mean")


# ---------------------------------------------------------------- errors

def test_missing_columns_suggest_names() -> None:
    df = pd.DataFrame({"date": [1, 2], "value": [1, 2]})
    with raises("time_column", "'dat'", "did you mean 'date'", "columns: date, value"):
        prep(df, time_column="dat")
    with raises("value_column", "'values'", "did you mean 'value'"):
        prep(df, value_column="values")
    with raises("id_column", "'zzz'", "columns: date, value"):
        prep(df, id_column="zzz")


def test_bad_times_name_rows() -> None:
    dates = ["2020-01-01", "2020-02-01", "soon", "2020-04-01", "", "2020-06-01", "x"]
    df = pd.DataFrame({"date": dates, "value": range(7)})
    with raises("time_column", "rows 3, 5, 7", "'soon'"):
        prep(df)


def test_non_numeric_values_name_rows() -> None:
    df = pd.DataFrame({"date": [1, 2, 3, 4, 5, 6, 7, 8, 9], "value": ["1", "2", "3", "abc", "5", "6", "7", "8", "x"]})
    with raises("value_column", "'value'", "non-numeric values in rows 4, 9", "'abc'", "'x'"):
        prep(df)


def test_duplicate_times() -> None:
    df = pd.DataFrame({"date": ["2020-01-01", "2020-02-01", "2020-02-01"], "value": [1, 2, 3], "id": "a"})
    with raises("time_column", "duplicate", "2020-02-01", "'a'", "rows 2, 3"):
        prep(df, id_column="id")


def test_irregular_dates() -> None:
    dates = ["2020-01-01", "2020-02-01", "2020-03-01", "2020-05-01", "2020-06-01"]
    df = pd.DataFrame({"date": dates, "value": range(5)})
    with raises("time_column", "irregular spacing in series 'series'", "1 month", "2020-03-01 and 2020-05-01"):
        prep(df)


def test_different_date_frequencies() -> None:
    df = pd.DataFrame({
        "date": [*pd.date_range("2020-01-01", periods=3, freq="MS"), *pd.date_range("2020-01-01", periods=3, freq="D")],
        "value": range(6), "id": list("aaabbb"),
    })
    with raises("time_column", "different frequencies", "a=MS", "b=D"):
        prep(df, id_column="id")


def test_short_series_and_single_points() -> None:
    df = pd.DataFrame({"date": [1, 2, 3, 1, 2], "value": range(5), "id": list("aaabb")})
    with raises("series_length", "'b' has 2 points", "at least 3"):
        prep(df, id_column="id", min_length=3)
    with raises("series_length", "at least 2"):
        prep(pd.DataFrame({"date": ["2020-01-01"], "value": [1]}))


def test_empty_frame_and_missing_ids() -> None:
    with raises("data_path", "<frame>", "no rows"):
        prep(pd.DataFrame({"date": [], "value": []}))
    with raises("id_column", "row 2"):
        prep(pd.DataFrame({"date": [1, 2], "value": [1, 2], "id": ["a", ""]}), id_column="id")


# ---------------------------------------------------------------- frequencies

@pytest.mark.parametrize(
    ("freq", "season"),
    [("MS", 12), ("ME", 12), ("M", 12), ("QS-OCT", 4), ("QE-DEC", 4), ("W-SUN", 52), ("D", 7),
     ("h", 24), ("H", 24), ("YS-JAN", None), ("YS", None), ("A-DEC", None), ("B", 5), ("min", 1440),
     ("1", None), ("7", None), ("2h", 12), ("nonsense", None)],
)
def test_infer_season_length(freq: str, season: int | None) -> None:
    assert infer_season_length(freq) == season


@pytest.mark.parametrize(
    ("freq", "start", "alias"),
    [("MS", "2020-01-01", "MS"), ("W-SUN", "2020-01-05", "W-SUN"), ("YS", "2020-01-01", "YS-JAN"),
     ("h", "2020-01-01", "h"), ("B", "2020-01-01", "B"),
     ("QS-OCT", "2019-10-01", ("QS-JAN", "QS-OCT"))],  # pandas < 3.1 names quarter starts by January
)
def test_inferred_alias_and_next_timestamps(freq: str, start: str, alias: str | tuple[str, ...]) -> None:
    times = pd.date_range(start, periods=8, freq=freq)
    long, info = prep(pd.DataFrame({"date": times[:6].strftime("%Y-%m-%d %H:%M"), "value": range(6)}))
    assert info["frequency"] in ((alias,) if isinstance(alias, str) else alias)
    assert pd.date_range(start, periods=8, freq=info["frequency"]).equals(times)  # the same grid either way
    assert next_timestamps(long["timestamp"].iloc[-1], info["frequency"], 2) == list(times[6:])


def test_next_timestamps() -> None:
    assert next_timestamps(pd.Timestamp("2020-03-01"), "MS", 3) == [
        pd.Timestamp("2020-04-01"), pd.Timestamp("2020-05-01"), pd.Timestamp("2020-06-01")]
    assert next_timestamps(pd.Timestamp("2020-01-31 22:00"), "h", 2) == [
        pd.Timestamp("2020-01-31 23:00"), pd.Timestamp("2020-02-01 00:00")]
    assert next_timestamps(7, "2", 3) == [9, 11, 13]
    assert next_timestamps(np.int64(5), "1", 1) == [6]
    assert next_timestamps(5, "1", 0) == []
    with raises("frequency", "'bogus'"):
        next_timestamps(pd.Timestamp("2020-01-01"), "bogus", 2)


# ---------------------------------------------------------------- property: malformed CSV

MONTHS = [str(pd.Timestamp("2020-01-01") + pd.DateOffset(months=k))[:10] for k in range(-1, 32)]
CELLS = st.one_of(
    st.integers(-5, 40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "NA", "inf", "-inf", "abc", "1e400", "1,5", '"', "null", "2020-13-01"]),
    st.dates(min_value=pd.Timestamp("2019-01-01").date(), max_value=pd.Timestamp("2021-12-31").date()).map(str),
    st.sampled_from(MONTHS),
    st.text(alphabet="ab,\"\n\r\t 1-:.é\x00\ud800", max_size=6),
)
HEADERS = st.sampled_from(["date,value", "date,value,id", "Date,Value", "date", "value,date", "", "date,value,value"])
RANDOM_ROWS = st.tuples(HEADERS, st.lists(st.lists(CELLS, max_size=4), max_size=12)).map(
    lambda hr: (hr[0] + "\n" + "\n".join(",".join(r) for r in hr[1])).encode("utf-8", "surrogatepass"))
# (month jitter, value, series id, shuffle key) for each row of a mostly-regular monthly table
SERIES_ROW = st.tuples(
    st.sampled_from([0, 0, 0, 0, 1, -1]),
    st.one_of(st.floats(-100, 100).map(str), st.sampled_from(["", "inf", "x"])),
    st.sampled_from(["a", "b"]),
    st.integers(0, 1000),
)


def monthly_csv(rows: list[tuple[int, str, str, int]]) -> bytes:
    """Build a shuffled monthly CSV whose rows may be shifted a month, blank or non-numeric."""
    lines = [(key, f"{MONTHS[k + 1 + jitter]},{value},{sid}") for k, (jitter, value, sid, key) in enumerate(rows)]
    return "\n".join(["date,value,id", *(line for _, line in sorted(lines))]).encode()


MONTHLY_ROWS = st.lists(SERIES_ROW, min_size=1, max_size=14).map(monthly_csv)
MESSY_CSV = st.one_of(RANDOM_ROWS, MONTHLY_ROWS, st.binary(max_size=200))


def check_invariants(long: pd.DataFrame, info: dict) -> None:
    """A prepared frame is complete, sorted, stepped 0..n-1 and regular."""
    assert list(long.columns) == ["series_id", "step", "timestamp", "value"]
    assert np.isfinite(long["value"].to_numpy()).all()
    assert info["n_series"] == long["series_id"].nunique()
    for sid, group in long.groupby("series_id"):
        times = group["timestamp"]
        assert group["step"].tolist() == list(range(len(group)))
        assert times.is_monotonic_increasing and times.is_unique
        assert info["lengths"][sid] == len(group)
        if len(group) > 1 and long["timestamp"].dtype == "int64":
            assert set(np.diff(times.to_numpy())) == {int(info["frequency"])}
        elif len(group) > 1:
            expected = pd.date_range(times.iloc[0], periods=len(group), freq=info["frequency"])
            assert (expected == pd.DatetimeIndex(times)).all()
    keys = list(zip(long["series_id"], long["timestamp"]))
    assert keys == sorted(keys)


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=MESSY_CSV, fill=st.sampled_from([None, "interpolate", "ffill"]), with_id=st.booleans(),
       add_dates=st.booleans())
def test_malformed_csv_never_crashes(tmp_path: Path, data: bytes, fill: str | None, with_id: bool,
                                     add_dates: bool) -> None:
    path = tmp_path / "messy.csv"
    path.write_bytes(data)
    try:
        df = read_table(path)
        long, info = prepare_series(df, time_column="date", value_column="value",
                                    id_column="id" if with_id else None, fill=fill, fill_missing_dates=add_dates)
    except InputError as err:
        assert "\n" not in str(err)
        return
    check_invariants(long, info)


# ---------------------------------------------------------------- zones and ranges


def test_a_single_utc_offset_in_the_text_is_the_data_zone() -> None:
    long, info = prep(pd.DataFrame({"date": ["2024-06-12T22:00+05:30", "2024-06-12T23:00+05:30",
                                             "2024-06-13T00:00+05:30"], "value": [1, 2, 3]}))
    assert info["time_zone"] == "+05:30" and info["frequency"] == "h"
    assert str(long["timestamp"].iloc[-1]) == "2024-06-13 00:00:00+05:30"
    assert info["end"] == {"series": "2024-06-13 00:00:00+05:30"}


@pytest.mark.parametrize("zone, start, freq", [
    ("Europe/Berlin", "2024-03-28", "D"), ("Europe/Paris", "2024-10-20", "D"), ("America/New_York", "2023-03-01", "D"),
    ("Australia/Sydney", "2020-01-01", "MS"), ("Europe/London", "2024-03-30 22:00", "h"),
])
def test_local_offsets_across_a_dst_change_are_read_as_the_regular_local_calendar_they_are(zone, start, freq) -> None:
    """One value per local midnight (or hour, or month) written with its offset: the offsets change
    with daylight saving, the calendar does not (issue 22)."""
    times = pd.date_range(start, periods=40, freq=freq, tz=zone)
    text = [t.isoformat() for t in times]  # e.g. 2024-03-30T00:00:00+01:00, 2024-03-31T00:00:00+02:00
    assert len({t[-6:] for t in text}) == 2
    long, info = prep(pd.DataFrame({"date": text, "value": range(40)}))
    assert info["frequency"] == freq and "utc_offsets" not in info
    assert [t.isoformat() for t in long["timestamp"]] == text  # the times as written, no UTC the user never wrote
    assert info["zone_from_offsets"]["offsets"] == sorted({t[-6:] for t in text})
    nxt = next_timestamps(long["timestamp"].iloc[-1], info["frequency"], 3)
    assert [t.isoformat() for t in nxt] == [t.isoformat() for t in pd.date_range(times[-1], periods=4, freq=freq)[1:]]


def test_offsets_no_zone_explains_are_read_as_utc_and_a_refusal_points_to_time_zone() -> None:
    days = pd.date_range("2024-03-20", periods=10, freq="D")
    text = [f"{d:%Y-%m-%d}T00:00{'+01:00' if i % 2 else '+03:30'}" for i, d in enumerate(days)]
    with raises("time_column", "irregular spacing", "were read as UTC", "--time-zone"):
        prep(pd.DataFrame({"date": text, "value": range(10)}))
    hours = pd.date_range("2024-01-01", periods=8, freq="h", tz="UTC")
    text = [(t.tz_convert("Asia/Kolkata") if i % 2 else t.tz_convert("Europe/Berlin")).isoformat()
            for i, t in enumerate(hours)]  # the same hours, written in two zones' offsets
    long, info = prep(pd.DataFrame({"date": text, "value": range(8)}))
    assert info["time_zone"] == "UTC" and info["utc_offsets"] == ["+01:00", "+05:30"] and info["frequency"] == "h"
    days = [t.isoformat() for t in pd.date_range("2024-03-28", periods=6, freq="D", tz="Europe/Berlin")]
    long, info = prep(pd.DataFrame({"date": days, "value": range(6)}), time_zone="Europe/Berlin")
    assert info["frequency"] == "D" and info["time_zone"] == "Europe/Berlin" and "zone_from_offsets" not in info
    assert [t.hour for t in long["timestamp"]] == [0] * 6


def test_time_zone_localises_zone_free_times_and_refuses_what_dst_makes_ambiguous() -> None:
    long, info = prep(pd.DataFrame({"date": ["2024-01-01 09:00", "2024-01-02 09:00", "2024-01-03 09:00"],
                                    "value": [1, 2, 3]}), time_zone="America/New_York")
    assert info["time_zone"] == "America/New_York" and long["timestamp"].iloc[0].utcoffset() == pd.Timedelta(hours=-5)
    with raises("time_column", "daylight saving", "row 2", "'2024-03-31 02:30'"):
        prep(pd.DataFrame({"date": ["2024-03-31 01:30", "2024-03-31 02:30", "2024-03-31 03:30"], "value": [1, 2, 3]}),
             time_zone="Europe/Berlin")
    with raises("time_zone", "'Mars/Olympus'", "not a time zone"):
        prep(pd.DataFrame({"date": ["2024-01-01", "2024-01-02"], "value": [1, 2]}), time_zone="Mars/Olympus")
    with raises("time_zone", "integer steps"):
        prep(pd.DataFrame({"date": [1, 2, 3], "value": [1, 2, 3]}), time_zone="UTC")


def test_times_with_and_without_an_offset_are_refused() -> None:
    with raises("time_column", "without a UTC offset", "row 1"):
        prep(pd.DataFrame({"date": ["2024-01-01", "2024-01-02T00:00+01:00", "2024-01-03"], "value": [1, 2, 3]}))


def test_values_float32_cannot_hold_are_refused_naming_the_column_and_the_largest() -> None:
    dates = pd.date_range("2016-01-01", periods=72, freq="MS").strftime("%Y-%m-%d")
    values = 1e40 * (1 + 0.1 * np.sin(np.arange(72)))
    top = int(np.argmax(values))
    largest = f"the largest {float(values[top])!r}"
    with raises("value_column", "'value'", "beyond float32's range", largest, f"row {top + 1}"):
        prep(pd.DataFrame({"date": dates, "value": values.astype(str)}))
    with raises("value_column", "the largest 1e400"):  # written as a number, not as inf: too large, not missing
        prep(pd.DataFrame({"date": dates[:3], "value": ["1", "1e400", "2"]}))
    with raises("value_column", "the largest -4e+38"):  # Parquet/float columns too
        prep(pd.DataFrame({"date": dates[:3], "value": [1.0, -4e38, 3e38]}))
    long, _ = prep(pd.DataFrame({"date": dates[:3], "value": [1.0, 3e38, -3e38]}))  # within range: kept exactly
    assert long["value"].tolist() == [1.0, 3e38, -3e38]


def test_many_series_in_any_row_order_give_the_frame_pandas_sorting_gives() -> None:
    """Ids are cleaned once per distinct value and rows sorted by codes: the result must be what a
    plain pandas sort of the cleaned rows gives, whatever the row order and id spelling."""
    rng = np.random.default_rng(3)
    dates = pd.date_range("2021-03-01", periods=15, freq="D")
    ids = [f"shop-{i}" for i in (10, 2, 33, 4, 1)]
    clean = pd.DataFrame({"id": np.repeat(ids, len(dates)), "date": np.tile(dates, len(ids)),
                          "value": rng.normal(size=len(ids) * len(dates))})
    messy = clean.sample(frac=1.0, random_state=1).reset_index(drop=True)
    messy["id"] = [f"  {s}" if k % 3 == 0 else s for k, s in enumerate(messy["id"])]  # same series, padded
    long, info = prep(messy, id_column="id")
    expected = clean.sort_values(["id", "date"], kind="stable", ignore_index=True)
    assert long["series_id"].tolist() == expected["id"].tolist()
    assert long["timestamp"].tolist() == expected["date"].tolist()
    np.testing.assert_array_equal(long["value"].to_numpy(), expected["value"].to_numpy())
    assert long["step"].tolist() == list(range(len(dates))) * len(ids)
    assert info["n_series"] == 5 and info["frequency"] == "D" and info["lengths"] == dict.fromkeys(sorted(ids), 15)
    assert info["start"]["shop-33"] == "2021-03-01 00:00:00" and info["end"]["shop-1"] == "2021-03-15 00:00:00"
    twice = pd.concat([messy, messy.iloc[[7]]], ignore_index=True)
    with raises("time_column", "duplicate times in series", repr(messy["id"].iloc[7].strip()), "rows 8, 76"):
        prep(twice, id_column="id")
