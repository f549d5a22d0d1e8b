"""The future: forecasts start right after each series' last time, on its own frequency."""

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
import torch

from tasks.components.network import Forecaster
from tasks.config import (
    DataConfig,
    FiguresConfig,
    PipelineConfig,
    WindowConfig,
    resolve,
)
from tasks.forecast import forecast_frame, future_forecast, future_times, plot_forecast
from tasks.generate import load_source
from tasks.runtime.publish import table_rows
from tasks.windowing import split_series

INTERVALS = {"halfwidths": {"80": [1.0, 2.0, 3.0], "95": [2.0, 4.0, 6.0]}}


def prepared(df: pd.DataFrame, meta: dict, data: DataConfig, horizon: int = 3):
    """What the window stage makes of a series file: values and split ("auto" resolved for its source)."""
    cfg = resolve(PipelineConfig(data=data, window=WindowConfig(seq_length=12, horizon=horizon)), device="cpu")
    return split_series(df, meta, cfg.window)


def monthly_file(tmp_path, n=60):
    dates = pd.date_range("2001-01-01", periods=n, freq="MS")
    frame = pd.DataFrame({"month": np.tile(dates.strftime("%Y-%m-%d"), 2), "shop": np.repeat(["a", "b"], n),
                          "sales": np.r_[100 + 10 * np.sin(np.arange(n)), 50 + np.arange(n)]})
    frame.to_csv(tmp_path / "m.csv", index=False)
    return DataConfig(data_path=str(tmp_path / "m.csv"), time_column="month", value_column="sales", id_column="shop")


def test_a_monthly_file_is_forecast_from_the_next_month_on(tmp_path):
    data = monthly_file(tmp_path)
    df, meta = load_source(data)
    values, split = prepared(df, meta, data)
    assert split.normalize == "window" and split.frequency == "MS"
    torch.manual_seed(0)
    cols = future_forecast(Forecaster(hidden_size=4, n_outputs=3).eval(), values, split, INTERVALS)
    fc = forecast_frame(split, future_times(df, split, 3), cols)
    assert list(fc.columns) == ["series_id", "lead", "step", "timestamp", "forecast",
                                "lower_80", "upper_80", "lower_95", "upper_95"]
    for sid, g in fc.groupby("series_id"):
        assert g["timestamp"].tolist() == list(pd.date_range("2006-01-01", periods=3, freq="MS"))
        assert g["step"].tolist() == [60, 61, 62] and g["lead"].tolist() == [1, 2, 3]
    assert (fc["lower_95"] < fc["lower_80"]).all() and (fc["lower_80"] < fc["forecast"]).all()
    assert (fc["forecast"] < fc["upper_80"]).all() and (fc["upper_80"] < fc["upper_95"]).all()
    fig = plot_forecast(df, fc, FiguresConfig(width=4, height=3, dpi=40), season=12)
    n = fc["series_id"].nunique()  # a panel for each of the first series, named
    assert [ax.get_title() for ax in fig.axes] == sorted(fc["series_id"].unique())[:4]
    assert fig.get_suptitle().endswith(f"{min(n, 4)} of {n} series")


def test_the_future_reads_the_last_window_of_each_series(tmp_path):
    data = monthly_file(tmp_path)
    df, meta = load_source(data)
    values, split = prepared(df, meta, data)
    assert split.last_origins().tolist() == [60 - 12, 120 - 12]
    changed = values.copy()
    changed[:48] = -1.0  # everything before the last window of series a
    model = Forecaster(hidden_size=4, n_outputs=3).eval()
    a, b = (future_forecast(model, x, split, INTERVALS)["forecast"] for x in (values, changed))
    np.testing.assert_array_equal(a, b)


def test_generated_data_continues_with_integer_steps():
    df, meta = load_source(DataConfig(n_points=100))
    _, split = prepared(df, meta, DataConfig(n_points=100), horizon=4)
    assert split.normalize == "none"
    times = future_times(df, split, 4)
    assert times == {"sine": {"step": [100, 101, 102, 103]}}


@pytest.mark.parametrize("horizon", [1, 5])
def test_refit_full_trains_on_every_window(horizon):
    df, meta = load_source(DataConfig(n_points=100))
    values, split = prepared(df, meta, DataConfig(n_points=100), horizon=horizon)
    full = split.all_origins(values)
    (s,) = full.series
    assert len(full.origins("train")) == 100 - 12 - horizon + 1
    assert len(full.origins("val")) == 0 and s.fit_range == (0, 100)


