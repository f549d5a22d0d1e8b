"""Multi-step forecasts: origins with room for H targets, direct and recursive models, and a
rolling-origin backtest that never reads past an origin."""

import numpy as np
import pytest
import torch

from tasks.components.backtest import backtest, model_forecasts
from tasks.components.baselines import baselines
from tasks.components.fit import train_model
from tasks.components.scaling import from_window, to_window, window_stats
from tasks.components.series_data import SeriesData
from tasks.components.specs import FitSettings
from tasks.components.split import build_split, min_series_length, split_ranges
from tasks.components.synthetic import sine_values
from tasks.evaluate import refitter
from tests.helpers import network, resolved, split_for

CPU = torch.device("cpu")
TINY = FitSettings(epochs=2, patience=0)


def series(n=200, noise=0.05):
    return 5.0 + sine_values(n_points=n, noise=noise, seed=4, x_max=16 * np.pi)


def targets(split, part):
    """Every target index of every origin of a part: (n, H)."""
    return split.target_index(split.origins(part))


@pytest.mark.parametrize("horizon", [1, 3, 12])
def test_origins_leave_room_for_h_targets_and_parts_share_no_target(horizon):
    n, L = 300, 20
    split = build_split([n], ["a"], L, horizon)
    tr, va, te = (targets(split, p) for p in ("train", "val", "test"))
    assert te.max() == n - 1  # the last origin's last target is the series' last point
    assert tr.max() < va.min() and va.max() < te.min()  # purged: no target in two parts
    assert split.series[0].fit_range == (0, int(tr.max()) + 1)
    assert split.horizon == horizon


def test_horizon_one_is_the_tutorial_split():
    assert split_ranges(1000, 0.8, 0.1, 1) == {"train": (0, 720), "val": (720, 800), "cal": (800, 800),
                                               "test": (800, 1000)}  # no calibration range: the tutorial's
    assert split_ranges(1000, 0.8, 0.1, 5)["test"] == (800, 1000)
    n = min_series_length(20, 12)
    build_split([n], ["a"], 20, 12)
    with pytest.raises(ValueError):
        build_split([n - 1], ["a"], 20, 12)


def test_batches_hold_the_next_h_values():
    data = SeriesData(torch.arange(20.0), seq_length=4, horizon=3)
    x, y = data.batch(torch.tensor([0, 10]))
    assert x[1, :, 0].tolist() == [10, 11, 12, 13] and y.tolist() == [[4, 5, 6], [14, 15, 16]]


@pytest.mark.parametrize("strategy", ["direct", "recursive"])
def test_both_strategies_forecast_h_steps_per_origin(strategy):
    v = series()
    split = split_for(v, seq_length=10, horizon=4, normalize="window")
    model, _ = train_model(v, split, network(split, hidden_size=4, strategy=strategy), TINY, CPU)
    assert model.head.out_features == (4 if strategy == "direct" else 1)
    idx = split.origins("test")
    out = model_forecasts(model, v, split, idx, 4)
    assert out.shape == (len(idx), 4) and np.isfinite(out).all()


def test_recursive_forecasts_feed_back_with_the_input_windows_statistics():
    v = series()
    split = split_for(v, seq_length=6, horizon=3, normalize="window")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 1)).eval()  # a one-step model
    idx = np.array([3, 50])
    got = model_forecasts(model, v, split, idx, 3)
    sc = split.scalers[0]  # window mode: centred on the training mean, a power of two, the window floor
    x = torch.as_tensor((v - sc.mean) / sc.std, dtype=torch.float32).unfold(0, 6, 1)[torch.as_tensor(idx)]
    loc, scale = window_stats(x, sc.floor)
    z, outs = to_window(x, loc, scale), []
    with torch.no_grad():
        for _ in range(3):
            step = model(z.unsqueeze(-1))
            outs.append(step)
            z = torch.cat([z[:, 1:], step], dim=1)  # the same loc/scale for every fed-back step
    np.testing.assert_allclose(got, from_window(torch.cat(outs, 1), loc, scale).double().numpy() * sc.std + sc.mean,
                               rtol=1e-6)


def test_seasonal_naive_repeats_the_last_season_observed():
    v = np.arange(100.0)
    out = baselines(v, build_split([100], ["a"], seq_length=10), np.array([0]), steps=6, season=4)  # last observed 9
    assert out["naive"].tolist() == [[9.0] * 6]
    assert out["seasonal_naive"].tolist() == [[6, 7, 8, 9, 6, 7]]  # y[T + h - 4*ceil(h/4)]


def test_metrics_are_per_lead_and_their_average():
    v = series()
    split = split_for(v, seq_length=10, horizon=3)
    model, _ = train_model(v, split, network(split, hidden_size=4), TINY, CPU)
    df, result = backtest(model, v, split, levels=(0.8, 0.95), season_length=8)
    n = result["n_test"]
    assert len(df) == 3 * n and df["lead"].tolist()[:3] == [1, 2, 3]
    for name in ("model", "naive", "seasonal_naive"):
        per = result["per_lead"][name]
        assert set(per) == {"mse", "rmse", "mae", "smape", "mase"} and len(per["mase"]) == 3
        assert result["metrics"][name]["mase"] == pytest.approx(np.mean(per["mase"]))
        lead2 = df[df["lead"] == 2]
        assert per["mae"][1] == pytest.approx(np.mean(np.abs(lead2["actual"] - lead2[name])))
    np.testing.assert_allclose(df["actual"], v[df["step"]])


def _changed_after(v, k):
    w = v.copy()
    w[k:] += 100.0 * np.sin(np.arange(len(w) - k)) + 50.0
    return w


@pytest.mark.parametrize("refit_every", [0, 5])
def test_the_backtest_never_reads_past_an_origin(refit_every):
    v = series(n=160)
    split = split_for(v, seq_length=10, horizon=3, normalize="window")
    cfg = resolved(model={"hidden_size": 4}, train={"epochs": 2, "patience": 0})
    model, _ = train_model(v, split, network(split, hidden_size=4), TINY, CPU)
    first_target = split.series[0].test[0] + split.seq_length
    k = first_target + 5  # values from here on change (the first target of the second block)
    w = _changed_after(v, k)
    runs = [backtest(model, x, split, levels=(0.8, 0.95), season_length=8, refit_every=refit_every,
                     refit=refitter(x, cfg.model, cfg.train) if refit_every else None) for x in (v, w)]
    (a, ra), (b, _) = runs
    seen = a["origin"].to_numpy() < k  # the last observed point of the origin is before the change
    for col in ("model", "naive", "seasonal_naive", "lower_80", "upper_95"):
        np.testing.assert_array_equal(a.loc[seen, col], b.loc[seen, col])
    assert not np.allclose(a.loc[~seen, "model"], b.loc[~seen, "model"])
    assert ra["refits"] == (int(np.ceil(ra["n_test"] / 5)) if refit_every else 0)


def test_refit_blocks_train_only_on_points_before_their_first_target():
    v = series(n=160)
    split = split_for(v, seq_length=10, horizon=3, normalize="standard")
    blocks = split.refit_blocks(v, 7)
    assert sum(len(o) for _, o in blocks) == len(split.origins("test"))
    for sub, origins in blocks:
        first_target = origins[0] + 10
        assert targets(sub, "train").max() < targets(sub, "val").min() <= targets(sub, "val").max() < first_target
        assert sub.series[0].fit_range[1] <= first_target
