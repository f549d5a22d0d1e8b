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