def test_a_plus_0530_file_is_forecast_in_its_own_zone_in_the_file_and_the_figure(tmp_path):
    end = pd.Timestamp("2024-06-13T00:00+05:30")
    times = pd.date_range(end=end, periods=200, freq="h")
    pd.DataFrame({"time": [t.isoformat(timespec="minutes") for t in times],
                  "load": 100 + 10 * np.sin(np.arange(200) * 2 * np.pi / 24)}).to_csv(tmp_path / "tz.csv", index=False)
    data = DataConfig(data_path=str(tmp_path / "tz.csv"), time_column="time", value_column="load")
    df, meta = load_source(data)
    assert meta["time_zone"] == "+05:30"
    values, split = prepared(df, meta, data, horizon=4)
    torch.manual_seed(0)
    cols = future_forecast(Forecaster(hidden_size=4, n_outputs=4).eval(), values, split,
                           {"halfwidths": {"80": [1.0] * 4}})
    fc = forecast_frame(split, future_times(df, split, 4), cols)
    fc.to_parquet(tmp_path / "forecast.parquet")  # the zone survives the file
    back = pd.read_parquet(tmp_path / "forecast.parquet")
    assert [t.isoformat(timespec="minutes") for t in back["timestamp"]] == [
        "2024-06-13T01:00+05:30", "2024-06-13T02:00+05:30", "2024-06-13T03:00+05:30", "2024-06-13T04:00+05:30"]
    assert (back["timestamp"] > end).all()
    assert table_rows(back)[0]["timestamp"] == "2024-06-13T01:00:00+05:30"  # the rnn-forecast artifact
    fig = plot_forecast(df, back, FiguresConfig(width=4, height=3, dpi=40))
    forecast_line = fig.axes[0].get_lines()[-1]
    last_x = mdates.num2date(forecast_line.get_xdata(orig=False)[-1]).replace(tzinfo=None)
    assert last_x == pd.Timestamp("2024-06-13 04:00")  # local wall-clock time on the axis, not 22:30 UTC


def test_zero_width_bands_are_not_drawn_as_intervals(tmp_path):
    data = monthly_file(tmp_path)
    df, meta = load_source(data)
    values, split = prepared(df, meta, data)
    cols = future_forecast(Forecaster(hidden_size=4, n_outputs=3).eval(), values, split,
                           {"halfwidths": {"80": [0.0] * 3, "95": [1.0] * 3}})
    fc = forecast_frame(split, future_times(df, split, 3), cols)
    (legend,) = plot_forecast(df, fc, FiguresConfig(width=4, height=3, dpi=40)).legends  # below the panels
    labels = [t.get_text() for t in legend.get_texts()]
    assert "95% interval" in labels and "80% interval" not in labels


def test_the_future_bands_add_every_test_target_to_the_calibration(tmp_path):
    """final_halfwidths (the calibration and every test residual) give the future's bands; a file
    written before them has only halfwidths."""
    data = monthly_file(tmp_path)
    df, meta = load_source(data)
    values, split = prepared(df, meta, data)
    net = Forecaster(hidden_size=4, n_outputs=3).eval()
    old = future_forecast(net, values, split, INTERVALS)
    new = future_forecast(net, values, split, {**INTERVALS, "final_halfwidths": {"80": [2.0, 4.0, 6.0]}})
    np.testing.assert_allclose(new["upper_80"] - new["forecast"], 2 * (old["upper_80"] - old["forecast"]))
    assert set(new) == {"forecast", "lower_80", "upper_80"}


def test_a_forecast_outside_min_minus_span_to_max_plus_span_of_its_history_is_named():
    from tasks.formats.forecast import range_words
    from tasks.forecast import outside_history

    history = pd.DataFrame({"series_id": ["flat"] * 3 + ["b"] * 3 + ["c"] * 3,
                            "value": [50.0, 50.0, 50.0, 0.0, 1.0, 0.5, -2.0, 2.0, 0.0]})
    fc = pd.DataFrame({"series_id": ["flat", "flat", "b", "b", "c", "c"],
                       "forecast": [50.0, 50.0, 1.5, 2.5, -6.0, 6.0]})  # b: 2.5 > 1 + 1; c: inside [-6, 6]
    out = outside_history(fc, history)
    assert out["series_id"].tolist() == ["b"] and out.iloc[0][["lowest", "highest", "min", "max"]].tolist() == [
        1.5, 2.5, 0.0, 1.0]
    fc.loc[1, "forecast"] = 50.001  # a constant forecasts itself, or says it does not
    assert outside_history(fc, history)["series_id"].tolist() == ["flat", "b"]
    words = range_words({"n": 2, "series": outside_history(fc, history).to_dict("records")})
    assert words.startswith("2 series forecast outside [min - span, max + span]")
    assert "'b' (forecast 1.5 to 2.5" in words
