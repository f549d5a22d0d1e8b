import numpy as np
import pytest
import torch

from tasks.config import WindowConfig
from tasks.windowing import build_split, fit_scaler, make_windows, min_series_length, ranges_to_index, split_ranges


def tutorial_windows(data, seq_length):
    """The tutorial's Python loop, for comparison."""
    xs, ys = [], []
    for i in range(len(data) - seq_length):
        xs.append(data[i : i + seq_length])
        ys.append(data[i + seq_length])
    return torch.FloatTensor(np.array(xs)), torch.FloatTensor(np.array(ys))


def test_windows_by_hand():
    X, y = make_windows(np.arange(6.0), 3)
    assert X.tolist() == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    assert y.tolist() == [3, 4, 5]
    assert np.shares_memory(X, np.asarray(X.base if X.base is not None else X))  # a view, not a copy


def test_windows_equal_the_tutorial_loop():
    data = np.sin(np.linspace(0, 10 * np.pi, 1020))
    X, y = make_windows(data, 20)
    tx, ty = tutorial_windows(data, 20)
    assert X.shape == (1000, 20)
    assert torch.equal(torch.tensor(np.array(X), dtype=torch.float32), tx)
    assert torch.equal(torch.as_tensor(y, dtype=torch.float32), ty)


def test_too_short_series_is_an_error():
    with pytest.raises(ValueError):
        make_windows(np.arange(3.0), 3)


def test_split_is_chronological_like_the_tutorial():
    r = split_ranges(1000, 0.8, 0.1)
    assert r == {"train": (0, 720), "val": (720, 800), "test": (800, 1000)}
    assert split_ranges(1000, 0.8, 0.0)["train"] == (0, 800)


def test_no_leakage_every_test_target_after_every_train_target():
    cfg = WindowConfig(seq_length=20)
    split = build_split([1020], ["a"], cfg)
    L = cfg.seq_length
    train_t = ranges_to_index(split, "train") + L
    val_t = ranges_to_index(split, "val") + L
    test_t = ranges_to_index(split, "test") + L
    assert train_t.max() < val_t.min() and val_t.max() < test_t.min()
    assert test_t.max() == 1019
    # the scaler may only see points up to the last training target
    assert split["series"][0]["fit_range"] == [0, int(train_t.max()) + 1]


def test_windows_never_cross_series():
    cfg = WindowConfig(seq_length=5, train_fraction=0.5, val_fraction=0.0)
    split = build_split([30, 40], ["a", "b"], cfg)
    for s in split["series"]:
        for part in ("train", "val", "test"):
            a, b = s[part]
            if b > a:
                assert a >= s["offset"] and b - 1 + cfg.seq_length < s["offset"] + s["length"]
    assert split["series"][1]["train"][0] == 30


def test_scaler_uses_the_fit_range_only():
    values = np.concatenate([np.ones(50), np.full(50, 1000.0)])
    split = build_split([100], ["a"], WindowConfig(seq_length=5, train_fraction=0.4))
    sc = fit_scaler(values, split, "standard")[0]
    assert sc["mean"] == 1.0 and sc["fit_range"][1] <= 50
    assert fit_scaler(values, split, "none")[0]["std"] == 1.0


def test_min_series_length_gives_a_valid_split():
    cfg = WindowConfig(seq_length=20)
    n = min_series_length(cfg)
    build_split([n], ["a"], cfg)
    with pytest.raises(ValueError):
        build_split([n - 1], ["a"], cfg)
