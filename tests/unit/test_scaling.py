"""Scaling without leakage: the global scaler sees the training range only; per-window scaling
uses each window's inputs only and is the same map in training and evaluation."""

import numpy as np
import pytest
import torch

from tasks.components.backtest import model_forecasts, one_step_forecasts
from tasks.components.fit import TrainingDiverged, fit, train_model
from tasks.components.network import Forecaster
from tasks.components.scaling import from_window, to_window, window_stats
from tasks.components.series_data import series_data
from tasks.components.specs import FitSettings, NetworkSpec
from tasks.components.split import WINDOW_FLOOR
from tasks.components.synthetic import sine_values
from tests.helpers import split_for

CPU = torch.device("cpu")
MODEL = NetworkSpec(hidden_size=8)


def trended(n=240, noise=0.05):
    """A sine on a strong trend, far from zero: what a global scaler extrapolates badly."""
    return 500.0 + 3.0 * np.arange(n) + 20 * sine_values(n_points=n, noise=noise, seed=3)


def weights(model):
    return [v.clone() for v in model.state_dict().values()]


def test_window_stats_by_hand_and_the_pair_round_trips():
    x = torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0], [0.0, 0.0, 0.0]])
    floor = torch.tensor([[0.1], [0.25], [0.0]])
    loc, scale = window_stats(x, floor)
    assert loc[:, 0].tolist() == [2.0, 5.0, 0.0]
    assert scale[0, 0].item() == pytest.approx((2 / 3) ** 0.5)
    assert scale[1, 0].item() == 0.25  # a constant window: floored at its series' floor, whatever its level
    assert scale[2, 0].item() == 0.0  # no spread, no floor (a constant series): scale 0
    y = torch.tensor([[4.0], [6.0], [1.0]])
    z = to_window(y, loc, scale)
    assert torch.isfinite(z).all() and z[2, 0].item() == 1.0  # divided by 1, not by 0
    assert torch.allclose(from_window(z, loc, scale)[:2], y[:2])
    assert from_window(torch.tensor([[3.7]]), loc[2:], scale[2:]).item() == 0.0  # it forecasts its level


def test_the_window_floor_follows_the_series_spread_not_its_level():
    """A meter at 1.2e8 swinging by +-2: centred in float64 before float32 sees it, floored at its
    own in-sample naive MAE (a tenth of it); the same map at any level (issue 22)."""
    n = 300
    swing = 2 * np.sin(np.arange(n) * 2 * np.pi / 7) + np.random.default_rng(0).normal(0, 0.3, n)
    scalers = {}
    for level in (0.0, 1.2e8):
        v = level + swing
        split = split_for(v, normalize="window")
        sc = split.scalers[0]
        a, b = split.series[0].fit_range
        assert sc.mean == pytest.approx(v[a:b].mean()) and sc.std == 4.0  # largest distance from the mean: 2-4
        naive_mae = np.abs(np.diff(v[a:b])).mean()
        assert sc.floor * sc.std == pytest.approx(WINDOW_FLOOR * naive_mae, rel=1e-6)  # a share of a naive MAE
        scalers[level] = (split, series_data(v, split))
    x0, y0 = scalers[0.0][1].batch(torch.arange(0, 200))
    x1, y1 = scalers[1.2e8][1].batch(torch.arange(0, 200))
    assert torch.allclose(x0, x1, atol=1e-4) and torch.allclose(y0, y1, atol=1e-4)  # the level plays no part
    assert x1.std(dim=1).min() > 0.5  # the swing is seen, not rounded away by float32


def test_a_constant_series_forecasts_itself_exactly():
    v = np.full(120, 50.0)
    split = split_for(v, normalize="window")
    assert split.scalers[0].floor == 0.0
    torch.manual_seed(0)
    model = Forecaster(hidden_size=8).eval()
    with torch.no_grad():
        out = series_data(v, split).forecast(model, torch.arange(0, 50)).double().numpy() * split.scalers[0].std
    assert (out + split.scalers[0].mean == 50.0).all()


def test_window_batches_are_standardised_by_their_inputs_only():
    v = trended()
    split = split_for(v, normalize="window")
    data = series_data(v, split)
    idx = torch.arange(0, 50)
    x, y = data.batch(idx)
    assert torch.allclose(x.mean(dim=1), torch.zeros(50, 1), atol=1e-4)
    assert torch.allclose(x.std(dim=1, unbiased=False), torch.ones(50, 1), atol=1e-3)
    changed = v.copy()
    changed[20] += 1000.0  # the target of window 0 only (seq_length 20)
    x2, y2 = series_data(changed, split).batch(idx)
    assert torch.equal(x2[0], x[0]) and not torch.equal(y2[0], y[0])


