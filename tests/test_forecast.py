"""The future: forecasts start right after each series' last time, on its own frequency."""

import numpy as np
import pandas as pd
import pytest
import torch

from tasks.config import DataConfig, FiguresConfig, WindowConfig
from tasks.forecast import (
    forecast_frame,
    full_split,
    future_forecast,
    future_times,
    last_origins,
    plot_forecast,
)
from tasks.generate import load_source
from tasks.model import Forecaster
from tasks.windowing import (
    build_split,
    fit_scaler,
    ranges_to_index,
    resolve_normalize,
    season_info,
)

INTERVALS = {"halfwidths": {"80": [1.0, 2.0, 3.0], "95": [2.0, 4.0, 6.0]}}


def prepared(df: pd.DataFrame, meta: dict, horizon: int = 3):
    """What the window stage makes of a series file: values and split."""
    values = df["value"].to_numpy(float)
    ids = [str(k) for k in df.groupby("series_id", sort=False).groups]
    split = build_split(df.groupby("series_id", sort=False).size().loc[ids].tolist(), ids,
                        WindowConfig(seq_length=12, horizon=horizon))
    split["normalize"] = resolve_normalize("auto", meta["source"])
    split["scaler"] = fit_scaler(values, split, split["normalize"])
    split.update(season_info(meta, split))
    return values, split


def monthly_file(tmp_path, n=60):
    dates = pd.date_range("2001-01-01", periods=n, freq="MS")
    frame = pd.DataFrame({"month": np.tile(dates.strftime("%Y-%m-%d"), 2), "shop": np.repeat(["a", "b"], n),
                          "sales": np.r_[100 + 10 * np.sin(np.arange(n)), 50 + np.arange(n)]})
    frame.to_csv(tmp_path / "m.csv", index=False)
    return DataConfig(data_path=str(tmp_path / "m.csv"), time_column="month", value_column="sales", id_column="shop")


def test_a_monthly_file_is_forecast_from_the_next_month_on(tmp_path):
    df, meta = load_source(monthly_file(tmp_path))
    values, split = prepared(df, meta)
    assert split["normalize"] == "window" and split["frequency"] == "MS"
    torch.manual_seed(0)
    cols = future_forecast(Forecaster(hidden_size=4, horizon=3).eval(), values, split, INTERVALS)
    fc = forecast_frame(split, future_times(df, split, 3), cols)
    assert list(fc.columns) == ["series_id", "lead", "step", "timestamp", "forecast",
                                "lower_80", "upper_80", "lower_95", "upper_95"]
    for sid, g in fc.groupby("series_id"):
        assert g["timestamp"].tolist() == list(pd.date_range("2006-01-01", periods=3, freq="MS"))
        assert g["step"].tolist() == [60, 61, 62] and g["lead"].tolist() == [1, 2, 3]
    assert (fc["lower_95"] < fc["lower_80"]).all() and (fc["lower_80"] < fc["forecast"]).all()
    assert (fc["forecast"] < fc["upper_80"]).all() and (fc["upper_80"] < fc["upper_95"]).all()
    fig = plot_forecast(df, fc, FiguresConfig(width=4, height=3, dpi=40), season=12)
    assert fig.axes[0].get_title().endswith("— a")


def test_the_future_reads_the_last_window_of_each_series(tmp_path):
    df, meta = load_source(monthly_file(tmp_path))
    values, split = prepared(df, meta)
    assert last_origins(split).tolist() == [60 - 12, 120 - 12]
    changed = values.copy()
    changed[:48] = -1.0  # everything before the last window of series a
    model = Forecaster(hidden_size=4, horizon=3).eval()
    a, b = (future_forecast(model, x, split, INTERVALS)["forecast"] for x in (values, changed))
    np.testing.assert_array_equal(a, b)


def test_generated_data_continues_with_integer_steps():
    df, meta = load_source(DataConfig(n_points=100))
    _, split = prepared(df, meta, horizon=4)
    assert split["normalize"] == "none"
    times = future_times(df, split, 4)
    assert times == {"sine": {"step": [100, 101, 102, 103]}}


@pytest.mark.parametrize("horizon", [1, 5])
def test_refit_full_trains_on_every_window(horizon):
    df, meta = load_source(DataConfig(n_points=100))
    values, split = prepared(df, meta, horizon=horizon)
    full = full_split(values, split)
    (s,) = full["series"]
    assert len(ranges_to_index(full, "train")) == 100 - 12 - horizon + 1
    assert len(ranges_to_index(full, "val")) == 0 and s["fit_range"] == [0, 100]
