"""Degenerate series in the default (search) path (issue 22): intermittent demand is never forecast
below zero, nor are its intervals; a hybrid of a constant series weighs its parts by what it can
measure (MAE) and the part that forecasts it exactly takes the weight."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.components.backtest import backtest, floor_at_zero, nonnegative_history, validation_scores
from tasks.components.ensemble import Member
from tasks.components.references import Statistical
from tests.helpers import split_for


def intermittent(n=240, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.poisson(0.3, n) * rng.integers(1, 5, n)).astype(float)


def minus_one(values, split, idx, steps):
    """A forecaster that forecasts below zero everywhere: the last value minus 1."""
    return values[split.last_observed(np.asarray(idx))][:, None] - 1.0 + np.zeros((1, steps))


def test_an_origin_is_floored_at_zero_only_when_its_own_history_has_no_negative_value():
    v = np.concatenate([intermittent(100), intermittent(100, seed=1)])
    v[150] = -2.0  # the second series turns negative at its step 50
    split = split_for(v, ("a", "b"), lengths=(100, 100), seq_length=5, horizon=2)
    idx = np.array([0, 90, 100, 140, 146, 190])  # b's origins 40 (last observed 44) and 46 (last observed 50)
    assert nonnegative_history(v, split, idx).tolist() == [True, True, True, True, False, False]
    pred = floor_at_zero(np.full((6, 2), -1.0), v, split, idx)
    assert (pred[:4] == 0).all() and (pred[4:] == -1).all()  # never a target: only the origin's past


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_intermittent_demand_is_forecast_and_bounded_at_zero_with_nested_bands(seed):
    v = intermittent(seed=seed)
    split = split_for(v, seq_length=12, horizon=3, calibration=10)
    df, result = backtest(minus_one, v, split, levels=(0.8, 0.95))
    cols = ["lower_95", "lower_80", "model", "upper_80", "upper_95"]
    assert (df[cols].to_numpy() >= 0).all()  # the forecast and both bands
    assert (np.diff(df[cols].to_numpy(), axis=1) >= 0).all()  # nested at every lead
    assert (df["model"] == 0).any() and result["metrics"]["model"]["mae"] is not None


def test_a_series_with_negative_values_is_not_floored():
    v = intermittent() - 1.0
    split = split_for(v, seq_length=12, horizon=3)
    df, _ = backtest(minus_one, v, split, levels=(0.8,))
    assert (df["model"] < 0).any()


def test_the_future_of_intermittent_demand_is_at_zero_and_above():
    from tasks.forecast import future_forecast

    v = intermittent()
    split = split_for(v, seq_length=12, horizon=3)
    cols = future_forecast(minus_one, v, split, {"halfwidths": {"80": [5.0, 5.0, 5.0], "95": [9.0, 9.0, 9.0]}})
    for name in ("forecast", "lower_80", "lower_95"):
        assert (cols[name] >= 0).all(), name
    assert (cols["lower_95"] <= cols["lower_80"]).all() and (cols["upper_80"] <= cols["upper_95"]).all()


def test_a_constant_series_hybrid_is_weighed_by_mae_and_its_exact_part_takes_all_the_weight():
    from tasks.config import EvalConfig
    from tasks.validate import hybrid_weights, weighing_metric

    v = np.full(120, 50.0)
    split = split_for(v, seq_length=12, horizon=1, calibration=10)
    nets = [Member(lambda values, sp, idx, steps: np.full((len(idx), steps), 50.5), split)]  # off by 0.5
    statistical = []
    for name in ("snaive", "ets"):
        m = Statistical(name, 12)
        s = validation_scores(m, v, split, 12)
        c = validation_scores(m, v, split, 12, part="cal")
        statistical.append({**s, "calibration": {"mase": None, "mae": c["metrics"]["model"]["mae"], "n": c["n_val"]}})
    assert all(s["metrics"]["model"]["mase"] is None for s in statistical)  # a constant: no naive error to scale by
    assert weighing_metric(statistical) == "mae"
    forecasting, calibration, mase = hybrid_weights(v, split, nets, nets, "median", statistical,
                                                    EvalConfig(season_length=12))
    assert mase is None
    assert forecasting[0] == 0 and calibration[0] == 0  # the network misses by 0.5
    assert sum(forecasting) == pytest.approx(1.0) and forecasting[1] > 0  # seasonal naive is exact


def test_window_scaling_keeps_any_network_output_within_the_series_own_range_whatever_its_level():
    """A meter at 1.2e8 swinging by +-2 (issue 22): a network's output in window units becomes a
    forecast near the series, and the same forecast at any level; a floor relative to the level
    (1e-3 of it) made an output of 0.007 a miss of ~830 on a series 4.3 wide. An untrained network
    outputs whatever it outputs: the map, not the training, must keep it sane."""
    import torch

    from tasks.components.backtest import model_forecasts
    from tasks.components.network import Forecaster

    rng = np.random.default_rng(0)
    swing = 2 * np.sin(2 * np.pi * np.arange(300) / 7) + rng.normal(0, 0.3, 300)
    torch.manual_seed(0)
    model = Forecaster(cell="gru", hidden_size=8, n_outputs=3).eval()
    with torch.no_grad():
        model.head.bias += 0.5  # an output well off zero in window units
    preds = {}
    for level in (0.0, 1.2e8):
        v = level + swing
        split = split_for(v, seq_length=14, horizon=3, normalize="window")
        idx = split.origins("test")
        preds[level] = model_forecasts(model, v, split, idx, 3)
        lo, hi = v.min(), v.max()
        span = hi - lo
        assert ((preds[level] >= lo - span) & (preds[level] <= hi + span)).all(), level
    np.testing.assert_allclose(preds[1.2e8] - 1.2e8, preds[0.0], atol=0.05)  # the level plays no part
