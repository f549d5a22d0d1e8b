"""Calendars as the data has them: zones and DST, month anchors, business days with holidays, gaps named.

The property test draws calendars (a frequency, a zone, a start near a daylight saving change, a
length), lays the series' grid with pandas on its own (absolute time below a day, local wall-clock
time from a day up), and checks that ingestion accepts the regular series and continues it on its
own grid, and refuses one with a hole or a moved time, naming that very time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.components.calendar import fmt_time, next_timestamps
from tasks.components.frequency import describe, season_lengths, seasons_for
from tasks.components.ingest import prepare_series
from tasks.errors import InputError

ZONES = [None, "UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]
# days next to daylight saving changes in the zones above (northern spring/autumn, southern April/October)
STARTS = ["2024-03-07", "2024-03-28", "2024-10-24", "2024-11-01", "2024-04-04", "2024-09-30", "2023-03-10"]
TICKS = ["h", "30min", "15min", "2h", "3h", "90min"]
WALL = ["D", "2D", "W-SUN", "MS", "ME", "QS", "B"]


@contextmanager
def refused(*fragments: str) -> Iterator[None]:
    """Expect a one-line InputError on the time column holding every fragment."""
    with pytest.raises(InputError) as info:
        yield
    err = info.value
    assert err.field == "time_column", str(err)
    for fragment in fragments:
        assert fragment in str(err), (fragment, str(err))
    assert "\n" not in str(err)


def frame(times, values=None) -> pd.DataFrame:
    values = np.arange(len(times), dtype=float) if values is None else values
    return pd.DataFrame({"time": times, "value": values})


def prep(df: pd.DataFrame, **kwargs):
    return prepare_series(df, time_column="time", value_column="value", **kwargs)


@st.composite
def calendars(draw) -> tuple[pd.DatetimeIndex, dict]:
    """(n + 3 times of one regular calendar, what ingestion needs besides them)."""
    zone = draw(st.sampled_from(ZONES))
    start = pd.Timestamp(draw(st.sampled_from(STARTS))) + pd.Timedelta(days=draw(st.integers(0, 6)))
    n = draw(st.integers(24, 70))
    kind = draw(st.sampled_from(["tick", "wall", "anchor", "business"]))
    options: dict = {}
    if kind == "tick":  # absolute time: pandas lays it across DST as fixed durations
        start += pd.Timedelta(minutes=15 * draw(st.integers(0, 95)))
        freq = draw(st.sampled_from(TICKS))
        times = pd.date_range(start.tz_localize(zone) if zone else start, periods=n + 3, freq=freq)
        return times, options
    tod = pd.Timedelta(draw(st.sampled_from(["0h", "9h30min", "12h"])))  # never inside a DST change
    if kind == "wall":
        local = pd.date_range(start + tod, periods=n + 3, freq=draw(st.sampled_from(WALL)))
    elif kind == "anchor":
        day, months = draw(st.integers(2, 31)), draw(st.sampled_from([1, 1, 3, 12]))
        local = pd.date_range(start.replace(day=1) + tod, periods=n + 4, freq=pd.DateOffset(months=months, day=day))
        local = local[local.day == np.minimum(day, local.days_in_month)][: n + 3]
    else:  # business days with holes, told as holidays
        full = pd.bdate_range(start, periods=n + 8, normalize=True) + tod
        holes = sorted(draw(st.sets(st.integers(3, n), min_size=1, max_size=4)))
        local = full.delete(holes)[: n + 3]
        options["holidays"] = ",".join(full[holes].strftime("%Y-%m-%d"))
    return (local.tz_localize(zone) if zone else local), options


@settings(max_examples=250, deadline=None, database=None)
@given(cal=calendars(), data=st.data())
def test_regular_calendars_are_accepted_and_continued_on_their_own_grid(cal, data):
    times, options = cal
    seen, future = times[:-3], times[-3:]
    zone = None if seen.tz is None else str(seen.tz)
    if zone and data.draw(st.booleans()):  # ISO text with offsets (a CSV), the zone named with --time-zone
        long, info = prep(frame(list(seen.strftime("%Y-%m-%dT%H:%M:%S%z"))), time_zone=zone, **options)
    else:  # a zone-aware (or zone-free) column, as Parquet gives it
        long, info = prep(frame(seen), **options)
    assert info["time_zone"] == zone
    assert list(long["timestamp"]) == list(seen)
    assert next_timestamps(long["timestamp"].iloc[-1], info["frequency"], 3) == list(future)


@settings(max_examples=250, deadline=None, database=None)
@given(cal=calendars(), data=st.data())
def test_a_hole_or_a_moved_time_is_refused_naming_that_time(cal, data):
    times, options = cal
    times = times[:-3]
    i = data.draw(st.integers(3, len(times) - 4))
    if data.draw(st.booleans()):  # a hole: the first missing grid time is named, with its neighbours
        kept = times.delete(i)
        expect = [f"between {fmt_time(times[i - 1])} and {fmt_time(times[i + 1])}", f"({fmt_time(times[i])} missing",
                  times[i].strftime("%Y-%m-%d")]
    else:  # a time moved off the grid (by a quarter of a step, or 7 minutes)
        step = times[i + 1] - times[i]
        moved = times[i] + max(min(step / 4, pd.Timedelta(hours=5)), pd.Timedelta(minutes=7))
        kept = times.delete(i).insert(i, moved)
        expect = [f"{fmt_time(moved)} is not on the", f"(after {fmt_time(times[i - 1])})"]
    with refused("irregular spacing", *expect):
        prep(frame(kept), **options)


# ---------------------------------------------------------------- the examples


def test_hourly_times_at_plus_0530_keep_their_zone_and_continue_in_it():
    end = pd.Timestamp("2024-06-13T00:00+05:30")
    times = pd.date_range(end=end, periods=200, freq="h")
    text = [t.isoformat(timespec="minutes") for t in times]  # '2024-06-13T00:00+05:30'
    long, info = prep(frame(text))
    assert info["frequency"] == "h" and info["time_zone"] == "+05:30"
    assert long["timestamp"].iloc[-1] == end and str(long["timestamp"].iloc[-1]) == "2024-06-13 00:00:00+05:30"
    nxt = next_timestamps(long["timestamp"].iloc[-1], info["frequency"], 4)
    assert [t.isoformat(timespec="minutes") for t in nxt] == [
        "2024-06-13T01:00+05:30", "2024-06-13T02:00+05:30", "2024-06-13T03:00+05:30", "2024-06-13T04:00+05:30"]
    assert all(t > end for t in nxt)  # never before the last observation


def test_a_local_day_of_23_or_25_hours_is_one_day():
    for start in ("2024-03-25", "2024-10-22"):  # Berlin's spring and autumn changes inside the range
        local = pd.date_range(start, periods=14, freq="D", tz="Europe/Berlin")
        assert {int(h) for h in np.diff(local.asi8) // 3_600_000_000_000} != {24}  # one 23 or 25 hour day
        long, info = prep(frame(local))
        assert info["frequency"] == "D"
        nxt = next_timestamps(long["timestamp"].iloc[-1], "D", 10)
        assert all(t.hour == 0 and str(t.tz) == "Europe/Berlin" for t in nxt)


def test_seventy_two_months_on_the_15th_are_regular_and_continue_on_the_15th():
    dates = pd.date_range("2016-02-15", periods=72, freq=pd.DateOffset(months=1, day=15)).strftime("%Y-%m-%d")
    long, info = prep(frame(list(dates)))
    assert info["frequency"] == "M@15" and describe(info["frequency"]) == "1 month"
    nxt = next_timestamps(long["timestamp"].iloc[-1], info["frequency"], 3)
    assert [t.strftime("%Y-%m-%d") for t in nxt] == ["2022-02-15", "2022-03-15", "2022-04-15"]
    assert season_lengths(info["frequency"]) == (12,)


def test_a_monthly_anchor_past_the_28th_falls_on_the_last_day_of_short_months():
    dates = ["2023-11-30", "2023-12-30", "2024-01-30", "2024-02-29", "2024-03-30", "2024-04-30"]
    long, info = prep(frame(dates))
    assert info["frequency"] == "M@30"
    assert next_timestamps(long["timestamp"].iloc[-1], "M@30", 2) == [pd.Timestamp("2024-05-30"),
                                                                       pd.Timestamp("2024-06-30")]


HOLIDAYS = pd.DatetimeIndex(["2023-01-16", "2023-02-20", "2023-04-07", "2023-05-29"])
BUSINESS = pd.bdate_range("2023-01-02", periods=130).difference(HOLIDAYS)[:126]


def test_business_days_with_holidays_name_the_first_missing_day_not_a_weekend():
    assert len(BUSINESS) == 126
    with refused("expected 1 business day between 2023-01-13 and 2023-01-17", "(2023-01-16 missing; 4 missing in all)",
                 "--fill-missing-dates", "--holidays"):
        prep(frame(BUSINESS.strftime("%Y-%m-%d")))


@pytest.mark.parametrize("holidays", ["observed", "2023-01-16,2023-02-20,2023-04-07,2023-05-29"])
def test_business_days_with_their_holidays_are_accepted_and_continued(holidays):
    long, info = prep(frame(BUSINESS.strftime("%Y-%m-%d")), holidays=holidays)
    assert info["frequency"] == "C:2023-01-16,2023-02-20,2023-04-07,2023-05-29"
    assert season_lengths(info["frequency"]) == (5,)
    assert next_timestamps(long["timestamp"].iloc[-1], info["frequency"], 3) == list(
        pd.bdate_range("2023-07-03", periods=3))  # after Friday 2023-06-30: Monday on


def test_a_holiday_list_missing_one_holiday_names_that_one():
    with refused("(2023-04-07 missing; 2 missing in all)"):
        prep(frame(BUSINESS.strftime("%Y-%m-%d")), holidays="2023-01-16,2023-02-20")


def test_us_federal_holidays_continue_past_the_next_holiday():
    days = pd.bdate_range("2023-06-01", "2023-07-03")
    days = days[days != pd.Timestamp("2023-06-19")]  # Juneteenth
    long, info = prep(frame(days), holidays="us-federal")
    assert info["frequency"] == "C:us-federal"
    assert next_timestamps(long["timestamp"].iloc[-1], info["frequency"], 2) == [pd.Timestamp("2023-07-05"),
                                                                                 pd.Timestamp("2023-07-06")]


def test_fill_missing_dates_puts_the_holes_on_the_grid_then_fills_their_values():
    values = np.arange(126, dtype=float)
    with pytest.raises(InputError, match="4 added dates without values; use --fill"):
        prep(frame(BUSINESS.strftime("%Y-%m-%d"), values), fill_missing_dates=True)
    long, info = prep(frame(BUSINESS.strftime("%Y-%m-%d"), values), fill_missing_dates=True, fill="interpolate")
    assert info["frequency"] == "B" and info["added"] == 4 and info["filled"] == 4 and len(long) == 130
    added = long[long["timestamp"].isin(HOLIDAYS)]
    assert list(added["timestamp"]) == list(HOLIDAYS)
    first = long.index[long["timestamp"] == HOLIDAYS[0]][0]
    assert long.loc[first, "value"] == pytest.approx((long.loc[first - 1, "value"] + long.loc[first + 1, "value"]) / 2)
    assert long["step"].tolist() == list(range(130))


def test_fill_missing_dates_for_integer_steps_and_its_limits():
    long, info = prep(frame([0, 2, 4, 8, 10, 12]), fill_missing_dates=True, fill="ffill")
    assert long["timestamp"].tolist() == [0, 2, 4, 6, 8, 10, 12] and info["added"] == 1 and info["frequency"] == "2"
    with refused("expected step 2 between 4 and 7"):  # off the grid: never added around
        prep(frame([0, 2, 4, 7, 8, 10]), fill_missing_dates=True, fill="ffill")
    sparse = pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-20"])
    with pytest.raises(InputError, match="would gain 16 rows on 4 observed") as err:
        prep(frame(sparse), fill_missing_dates=True, fill="ffill")
    assert err.value.field == "fill_missing_dates"


def test_a_moved_time_is_named_not_a_gap():
    days = pd.date_range("2024-01-01", periods=30, freq="D").strftime("%Y-%m-%d %H:%M").tolist()
    days[10] = "2024-01-11 06:00"
    with refused("2024-01-11 06:00 is not on the D grid (after 2024-01-10)"):
        prep(frame(days))


# ---------------------------------------------------------------- seasons from the calendar


@pytest.mark.parametrize(
    ("freq", "seasons"),
    [("30min", (48, 336)), ("h", (24, 168)), ("15min", (96, 672)), ("2h", (12, 84)), ("min", (1440, 10080)),
     ("7min", (1440,)), ("bh", (8, 40)), ("D", (7,)), ("B", (5,)), ("W-SUN", (52,)), ("2W-SUN", (26,)),
     ("SMS", (24,)), ("MS", (12,)), ("ME", (12,)), ("BMS", (12,)), ("WOM-1MON", (12,)), ("M@15", (12,)),
     ("3M@15", (4,)), ("QS-OCT", (4,)), ("BQE", (4,)), ("YS", ()), ("2D", ()), ("1", ()), (None, ())],
)
def test_season_lengths_follow_the_calendar(freq, seasons):
    assert season_lengths(freq) == seasons


def test_the_week_is_a_further_season_only_when_the_series_holds_two():
    assert seasons_for("30min", 48 * 14) == (48, 336)
    assert seasons_for("30min", 48 * 13) == (48,)
    assert seasons_for("MS", 10) == (12,)  # the main season is always named (the backtest checks its room)


def test_half_hourly_data_gets_a_day_and_a_week_not_two_steps():
    times = pd.date_range("2024-01-01", periods=48 * 14, freq="30min")
    _, info = prep(frame(times.strftime("%Y-%m-%d %H:%M")))
    assert info["frequency"] == "30min"
    assert seasons_for(info["frequency"], info["lengths"]["series"]) == (48, 336)


def test_a_series_far_sparser_than_the_shared_grid_is_refused_without_laying_the_grid():
    df = pd.DataFrame({"time": ["2020-01-01 00:00", "2020-01-01 01:00", "2020-01-01 02:00", "2020-01-01", "2200-01-01"],
                       "value": range(5), "id": list("aaabb")})
    with refused("series 'b'", "far sparser than the h grid"):
        prep(df, id_column="id")
    with pytest.raises(InputError, match="would gain"):
        prep(frame([0, 1, 2, 10**15]), fill_missing_dates=True, fill="ffill")
