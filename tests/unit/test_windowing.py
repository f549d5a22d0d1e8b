import numpy as np
import pytest
import torch

from tasks.components.split import (
    build_split,
    fit_scaler,
    min_series_length,
    split_ranges,
)
from tasks.components.windows import make_windows


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
    assert r == {"train": (0, 720), "val": (720, 800), "cal": (800, 800), "test": (800, 1000)}
    assert split_ranges(1000, 0.8, 0.0)["train"] == (0, 800)


def test_a_calibration_range_sits_between_validation_and_test_seen_by_neither():
    r = split_ranges(1000, 0.8, 0.1, horizon=3, calibration=20)
    assert r["test"] == (800, 1000) and r["cal"] == (778, 798)  # 798 = 800 - (H - 1): no target shared with test
    assert r["val"][1] <= r["cal"][0] - 2 and r["train"][1] <= r["val"][0] - 2  # purged gaps of H - 1
    assert split_ranges(40, 0.8, 0.1, calibration=20)["cal"] == (24, 32)  # at most a quarter of the pre-test origins


@pytest.mark.parametrize("horizon", [1, 3])
def test_members_anchored_to_the_longest_window_share_val_cal_and_test_targets(horizon):
    lengths, ids = [144, 200], ["a", "b"]
    ref = build_split(lengths, ids, 24, horizon, calibration=20, anchor=24)
    assert ref == build_split(lengths, ids, 24, horizon, calibration=20)  # the anchor's own split is the usual one
    for L in (6, 12, 20):
        own = build_split(lengths, ids, L, horizon, calibration=20, anchor=24)
        for part in ("val", "cal", "test"):
            assert np.array_equal(own.origins(part) + L, ref.origins(part) + 24), (L, part)  # the same targets
        for s, r in zip(own.series, ref.series):  # more training windows, none reaching a held-out target
            train_targets = np.arange(*s.train) + L + horizon - 1
            assert s.train[0] == s.offset and train_targets.max() == np.arange(*r.train).max() + 24 + horizon - 1
            assert train_targets.max() < r.val[0] + 24
    with pytest.raises(ValueError, match="anchor"):
        build_split(lengths, ids, 24, anchor=12)


def test_no_leakage_every_test_target_after_every_train_target():
    L = 20
    split = build_split([1020], ["a"], L)
    train_t = split.origins("train") + L
    val_t = split.origins("val") + L
    test_t = split.origins("test") + L
    assert train_t.max() < val_t.min() and val_t.max() < test_t.min()
    assert test_t.max() == 1019
    # the scaler may only see points up to the last training target
    assert split.series[0].fit_range == (0, int(train_t.max()) + 1)


def test_windows_never_cross_series():
    L = 5
    split = build_split([30, 40], ["a", "b"], L, train_fraction=0.5, val_fraction=0.0)
    for s in split.series:
        for part in ("train", "val", "test"):
            a, b = s.part(part)
            if b > a:
                assert a >= s.offset and b - 1 + L < s.offset + s.length
    assert split.series[1].train[0] == 30


def test_scaler_uses_the_fit_range_only():
    values = np.concatenate([np.ones(50), np.full(50, 1000.0)])
    split = build_split([100], ["a"], 5, train_fraction=0.4)
    s = split.series[0]
    sc = fit_scaler(values, s.fit_range, "standard")
    assert sc.mean == 1.0 and s.fit_range[1] <= 50
    assert split.with_scalers(values, "standard").series[0].scaler == sc
    assert fit_scaler(values, s.fit_range, "none").std == 1.0


def test_min_series_length_gives_a_valid_split():
    n = min_series_length(20)
    build_split([n], ["a"], 20)
    with pytest.raises(ValueError):
        build_split([n - 1], ["a"], 20)


def test_origin_arithmetic_of_the_split():
    split = build_split([30, 40], ["a", "b"], 5, horizon=3)
    o = np.array([0, 31])  # the first window of each series
    assert split.input_index(o).tolist() == [[0, 1, 2, 3, 4], [31, 32, 33, 34, 35]]
    assert split.target_index(o).tolist() == [[5, 6, 7], [36, 37, 38]]
    assert split.last_observed(o).tolist() == [4, 35] and split.series_index(o).tolist() == [0, 1]
    assert split.local(np.array([5, 36])).tolist() == [5, 6]
    assert split.last_origins().tolist() == [25, 65]


def test_windows_that_leave_no_validation_origin_are_refused_naming_one_that_fits():
    import pandas as pd

    from tasks.config import WindowConfig
    from tasks.errors import InputError
    from tasks.windowing import split_series

    df = pd.DataFrame({"series_id": "s", "value": np.sin(np.arange(144) / 3.0)})
    meta = {"frequency": None, "season_length": None}
    cfg = WindowConfig(seq_length=136, normalize="none", calibration=20)
    with pytest.raises(InputError) as err:
        split_series(df, meta, cfg)
    assert err.value.field == "seq_length" and "--seq-length 135 fits" in err.value.message
    assert split_series(df, meta, cfg.model_copy(update={"seq_length": 135}))[1].count("val") == 1
    assert split_series(df, meta, cfg.model_copy(update={"val_fraction": 0.0}))[1].count("val") == 0  # asked for none
