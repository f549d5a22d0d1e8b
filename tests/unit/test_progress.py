"""The console's progress display and the run's training-progress artifact (tasks/runtime/progress.py)."""

from __future__ import annotations

import io
import time

import pytest

from tasks.runtime import progress, publish
from tasks.runtime.progress import Stage, Tracker, clock, describe


def test_a_stage_line_counts_items_the_epoch_in_flight_and_the_time_left():
    st = Stage(total=8, unit="models", started=100.0, done=3)
    st.items["gru-64 L24 seed 42"] = progress.Item(40, 100, "epoch", 0.0)
    st.last = "gru-64 L24 seed 42"
    assert st.fraction() == pytest.approx((3 + 0.4) / 8)
    line = describe("train", st, 100.0 + 34.0)  # 34 s for 3.4 of 8: 46 s left
    assert line == "train: 3/8 models; gru-64 L24 seed 42 epoch 40/100; 0:34 so far, about 0:46 left"
    st.items["gru-64 L24 seed 42"] = progress.Item(100, 100, "epoch", 0.0)  # done (or stopped early): not counted twice
    assert st.fraction() == pytest.approx(3 / 8)
    one = Stage(total=1, unit="models", started=0.0)
    assert describe("evaluate", one, 0.5) == "evaluate: 0:00 so far"  # no pace yet: no time left
    assert clock(3725) == "1:02:05" and clock(65) == "1:05"


def test_with_planned_work_a_stage_weighs_each_item_by_its_cost_not_one_each():
    """A search's cheap members finish first: counted one each, 2 of 4 done read as half the
    stage, and the time left came out a fraction of what it was."""
    work = {"a": (1.0, 50), "b": (1.0, 50), "c": (5.0, 50), "d": (5.0, 50)}  # seconds an epoch, planned epochs
    st = Stage(total=4, unit="models", started=0.0, done=2, work=work)
    st.items["a"] = progress.Item(40, 40, "epoch", 0.0, "gru-32 L24 seed 42", 40)  # stopped early at 40
    st.items["b"] = progress.Item(60, 60, "epoch", 0.0, "gru-32 L24 seed 43", 60)
    # the finished ones took 40 and 60 epochs (their median: 60), more than the 50 planned
    assert st.fraction() == pytest.approx(100 / (100 + 5 * 60 + 5 * 60))
    assert st.left(20.0) == pytest.approx(20.0 * 600 / 100)  # 120 s, not the 20 s one each would say
    st.items["c"] = progress.Item(80, 300, "epoch", 0.0, "gru-64 L168 seed 42", 95)  # still improving: 95 at least
    assert st.fraction() == pytest.approx((100 + 5 * 80) / (100 + 5 * 95 + 5 * 60))
    st.items["c"] = progress.Item(10, 300, "epoch", 0.0, "gru-64 L168 seed 42", 25)  # early: the typical 60
    assert st.fraction() == pytest.approx((100 + 5 * 10) / (100 + 5 * 60 + 5 * 60))
    fresh = Stage(total=2, unit="models", started=0.0, work={"c": (5.0, 50), "d": (5.0, 50)})
    fresh.items["c"] = progress.Item(10, 300, "epoch", 0.0, "gru-64 L168 seed 42", 25)
    assert fresh.fraction() == pytest.approx(50 / 500)  # none finished yet: the planned 50
    st.last = "c"
    assert describe("train", st, 30.0).startswith("train: 2/4 models; gru-64 L168 seed 42 epoch 10/300; 0:30 so far")
    assert Stage(total=2, unit="models", started=0.0, work={"a": (1.0, 0)}).fraction() == 0.0


def test_the_reporter_says_an_improving_network_has_its_patience_left_and_a_stopped_one_is_done():
    from tasks.components.fit import FitState
    from tasks.config import TrainConfig
    from tasks.train import progress_reporter

    t = Tracker()
    t.begin("train", 1, work={"k": (1.0, 50)})
    on_epoch = progress_reporter(TrainConfig(epochs=300, patience=20, log_every=1000), "gru-64 L24 seed 42", "k")
    st = FitState(history={"train_loss": [0.5], "val_loss": [0.25]})
    st.bad_epochs = 5
    real, progress._tracker = progress._tracker, t
    try:
        on_epoch(70, st)
        item = t.stages["train"].items["k"]
        assert (item.done, item.total, item.expected, item.name) == (70, 300, 85, "gru-64 L24 seed 42")
        st.stopped_early = True
        on_epoch(90, st)
        item = t.stages["train"].items["k"]
        assert (item.done, item.total, item.expected) == (90, 90, 90)
        assert t.stages["train"].fraction() == 1.0
    finally:
        progress._tracker = real


def test_items_of_a_stage_not_begun_here_are_ignored_and_followers_hear_of_every_change():
    t = Tracker()
    heard = []

    class Follower:
        def changed(self, stage, st):
            heard.append((stage, None if st is None else (st.done, round(st.fraction(), 3))))

    t.followers.append(Follower())
    t.item("train", "m", 1, 10, "epoch")  # a Dask worker's: no stage begun in this process
    assert t.snapshot() == [] and heard == []
    t.begin("train", 2, building=2)
    t.item("train", "m", 5, 10, "epoch")
    t.advance("train")
    t.end("train")
    assert heard == [("train", (0, 0.0)), ("train", (0, 0.25)), ("train", (1, 0.75)), ("train", None)]


def test_off_a_terminal_a_long_stage_prints_a_plain_line_every_heartbeat(monkeypatch):
    monkeypatch.setattr(progress, "HEARTBEAT", 0.3)
    out = io.StringIO()
    with progress.display(out, live=False) as shown:
        progress.begin("backtest", 4)
        progress.advance("backtest")
        time.sleep(1.6)
        progress.end("backtest")
        assert progress.active() is shown
    assert progress.active() is None
    lines = out.getvalue().splitlines()
    assert lines and all(line.startswith("backtest: 1/4 buckets; ") for line in lines)
    waiting = io.StringIO()
    with progress.display(waiting, live=False) as shown:  # a stage whose items are done waits silently
        progress.begin("validate", 2)
        progress.begin("train", 8)
        progress.advance("validate", 2)
        assert [line.split(";")[0] for line in shown.lines()] == ["train: 0/8 models"]
        time.sleep(0.8)
        progress.end("validate")
        progress.end("train")
    assert not any(line.startswith("validate") for line in waiting.getvalue().splitlines())
    quiet = io.StringIO()
    with progress.display(quiet, live=False):  # a short stage: nothing at all
        progress.begin("window", 1)
        progress.end("window")
    assert quiet.getvalue() == ""


def test_the_run_has_one_training_progress_artifact_created_when_it_first_trains(monkeypatch):
    made = []

    class Bar:
        def __init__(self, key, description):
            made.append((key, description))
            self.seen = []

        def update(self, percent):
            self.seen.append(round(percent, 1))

    monkeypatch.setattr(publish, "ProgressArtifact", Bar)
    follower = publish.TrainingProgress()
    t = Tracker()
    t.followers.append(follower)
    t.begin("validate", 3)  # another stage: not training
    t.begin("train", 4, building=0)  # every model reused: no card
    t.end("train")
    assert made == [] and follower.bar is None
    t.begin("train", 4, building=3)
    t.item("train", "a", 5, 10, "epoch")
    t.advance("train")
    t.end("train")
    assert made == [("rnn-training-progress", "Training 4 models, 1 of them reused (models done, and epochs of those "
                                             "in flight, as a share of all)")]
    assert follower.bar.seen == [0.0, 12.5, 37.5, 100.0]