def test_window_forecasts_are_affine_equivariant():
    v = trended()
    split = split_for(v, normalize="window")
    torch.manual_seed(0)
    model = Forecaster(hidden_size=8).eval()
    idx = torch.arange(0, 100)
    moved_split = split.with_scalers(3.0 * v - 7000.0)
    for sp in (split, moved_split):  # window mode: the fit range's mean and a power of two
        assert sp.scalers[0].std == 2.0 ** np.round(np.log2(sp.scalers[0].std))
    with torch.no_grad():
        base = model_forecasts(model, v, split, idx.numpy(), 1)
        moved = model_forecasts(model, 3.0 * v - 7000.0, moved_split, idx.numpy(), 1)
    np.testing.assert_allclose(moved, 3.0 * base - 7000.0, rtol=1e-4, atol=0.05)


def test_evaluation_inverts_exactly_what_training_applied():
    v = trended()
    split = split_for(v, normalize="window")
    model, _ = train_model(v, split, MODEL, FitSettings(epochs=2, patience=0), CPU)
    idx = torch.as_tensor(split.origins("test"))
    sc = split.scalers[0]
    windows = torch.as_tensor((v - sc.mean) / sc.std, dtype=torch.float32).unfold(0, 20, 1)[idx]
    loc, scale = window_stats(windows, sc.floor)
    with torch.no_grad():
        by_hand = from_window(model(to_window(windows, loc, scale).unsqueeze(-1)), loc, scale)[:, 0]
    np.testing.assert_allclose(one_step_forecasts(model, v, split, 64), by_hand.double().numpy() * sc.std + sc.mean,
                               rtol=1e-5)


def test_window_scaling_beats_a_global_scaler_on_a_trend():
    v = trended(noise=0.02)
    cfg = FitSettings(epochs=15, patience=0, lr=0.01)
    errors = {}
    for mode in ("standard", "window"):
        split = split_for(v, normalize=mode)
        model, st = train_model(v, split, MODEL, cfg, CPU)
        assert st.history["train_loss"][-1] < st.history["train_loss"][0]
        test_targets = split.origins("test") + 20
        errors[mode] = np.mean(np.abs(one_step_forecasts(model, v, split, 256) - v[test_targets]))
    assert errors["window"] < errors["standard"]


@pytest.mark.parametrize("normalize", ["standard", "window"])
def test_changing_values_after_the_training_cutoff_changes_neither_scaler_nor_weights(normalize):
    v = trended()
    split = split_for(v, normalize=normalize)
    s = split.series[0]
    fit_end = s.fit_range[1]  # one past the last training target
    last_val_target = s.val[1] - 1 + split.seq_length

    after_fit = v.copy()
    after_fit[fit_end:] *= 10.0  # validation and test values
    assert split.with_scalers(after_fit).scalers == split.scalers

    after_val = v.copy()
    after_val[last_val_target + 1 :] = -1e6  # test values only (validation picks the best epoch)
    assert split.with_scalers(after_val).scalers == split.scalers
    cfg = FitSettings(epochs=3, patience=0)
    m1, s1 = train_model(v, split, MODEL, cfg, CPU)
    m2, s2 = train_model(after_val, split, MODEL, cfg, CPU)
    assert s1.history == s2.history
    assert all(torch.equal(a, b) for a, b in zip(weights(m1), weights(m2)))


def test_the_standard_scaler_is_fitted_on_the_training_range():
    v = trended()
    split = split_for(v, normalize="standard")
    a, b = split.series[0].fit_range
    assert split.scalers[0].mean == pytest.approx(v[a:b].mean())
    assert split.scalers[0].std == pytest.approx(v[a:b].std())
    assert b < len(v) and v[:b].mean() != pytest.approx(v.mean())


def test_window_scaling_diverges_loudly_on_bad_values():
    v = trended()
    v[5] = np.nan
    with pytest.raises(TrainingDiverged):
        train_model(v, split_for(v, normalize="window"), MODEL, FitSettings(epochs=2, patience=0), CPU)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_window_scaling_inside_a_cuda_graph_matches_the_plain_loop():
    v = trended()
    split = split_for(v, normalize="window")
    dev = torch.device("cuda")
    data = series_data(v, split, dev)
    tr, va = (torch.as_tensor(split.origins(p), device=dev) for p in ("train", "val"))
    losses = {}
    for graphs in (False, True):
        torch.manual_seed(0)
        model = Forecaster(hidden_size=8).to(dev)
        st = fit(model, data, tr, va, FitSettings(epochs=3, patience=0, cuda_graphs=graphs))
        losses[graphs] = st.history["train_loss"]
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-3)
