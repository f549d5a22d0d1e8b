"""The built-in search space of `--search on`: a few diverse configurations, not a grid.

Each candidate varies the settings that matter most on short real series (Darts' and
NeuralForecast's Auto* models search the same kinds of knobs): the cell, the window length (one
and two seasons, and the tutorial's 20), the normalisation, the baseline the network corrects
(seasonal or naive skip), the learning rate and the hidden size. A candidate whose window leaves
the shortest series too few training windows is dropped. Every candidate runs with `seeds`
seeds; the members are ranked before the test range and the best `top_k` are combined, then
weighted with the statistical members (tasks/components/ensemble.py: the hybrid; which members:
tasks.validate.pooled_ranking).

With a season, every candidate normalises each window by its own mean and std (RevIN-style) and
one corrects the naive forecast instead of the seasonal one. Without a season the seasonal skip
is the naive one, so that candidate would train the first one again; its place goes to a
candidate normalising each series by its training range's mean and std ("standard"), which keeps
the level a stationary series returns to in view. Measured alone (--search off, seeds 42-44, one
step ahead, MASE relative to naive), gru-64 on 20 points scored 0.94-0.95 on LakeHuron and
0.72-0.84 on Nile with standard normalisation, against 1.09-1.17 and 0.86-1.00 with window
normalisation. It is not offered for seasonal series: there the series that trend (austres,
quarterly) leave their training range's level, and in the search it took austres from 1.03x to
2.98x AutoETS's MASE at one step.
"""

from __future__ import annotations

from typing import Any


def window_lengths(season: int | None, shortest: int, horizon: int = 1, tutorial: int = 20) -> list[int]:
    """One and two seasons and the tutorial's 20, each leaving the shortest series at least
    40% of its points for windows' targets; distinct, in that order (at least one)."""
    wanted = [season, 2 * season] if season and season > 1 else []
    wanted.append(tutorial)
    limit = max(2, int(0.6 * shortest) - horizon)
    out = [L for L in dict.fromkeys(wanted) if L and 2 <= L <= limit]
    return out or [max(2, min(tutorial, limit))]


def candidates(season: int | None, shortest: int, horizon: int = 1) -> list[dict[str, Any]]:
    """The configurations searched: overrides {"section.field": value} on top of the run's config."""
    lengths = window_lengths(season, shortest, horizon)
    long, short = lengths[min(1, len(lengths) - 1)], lengths[0]
    base = {"window.normalize": "window", "model.skip": "seasonal", "train.lr": 1e-2}
    space = [
        {**base, "window.seq_length": long, "model.cell": "gru", "model.hidden_size": 64},
        {**base, "window.seq_length": short, "model.cell": "gru", "model.hidden_size": 32},
        {**base, "window.seq_length": lengths[-1], "model.cell": "lstm", "model.hidden_size": 64, "train.lr": 3e-3},
        {**base, "window.seq_length": long, "model.cell": "gru", "model.hidden_size": 64, "model.skip": "naive"},
    ]
    if not (season and season > 1):  # the seasonal skip is the naive one: the naive-skip candidate repeats the first
        space[-1] = {**space[0], "window.normalize": "standard"}
    return [dict(c) for c in {tuple(sorted(c.items())): c for c in space}.values()]  # distinct, in order


def members(overrides: list[dict[str, Any]], seeds: int, base_seed: int) -> list[dict[str, Any]]:
    """Every override with each of `seeds` seeds (base_seed, base_seed + 1, ...): the members."""
    return [{**o, "train.seed": base_seed + j} for o in overrides for j in range(seeds)]
