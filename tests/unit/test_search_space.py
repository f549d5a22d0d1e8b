"""The built-in search space (tasks/components/search.py): distinct members, windows that fit."""

from __future__ import annotations

import pytest

from tasks.components.search import candidates, members, window_lengths


def _as_trained(c: dict, season: int | None) -> tuple:
    """A candidate as the network sees it: the seasonal skip is the naive one without a season."""
    skip = c["model.skip"]
    if skip == "seasonal" and not (season and season > 1 and season <= c["window.seq_length"]):
        skip = "naive"
    return tuple(sorted({**c, "model.skip": skip}.items()))


@pytest.mark.parametrize("season", [None, 1, 4, 7, 12, 52])
def test_no_two_candidates_train_the_same_network(season):
    space = candidates(season, shortest=300)
    assert len({_as_trained(c, season) for c in space}) == len(space)
    assert len(space) == 4
    normalize = [c["window.normalize"] for c in space]
    if season and season > 1:  # the naive-skip candidate, every window normalised on its own
        assert normalize == ["window"] * 4 and [c["model.skip"] for c in space] == ["seasonal"] * 3 + ["naive"]
    else:  # the naive skip would repeat the first candidate: a standard-normalised one instead
        assert normalize == ["window"] * 3 + ["standard"]


def test_window_lengths_are_one_and_two_seasons_and_the_tutorials():
    assert window_lengths(12, 144) == [12, 24, 20]
    assert window_lengths(None, 98) == [20]
    assert window_lengths(None, 30) == [17]  # at most 0.6 * 30 - 1: the tutorial's 20 does not fit
    assert window_lengths(12, 30, horizon=12) == [6]  # nothing wanted fits 18 - 12: the longest that does


def test_members_are_each_candidate_with_consecutive_seeds():
    got = members([{"model.cell": "gru"}, {"model.cell": "lstm"}], seeds=2, base_seed=42)
    assert [(m["model.cell"], m["train.seed"]) for m in got] == [("gru", 42), ("gru", 43), ("lstm", 42), ("lstm", 43)]
