"""Dates read right or refused in one line (issue 22): day-first and month-first readings told
apart by the dates themselves, --dayfirst where they cannot tell, one format per column, and the
forecast range kept inside the times pandas can hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.components.calendar import check_forecast_range, steps_that_fit
from tasks.components.ingest import date_family, date_order, prepare_series
from tasks.errors import InputError


def prep(dates, **kw):
    return prepare_series(pd.DataFrame({"date": dates, "value": np.arange(len(dates), dtype=float)}),
                          time_column="date", value_column="value", **kw)


def check_refusal(call, field, *fragments):
    with pytest.raises(InputError) as info:
        call()
    err = info.value
    assert err.field == field, str(err)
    for f in fragments:
        assert f in str(err), (f, str(err))
    assert "\n" not in str(err)
    return err


DAYS = pd.date_range("2023-01-01", periods=60, freq="D")
MONTHS = pd.date_range("2016-01-01", periods=36, freq="MS")


@pytest.mark.parametrize("fmt", ["%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%y", "%d/%m/%Y %H:%M"])
def test_day_first_dates_are_read_day_first_when_a_day_above_12_says_so(fmt):
    long, info = prep(DAYS.strftime(fmt).tolist())
    assert info["frequency"] == "D" and (long["timestamp"] == DAYS).all()


@pytest.mark.parametrize("fmt", ["%m/%d/%Y", "%m.%d.%Y", "%m/%d/%y", "%m/%d/%Y %H:%M"])
def test_month_first_dates_are_read_month_first_when_a_day_above_12_says_so(fmt):
    long, info = prep(DAYS.strftime(fmt).tolist())
    assert info["frequency"] == "D" and (long["timestamp"] == DAYS).all()


def test_a_single_telling_date_late_in_the_column_decides_for_every_row():
    days = pd.date_range("2023-03-01", periods=13, freq="D")  # 01/03 .. 13/03: only the last tells
    long, info = prep(days.strftime("%d/%m/%Y").tolist())
    assert (long["timestamp"] == days).all() and info["frequency"] == "D"


@pytest.mark.parametrize("fmt", ["%d/%m/%Y", "%m/%d/%Y", "%d.%m.%y"])
def test_dates_no_day_above_12_can_tell_are_refused_naming_dayfirst(fmt):
    dates = MONTHS.strftime(fmt).tolist()  # day 01 of every month: 01/02/2016 is either reading
    check_refusal(lambda: prep(dates), "time_column", "--dayfirst on", "--dayfirst off", "row 2")
    long, info = prep(dates, dayfirst=fmt.startswith("%d"))
    assert info["frequency"] == "MS" and (long["timestamp"] == MONTHS).all()
    # the other reading (1 Jan .. 12 Jan, then 1 Jan 2017 ...) is no calendar: refused, never a forecast
    check_refusal(lambda: prep(dates, dayfirst=not fmt.startswith("%d")), "time_column", "irregular spacing")


def test_a_date_that_reads_the_same_either_way_needs_no_option():
    texts = pd.Series(["01/01/2023", "02/02/2023", "03/03/2023"])
    assert date_order(texts, np.zeros(3, dtype=bool), "date", None) is None  # day == month: one reading


def test_dayfirst_that_contradicts_a_date_is_refused_naming_it():
    check_refusal(lambda: prep(DAYS.strftime("%d/%m/%Y").tolist(), dayfirst=False), "dayfirst", "day first",
                  "'13/01/2023'")
    check_refusal(lambda: prep(DAYS.strftime("%m/%d/%Y").tolist(), dayfirst=True), "dayfirst", "month first",
                  "'01/13/2023'")


def test_dates_day_first_in_some_rows_and_month_first_in_others_are_refused():
    dates = DAYS.strftime("%d/%m/%Y").tolist()[:40] + DAYS.strftime("%m/%d/%Y").tolist()[40:]
    check_refusal(lambda: prep(dates), "time_column", "neither all day first nor all month first", "'13/01/2023'",
                  "'02/13/2023'")


@pytest.mark.parametrize("other", ["%m/%d/%Y", "%d.%m.%Y", "%d %b %Y", "%B %d, %Y"])
def test_a_column_mixing_date_formats_is_refused_as_mixed_formats(other):
    dates = DAYS.strftime("%Y-%m-%d").tolist()[:30] + DAYS.strftime(other).tolist()[30:]
    err = check_refusal(lambda: prep(dates), "time_column", "dates written in 2 ways", "year first: row 1",
                        "row 31", "one date format")
    assert "duplicate" not in str(err)


def test_the_same_format_with_and_without_a_time_is_one_format():
    dates = ["2024-01-01", "2024-01-01 06:00", "2024-01-01 12:00", "2024-01-01 18:00", "2024-01-02"]
    _, info = prep(dates)
    assert info["frequency"] == "6h"


@pytest.mark.parametrize("text, family", [("2024-03-31", "year first"), ("2024/3/1 10:00", "year first"),
                                          ("31/03/2024", "day or month first"), ("3.31.24", "day or month first"),
                                          ("31 Mar 2024", "with a month name"), ("March 31, 2024", "with a month name"),
                                          ("2024Q1", "other"), ("soon", "other")])
def test_date_families(text, family):
    assert date_family(text) == family


# --------------------------------------------------------------------------- pandas' timestamp bounds


@pytest.mark.parametrize("last, freq, steps, fits", [
    ("2261-12-01", "MS", 12, 4), ("2262-04-01", "MS", 3, 0), ("2262-04-11", "D", 1, 0), ("2262-04-10", "D", 5, 1),
    ("2262-04-11 22:00", "h", 3, 1), ("2020-01-01", "D", 7, 7), ("2262-01-01", "QS-JAN", 2, 1),
])
def test_the_steps_that_fit_before_pandas_runs_out_of_time(last, freq, steps, fits):
    assert steps_that_fit(pd.Timestamp(last), freq, steps) == fits


def test_a_forecast_past_2262_is_refused_naming_horizon_and_what_fits():
    ends = {"a": "2200-01-01 00:00:00", "b": "2261-12-01 00:00:00"}
    err = check_refusal(lambda: check_forecast_range(ends, "MS", 12, "m.csv"), "window.horizon",
                        "series 'b'", "ends at 2261-12-01", "2262-04-11", "--horizon 4 fits")
    assert err.value == 12
    check_forecast_range(ends, "MS", 4, "m.csv")  # fits
    check_forecast_range({"a": "5"}, "1", 10**6, "m.csv")  # integer steps: no bound
    check_refusal(lambda: check_forecast_range({"s": "2262-04-11 00:00:00+00:00"}, "D", 1, "d.csv"), "window.horizon",
                  "no forecast past it fits")
