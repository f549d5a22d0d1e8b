"""What a run costs and how a time limit is kept (issue 26): the cost model, the plan, the search's
training regime and windows for long seasons, the deadline, the recurrent reach."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from tasks.components.cost import MIN_EPOCHS, NetworkCost, auto_time_limit, plan, statistical_seconds
from tasks.components.fit import thinned, train_model
from tasks.components.network import Forecaster
from tasks.components.search import (
    RECURRENT_REACH, SMALL, candidates, estimated_windows, priority, training_regime, window_lengths,
)
from tasks.components.specs import FitSettings, NetworkSpec, skip_lag
from tests.helpers import split_for


def net(label: str = "m", read: int = 24, windows: int = 1000, **kw) -> NetworkCost:
    return NetworkCost(label, kw.pop("cell", "gru"), kw.pop("hidden", 64), read, windows, windows // 10, **kw)


def test_a_members_cost_grows_with_its_windows_and_reach_not_with_a_season():
    base = net(read=64, windows=2000)
    assert net(read=64, windows=4000).epoch_seconds() > 1.8 * base.epoch_seconds()
    # a window of a day of minutes read through a reach of 64 costs what a window of 64 does
    day = NetworkCost("day", "gru", 64, read=min(1440, RECURRENT_REACH), windows=2000, val_windows=200)
    assert day.epoch_seconds() == base.epoch_seconds()
    assert NetworkCost("all", "gru", 64, read=1440, windows=2000, val_windows=200).epoch_seconds() > \
        10 * base.epoch_seconds()
    # a fixed amount of work per epoch: past steps_per_epoch x batch windows an epoch costs the same
    capped = [NetworkCost("c", "gru", 64, 64, w, 100, batch=128, steps_per_epoch=16).epoch_seconds()
              for w in (5_000, 50_000, 500_000)]
    assert capped[0] == capped[1] == capped[2]


def test_a_plan_keeps_everything_a_large_budget_allows_and_reads_no_clock(monkeypatch):
    costs = [net(f"m{i}") for i in range(4)]
    monkeypatch.setattr(time, "time", lambda: pytest.fail("a plan reads no clock"))
    p = plan(costs, [0, 1, 2, 3], budget=1e6, fixed=5.0, workers=2)
    assert p.kept == [0, 1, 2, 3] and not p.skipped and not p.binds
    assert p.epochs == {i: 300 for i in range(4)}
    assert p.estimate == pytest.approx(5.0 + sum(c.seconds() for c in costs) / 2)


def test_a_tight_budget_skips_members_in_priority_order_and_caps_the_rest():
    costs = [net(f"m{i}", windows=20_000) for i in range(4)]
    one = costs[0].seconds()
    p = plan(costs, [0, 2, 1, 3], budget=10.0 + 1.5 * one, fixed=10.0, workers=1)
    assert p.kept[:1] == [0] and p.skipped[-1] == 3  # first in priority kept, the last skipped first
    assert set(p.kept) | set(p.skipped) == {0, 1, 2, 3}
    assert all(MIN_EPOCHS <= p.epochs[i] <= 300 for i in p.kept) and p.binds
    # the first member is always kept, however small the budget
    tiny = plan(costs, [3, 2, 1, 0], budget=1.0, fixed=10.0)
    assert tiny.kept == [3] and tiny.skipped == [2, 1, 0] and tiny.epochs[3] == MIN_EPOCHS


def test_the_default_limit_is_headroom_over_the_estimate():
    assert auto_time_limit(20.0) == 120.0 and auto_time_limit(100.0) == 360.0
    costs = [net(f"m{i}", windows=w) for i, w in enumerate((500, 5_000, 50_000))]
    estimates = [plan([c], [0], float("inf"), 5.0).estimate for c in costs]
    assert estimates == sorted(estimates)  # more data, more work, a higher limit


def test_statistical_cost_grows_with_length_and_origins_and_mstl_takes_no_long_season_into_ets():
    short = statistical_seconds("ets", [300], origins=50, season=12)
    assert statistical_seconds("ets", [3000], origins=50, season=12) > 5 * short
    assert statistical_seconds("theta", [3000], origins=500) > statistical_seconds("theta", [3000], origins=50)
    # AutoETS with a season of 1,440 would try 1,440 seasonal states; MSTL removes it first
    assert statistical_seconds("ets", [4320], 800, mstl=(1440,)) < statistical_seconds("ets", [4320], 800, season=1440)


def test_members_are_budgeted_first_seeds_first():
    members = [{"c": c, "train.seed": 42 + s} for c in range(3) for s in range(2)]
    assert [(members[i]["c"], members[i]["train.seed"]) for i in priority(members, 2)] == \
        [(0, 42), (1, 42), (2, 42), (0, 43), (1, 43), (2, 43)]


def test_large_data_trains_in_fixed_epochs_and_short_series_as_before():
    assert training_regime(SMALL) == {}  # the quality panel's short series: every window, batches of 32
    assert training_regime(estimated_windows(144, 1, 24, 1, 0.8, 0.1)[0]) == {}  # AirPassengers
    assert training_regime(estimated_windows(1355, 1, 52, 1, 0.8, 0.1)[0])  # us_gasoline: batches of 128
    big = training_regime(SMALL + 1)
    assert big["train.batch_size"] == 128 and big["train.steps_per_epoch"] == 8 and big["train.val_windows"] == 1024
    train, val = estimated_windows(9_900, 3, 48, 1, 0.8, 0.1)
    assert train == pytest.approx((9_900 - 3 * 48) * 0.72, abs=2) and val == pytest.approx((9_900 - 3 * 48) * 0.08, abs=2)


def test_sub_daily_windows_reach_the_week_through_the_skip_not_step_by_step():
    assert window_lengths(24, 3300, longer=168) == [24, 168, 20]
    assert window_lengths(12, 144) == [12, 24, 20]  # one season: one and two of it, as before
    space = candidates(24, 3300, longer=168)
    week = [c for c in space if c["window.seq_length"] == 168]
    assert week and all(c["model.recurrent_steps"] == RECURRENT_REACH for c in week)
    assert all("model.recurrent_steps" not in c for c in space if c["window.seq_length"] <= RECURRENT_REACH)
    minutes = candidates(1440, 4320)
    assert {c["window.seq_length"] for c in minutes} == {1440, 20}  # two days would leave too few targets
    # the seasonal skip takes the longest season the window holds
    assert skip_lag("seasonal", 24, 168, (24, 168)) == 168
    assert skip_lag("seasonal", 24, 48, (24, 168)) == 24
    assert skip_lag("seasonal", 24, 20, (24, 168)) == 1
    assert skip_lag("seasonal", 12, 24) == 12


def test_the_recurrent_layers_read_only_the_last_points_and_the_skip_the_whole_window():
    torch.manual_seed(0)
    reach = Forecaster("gru", 8, skip_lag=24, recurrent_steps=6)
    torch.nn.init.normal_(reach.head.weight)  # a head that is not zero, so the network's part shows
    plain = Forecaster("gru", 8)  # the same layers without a skip, to read the network's part
    plain.load_state_dict(reach.state_dict())
    x = torch.randn(5, 30, 1)
    # out = head(rnn(last 6 points)) + the value 24 steps before the target (x[:, 30 - 24])
    assert torch.allclose(reach(x), plain(x[:, -6:]) + x[:, 6, :], atol=1e-6)
    changed = x.clone()
    changed[:, :24] += 100.0  # points before the reach change the forecast only through the skip
    assert torch.allclose(reach(changed) - changed[:, 6, :], reach(x) - x[:, 6, :], atol=1e-5)


def test_thinned_keeps_evenly_spaced_windows_first_and_last():
    idx = torch.arange(100, 1100)
    got = thinned(idx, 11)
    assert len(got) == 11 and got[0] == 100 and got[-1] == 1099 and bool((got.diff() > 0).all())
    assert thinned(idx, 0) is idx and thinned(idx, 5000) is idx


def test_a_deadline_ends_training_after_min_epochs_and_keeps_the_best_weights():
    values = np.sin(np.arange(400) / 5.0)
    split = split_for(values, seq_length=12)
    spec = NetworkSpec(hidden_size=4)
    settings = FitSettings(epochs=50, patience=0, deadline=time.time() - 1)  # already past
    _, st = train_model(values, split, spec, settings, torch.device("cpu"))
    assert st.stopped_at_deadline and st.epoch == MIN_EPOCHS and 1 <= st.best_epoch <= MIN_EPOCHS
    _, free = train_model(values, split, spec, FitSettings(epochs=12, patience=0), torch.device("cpu"))
    assert not free.stopped_at_deadline and free.epoch == 12


def test_the_cost_benchmark_times_a_run_that_made_its_forecast_whatever_its_gate_said():
    """A default run exits 3 when its model did not pass the baseline gate, with every output
    written: the benchmark times it (and says so), while any other failure still stops it."""
    import sys

    from benchmarks.cost import FORECAST_MADE, timed

    exit_3 = [sys.executable, "-c", "import sys; print('gate: FAILED'); sys.exit(3)"]
    got = timed(exit_3, {}, 60, ok=FORECAST_MADE)
    assert got["exit"] == 3 and "gate: FAILED" in got["output"] and got["wall_s"] > 0
    with pytest.raises(RuntimeError, match=r"failed \(3\)"):
        timed(exit_3, {}, 60)  # statsforecast's baseline: only 0 is success
    with pytest.raises(RuntimeError, match=r"failed \(2\)"):
        timed([sys.executable, "-c", "import sys; sys.exit(2)"], {}, 60, ok=FORECAST_MADE)


def test_a_second_statistical_worker_is_allowed_only_where_a_search_has_many_fits():
    """A short file's fits share one worker (a second costs a second import of statsforecast);
    a long seasonal series' and a panel's may fit two models side by side (flows/search.py)."""
    from flows.budget import statistical_estimate
    from flows.search import SECOND_WORKER_FROM
    from tasks.config import PipelineConfig, resolve, with_overrides

    cfg = resolve(with_overrides(PipelineConfig(), {"data": {"data_path": "x.csv"}}), device="cpu")

    def seconds(points: int, n_series: int, season: int) -> float:
        return sum(statistical_estimate(cfg, {"points": points, "n_series": n_series, "shortest": points // n_series},
                                        season, ()))

    assert seconds(144, 1, 12) < SECOND_WORKER_FROM and seconds(365, 1, 7) < SECOND_WORKER_FROM  # AirPassengers
    assert seconds(1355, 1, 52) >= SECOND_WORKER_FROM  # weekly: AutoETS and AutoTheta with season 52
    assert seconds(145 * 357, 145, 12) >= SECOND_WORKER_FROM  # a panel: per-series fits
