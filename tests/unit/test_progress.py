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
