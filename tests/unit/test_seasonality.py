"""The ingested series' frequency flows on: season length in split.json, seasonal-naive baseline."""

import numpy as np
import pandas as pd
import pytest

from tasks.components.backtest import backtest
from tasks.components.baselines import season_for
from tasks.components.network import Forecaster
from tasks.config import DataConfig, EvalConfig, WindowConfig
from tasks.generate import load_source
from tasks.windowing import split_series


def monthly_csv(tmp_path, n=60):
    dates = pd.date_range("2005-01-01", periods=n, freq="MS").strftime("%Y-%m-%d")
    values = 1000 + 100 * np.sin(2 * np.pi * np.arange(n) / 12)
    path = tmp_path / "m.csv"
    pd.DataFrame({"month": dates, "sales": values}).to_csv(path, index=False)
    return path


def test_a_monthly_file_gives_frequency_ms_and_season_12(tmp_path, caplog):
    caplog.set_level("INFO", logger="tasks")
    df, meta = load_source(DataConfig(data_path=str(monthly_csv(tmp_path)), time_column="month", value_column="sales"))
    assert meta["frequency"] == "MS" and meta["season_length"] == 12
    assert "inferred frequency MS" in caplog.text


def test_generated_data_has_no_season():
    _, meta = load_source(DataConfig(n_points=50))
    assert meta["season_length"] is None


def split_with(meta, n=120, seq_length=12, values=None):
    """The window stage's split of one series of `n` points with the series file's metadata `meta`."""
    values = np.zeros(n) if values is None else values
    df = pd.DataFrame({"series_id": "s", "step": np.arange(n), "value": values})
    return split_series(df, meta, WindowConfig(seq_length=seq_length, normalize="none"))[1]


def test_split_records_frequency_and_season():
    split = split_with({"frequency": "MS", "season_length": 12})
    assert split.frequency == "MS" and split.season_length == 12
    assert split_with({"frequency": "1"}).season_length is None


def test_season_comes_from_eval_config_first_then_the_frequency():
    split = split_with({"frequency": "MS", "season_length": 12})
    assert season_for(split, EvalConfig().season_length) == 12
    assert season_for(split, EvalConfig(season_length=4).season_length) == 4
    assert season_for(split_with({"frequency": "1", "season_length": None}), None) is None
    assert season_for(split, 500) is None  # longer than the history: no baseline


def test_eval_config_season_is_bounded():
    with pytest.raises(ValueError):
        EvalConfig(season_length=0)


def test_seasonal_naive_is_scored_on_the_same_targets():
    n = 120
    values = 1000 + 100 * np.sin(2 * np.pi * np.arange(n) / 12)
    split = split_with({"frequency": "MS", "season_length": 12}, n=n, values=values)
    df, result = backtest(Forecaster(hidden_size=4).eval(), values, split, levels=EvalConfig().levels)
    targets = df["step"].to_numpy()
    np.testing.assert_allclose(df["seasonal_naive"], values[targets - 12])
    np.testing.assert_allclose(df["naive"], values[targets - 1])
    assert result["season_length"] == 12 and result["frequency"] == "MS"
    assert result["metrics"]["seasonal_naive"]["mase"] < 1e-9  # a pure 12-month cycle


def half_hourly_csv(tmp_path, weeks=6, seed=0):
    """Half-hourly load: a daily cycle, a weekend lift and noise (the issue's kind)."""
    rng = np.random.default_rng(seed)
    t = np.arange(48 * 7 * weeks)
    values = 10 * np.sin(2 * np.pi * t / 48) + 5 * (((t // 48) % 7) >= 5) + rng.normal(0, 0.5, len(t))
    times = pd.date_range("2024-01-01", periods=len(t), freq="30min").strftime("%Y-%m-%d %H:%M")
    path = tmp_path / "hh.csv"
    pd.DataFrame({"time": times, "load": values}).to_csv(path, index=False)
    return path


def test_half_hourly_seasons_are_a_day_and_a_week_logged_and_recorded(tmp_path, caplog):
    caplog.set_level("INFO", logger="tasks")
    df, meta = load_source(DataConfig(data_path=str(half_hourly_csv(tmp_path)), time_column="time",
                                      value_column="load"))
    assert meta["frequency"] == "30min" and meta["season_length"] == 48 and meta["seasons"] == [48, 336]
    assert "inferred frequency 30min (season length 48; further season 336)" in caplog.text


def test_the_backtest_scores_both_seasons_and_the_gate_faces_the_better_one(tmp_path):
    df, meta = load_source(DataConfig(data_path=str(half_hourly_csv(tmp_path)), time_column="time",
                                      value_column="load"))
    values, split = split_series(df, meta, WindowConfig(seq_length=48, normalize="none"))
    df, result = backtest(Forecaster(hidden_size=4).eval(), values, split, levels=EvalConfig().levels)
    targets = df["step"].to_numpy()
    np.testing.assert_allclose(df["seasonal_naive"], values[targets - 48])
    np.testing.assert_allclose(df["seasonal_naive_336"], values[targets - 336])
    m = result["metrics"]
    assert result["seasons"] == [48, 336] and result["season_length"] == 48
    assert m["seasonal_naive_336"]["mase"] < m["seasonal_naive"]["mase"]  # the weekend: the week knows it
    before = result["pretest"]["metrics"]  # the gate is decided before the test range, facing the better there too
    assert set(before) == {"model", "naive", "seasonal_naive", "seasonal_naive_336"}
    assert result["gate"]["baseline"] == min(before.keys() - {"model"}, key=lambda k: before[k]["mase"])
    assert result["gate"]["baseline_value"] == before[result["gate"]["baseline"]]["mase"]
    assert result["gate"]["test"]["baseline"] == m[result["gate"]["baseline"]]["mase"]
    _, overridden = backtest(Forecaster(hidden_size=4).eval(), values, split, levels=EvalConfig().levels,
                             season_length=2)
    assert overridden["seasons"] == [2] and set(overridden["metrics"]) == {"model", "naive", "seasonal_naive"}


def test_huge_values_train_without_overflow_under_window_scaling():
    from tasks.components.fit import train_model
    from tasks.components.specs import FitSettings, NetworkSpec
    from tests.helpers import split_for

    values = 1e36 * (2 + np.sin(np.arange(120) / 3.0))  # float32 holds them; their squares it does not
    split = split_for(values, seq_length=12, normalize="window")
    sc = split.scalers[0]  # centred on the training mean, divided by a power of two near the largest distance
    assert 1e36 < sc.mean < 3e36 and 1e36 < sc.std < 2.1e36 and sc.std == 2.0 ** np.round(np.log2(sc.std))
    model, st = train_model(values, split, NetworkSpec(hidden_size=4), FitSettings(epochs=2, patience=0), "cpu")
    assert np.isfinite(st.history["train_loss"]).all()
    _, result = backtest(model.eval(), values, split, levels=(0.8,))
    assert 0 < result["metrics"]["model"]["mase"] < 10
