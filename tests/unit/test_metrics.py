import math

import numpy as np
import pytest

from tasks.components.metrics import (
    all_metrics,
    mae,
    mase,
    mse,
    naive_scale,
    rmse,
    smape,
)

Y = np.array([1.0, 2.0, 4.0])
P = np.array([2.0, 2.0, 1.0])  # errors -1, 0, 3


def test_mse_rmse_mae_by_hand():
    assert mse(Y, P) == pytest.approx((1 + 0 + 9) / 3)
    assert rmse(Y, P) == pytest.approx(math.sqrt(10 / 3))
    assert mae(Y, P) == pytest.approx(4 / 3)


def test_smape_by_hand():
    # 200*|e|/(|y|+|p|): 200/3, 0, 600/5
    assert smape(Y, P) == pytest.approx((200 / 3 + 0 + 120) / 3)
    assert smape(np.zeros(2), np.zeros(2)) == 0.0


def test_naive_scale_and_mase_by_hand():
    hist = np.array([1.0, 3.0, 2.0, 6.0])  # |diffs| 2, 1, 4 -> 7/3
    assert naive_scale(hist) == pytest.approx(7 / 3)
    assert naive_scale(hist, season=2) == pytest.approx((1 + 3) / 2)
    assert mase(Y, P, 7 / 3) == pytest.approx((4 / 3) / (7 / 3))
    assert math.isnan(naive_scale(np.array([1.0])))


def test_all_metrics_keys():
    assert set(all_metrics(Y, P, 1.0)) == {"mse", "rmse", "mae", "smape", "mase"}


def test_smape_never_scores_nan_forecasts_as_perfect():
    assert math.isnan(smape(Y, np.array([np.nan, np.nan, np.nan])))
    assert math.isnan(smape(np.zeros(2), np.array([0.0, np.nan])))
    assert smape(np.zeros(2), np.zeros(2)) == 0.0  # both zero: still an exact forecast


def test_mase_is_undefined_without_a_scale_and_leaves_out_unscaled_points(recwarn):
    assert math.isnan(mase(Y, P, 0.0))  # a constant training range: MASE is undefined
    assert math.isnan(mase(Y, Y, 0.0))  # even for a perfect forecast
    assert mase(Y, P, np.array([0.0, 1.0, 2.0])) == pytest.approx((0 / 1 + 3 / 2) / 2)
    assert math.isnan(mase(Y, np.array([np.nan, 2.0, 4.0]), 1.0))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
