"""Scaling without leakage: the global scaler sees the training range only; per-window scaling
uses each window's inputs only and is the same map in training and evaluation."""

import numpy as np
import pytest
import torch

from tasks.components.backtest import one_step_forecasts
from tasks.components.fit import TrainingDiverged, fit, train_model
from tasks.components.network import Forecaster
from tasks.components.scaling import from_window, to_window, window_stats
from tasks.components.series_data import series_data
from tasks.components.specs import FitSettings, NetworkSpec
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
    loc, scale = window_stats(x)
    assert loc[:, 0].tolist() == [2.0, 5.0, 0.0]
    assert scale[0, 0].item() == pytest.approx((2 / 3) ** 0.5)
    assert scale[1, 0].item() == pytest.approx(5e-3)  # a constant window: floored at 1e-3 of its level
    assert scale[2, 0].item() == 1.0  # all zeros: identity scale, no division by zero
    y = torch.tensor([[4.0], [6.0], [1.0]])
    assert torch.allclose(from_window(to_window(y, loc, scale), loc, scale), y)


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
    unit = split.scalers[0].std  # window mode: a power of two (exact), so the check holds in series units
    assert split.scalers[0].mean == 0.0 and unit == 2.0 ** np.round(np.log2(unit))
    with torch.no_grad():
        base = series_data(v, split).forecast(model, idx) * unit
        moved = series_data(3.0 * v - 7000.0, split).forecast(model, idx) * unit
    assert torch.allclose(moved, 3.0 * base - 7000.0, rtol=1e-4, atol=0.05)


def test_evaluation_inverts_exactly_what_training_applied():
    v = trended()
    split = split_for(v, normalize="window")
    model, _ = train_model(v, split, MODEL, FitSettings(epochs=2, patience=0), CPU)
    idx = torch.as_tensor(split.origins("test"))
    windows = torch.as_tensor(v, dtype=torch.float32).unfold(0, 20, 1)[idx]
    loc, scale = window_stats(windows)
    with torch.no_grad():
        by_hand = from_window(model(to_window(windows, loc, scale).unsqueeze(-1)), loc, scale)[:, 0]
    np.testing.assert_allclose(one_step_forecasts(model, v, split, 64), by_hand.double().numpy(), rtol=1e-5)


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
