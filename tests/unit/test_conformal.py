"""Split-conformal intervals: calibrated on validation origins, nominal coverage on fresh data."""

import numpy as np
import pytest
import torch

from tasks.components.backtest import backtest
from tasks.components.conformal import calibrate, conformal_halfwidths, interval_stats
from tests.helpers import split_for


class LastValue(torch.nn.Module):
    """The naive forecaster as a model: every lead is the window's last value."""

    def __init__(self, horizon: int) -> None:
        super().__init__()
        self.horizon = horizon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, -1, :].expand(-1, self.horizon)


def test_halfwidth_is_the_conformal_order_statistic():
    r = np.array([[1.0, -10.0], [-2.0, 20.0], [3.0, 30.0], [4.0, -40.0]])
    # n = 4, level 0.6: ceil(5 * 0.6) = 3rd smallest |r| per lead
    assert conformal_halfwidths(r, (0.6,))["60"].tolist() == [3.0, 30.0]
    assert np.isinf(conformal_halfwidths(r, (0.9,))["90"]).all()  # ceil(5 * 0.9) = 5 > n


def test_too_few_calibration_points_are_pooled_over_leads_then_clipped():
    rng = np.random.default_rng(0)
    s = np.abs(rng.normal(size=(6, 12))) * np.arange(1, 13)  # spread grows with the lead
    cal = calibrate(s, (0.9, 0.95))  # 6 points: too few for 90% (9) and 95% (19)
    assert cal["method"] == "pooled over leads" and cal["clipped"] == []
    q = cal["halfwidths"]["90"]
    assert q.shape == (12,) and np.allclose(q / s.mean(axis=0), q[0] / s[:, 0].mean())  # each lead's own spread
    tiny = calibrate(s[:, :1], (0.95,))
    assert tiny["clipped"] == ["95"] and tiny["halfwidths"]["95"][0] == s[:, 0].max()


def test_each_level_is_pooled_only_when_its_own_points_are_too_few():
    rng = np.random.default_rng(3)
    s = np.abs(rng.normal(size=(10, 4))) * np.arange(1, 5)  # 10 points: enough for 80% (4), not 95% (19)
    cal = calibrate(s, (0.8, 0.95))
    assert cal["method"] == "per lead, 95% pooled over leads" and cal["clipped"] == []
    assert np.array_equal(cal["halfwidths"]["80"], conformal_halfwidths(s, (0.8,))["80"])  # the exact quantile
    assert np.array_equal(cal["halfwidths"]["95"], calibrate(s, (0.95,))["halfwidths"]["95"])
    assert calibrate(s, (0.8,))["method"] == "per lead"


@pytest.mark.parametrize("level", [0.8, 0.95])
def test_gaussian_noise_gets_nominal_coverage(level):
    rng = np.random.default_rng(1)
    truth = np.sin(np.linspace(0, 60, 6000))
    cal, test = truth[:2000] + rng.normal(0, 0.3, 2000), truth[2000:] + rng.normal(0, 0.3, 4000)
    q = calibrate((cal - truth[:2000])[:, None], (level,))["halfwidths"][str(round(level * 100))]
    cov = interval_stats(test[:, None], truth[2000:, None], q)["coverage"]
    assert abs(cov - level) < 3 * np.sqrt(level * (1 - level) / 4000) + 1 / 2000
    assert q[0] == pytest.approx(0.3 * {0.8: 1.2816, 0.95: 1.96}[level], rel=0.08)


def test_backtest_intervals_cover_a_random_walk_at_every_lead():
    """Through the evaluate stage: a naive model on a Gaussian random walk, calibrated on val only."""
    rng = np.random.default_rng(2)
    v = 100.0 + np.cumsum(rng.normal(0, 1.0, 8000))
    split = split_for(v, ("rw",), seq_length=5, horizon=3, train_fraction=0.5, val_fraction=0.6)
    _, result = backtest(LastValue(3).eval(), v, split, levels=(0.8, 0.95))
    iv = result["intervals"]
    assert iv["method"] == "per lead" and iv["n_calibration"] > 2000
    hw = np.array(iv["halfwidths"]["80"])
    assert hw[0] < hw[1] < hw[2]  # the h-step error of a random walk grows like sqrt(h)
    for name, level in (("80", 0.8), ("95", 0.95)):
        for cov in iv["test"][name]["coverage_by_lead"]:
            assert abs(cov - level) < 0.03, (name, cov)
        assert result["intervals"]["test"][name]["mean_width"] > 0


def test_a_split_without_calibration_or_validation_origins_says_it_has_no_intervals():
    import logging

    from tasks.components.backtest import conformal_bands

    values = np.sin(np.arange(60) / 3.0)
    split = split_for(values, ("s",), seq_length=5, horizon=1, val_fraction=0.0)
    assert split.count("val") == 0 and split.count("cal") == 0
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # the "tasks" loggers may not propagate (Prefect's logging config)
    logger = logging.getLogger("tasks.components.backtest")
    logger.addHandler(handler)
    try:
        cal = conformal_bands(lambda v, sp, idx, steps: np.zeros((len(idx), steps)), values, split, (0.8,))
    finally:
        logger.removeHandler(handler)
    assert cal["n_calibration"] == 0 and np.isnan(cal["halfwidths"]["80"]).all()
    assert [r.getMessage() for r in records if r.levelno == logging.WARNING] == [
        "no calibration or validation origins: no prediction intervals (the windows leave the split no room; lower "
        "--seq-length or --horizon)"]
