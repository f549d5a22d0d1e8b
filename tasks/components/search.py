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

import math
from typing import Any

RECURRENT_REACH = 64  # the recurrent layers read at most a window's last 64 points (model.recurrent_steps)
# training windows up to which a member trains as on a short series (every window, batches of 32).
# Past it, batches of 128 (training_regime). At 1,024 the quality panel's three longest series
# (us_gasoline, DJFranses, pr_death_counts: 520-960 windows) trained in batches of 32: us_gasoline
# took 185 s a run, 34 s in batches of 128. Rerun on those three series (3 seeds, both horizons),
# the panel's geometric mean MASE ratio to AutoETS went 0.9373 -> 0.9372 at one step and
# 0.8979 -> 0.8984 at one season (us_gasoline at 52 weeks 0.991 -> 1.003, its networks' best epoch
# the first either way; its one-step 0.839 -> 0.837): benchmarks/RESULTS.md.
SMALL = 512


def window_lengths(season: int | None, shortest: int, horizon: int = 1, tutorial: int = 20,
                   longer: int | None = None) -> list[int]:
    """One and two seasons and the tutorial's 20, each leaving the shortest series at least
    40% of its points for windows' targets; distinct, in that order (at least one). longer: a
    second season of the calendar (the week of sub-daily data) in place of two main seasons: its
    window brings last week's value in through the seasonal skip (the recurrent layers read only
    the last RECURRENT_REACH points of it)."""
    wanted = [season, longer or 2 * season] if season and season > 1 else []
    wanted.append(tutorial)
    limit = max(2, int(0.6 * shortest) - horizon)
    out = [L for L in dict.fromkeys(wanted) if L and 2 <= L <= limit]
    return out or [max(2, min(tutorial, limit))]


def candidates(season: int | None, shortest: int, horizon: int = 1, longer: int | None = None
               ) -> list[dict[str, Any]]:
    """The configurations searched: overrides {"section.field": value} on top of the run's config
    (longer: see window_lengths)."""
    lengths = window_lengths(season, shortest, horizon, longer=longer)
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
    for c in space:  # a window longer than the reach (a long season) is read by its skip, not step by step
        if c["window.seq_length"] > RECURRENT_REACH:
            c["model.recurrent_steps"] = RECURRENT_REACH
    return [dict(c) for c in {tuple(sorted(c.items())): c for c in space}.values()]  # distinct, in order


def training_regime(windows: int) -> dict[str, Any]:
    """Training settings for members with `windows` training windows (over all series), on top of
    the candidates: none up to SMALL (every window every epoch, batches of 32, as the quality panel
    was tuned on its short series), then a fixed amount of work per epoch, so that an epoch's cost
    stops growing with the data (Darts and NeuralForecast bound training by steps the same way):

        batch_size 128        torch's CPU GRU costs 10 us a window and step at 32, 3.7 at 128
        steps_per_epoch 8     an epoch reads 1,024 windows, drawn afresh each epoch
        val_windows 1024      early stopping scores 1,024 evenly spaced validation windows

    Early stopping's patience and the epoch cap keep their meaning in epochs."""
    if windows <= SMALL:
        return {}
    return {"train.batch_size": 128, "train.steps_per_epoch": 8, "train.val_windows": 1024}


def estimated_windows(points: int, n_series: int, seq_length: int, horizon: int, train_fraction: float,
                      val_fraction: float) -> tuple[int, int]:
    """(training, validation) windows of a member with window `seq_length` over `n_series` series
    of `points` points in all: the split's fractions of each series' windows, summed."""
    total = max(0, points - n_series * (seq_length + horizon - 1))
    fit = total * train_fraction
    return int(fit * (1 - val_fraction)), int(math.ceil(fit * val_fraction))


def members(overrides: list[dict[str, Any]], seeds: int, base_seed: int) -> list[dict[str, Any]]:
    """Every override with each of `seeds` seeds (base_seed, base_seed + 1, ...): the members."""
    return [{**o, "train.seed": base_seed + j} for o in overrides for j in range(seeds)]


def priority(members: list[dict[str, Any]], seeds: int) -> list[int]:
    """The order a budget takes members in: every configuration's first seed, then every second
    seed, ... (members come configuration by configuration, `seeds` each)."""
    return sorted(range(len(members)), key=lambda i: (i % seeds, i // seeds))
