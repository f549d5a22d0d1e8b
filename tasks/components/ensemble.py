"""Ensembles of networks that may read different window lengths, forecasting the same targets.

A member is a trained network and the split it was trained on for these series (its window
length L_m, normalisation and per-series scalers). The ensemble forecasts from the origins of a
reference split whose window is the longest, L_ref; member m reads the same targets through
origins shifted by L_ref - L_m:

    target t = o + L_ref + h - 1       member m: origin o + (L_ref - L_m), its own last L_m points

A member may also be a statistical forecaster (tasks.components.references.Statistical: AutoETS,
AutoTheta) that a search ranked among the best on the validation range: it reads the whole
history up to each origin through its own split (the reference's, so its shift is 0) and has
neither window nor scalers.

The combination is the median (default) or the mean over members, per origin and lead: M4's
best entries were combinations (Makridakis et al. 2020), and the median is robust to one bad
member. The spread over members (min, max) is kept for the report and the figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from tasks.components.split import Split

COMBINE = {"median": np.median, "mean": np.mean}


@dataclass
class Member:
    """A trained network (or a statistical forecaster, a backtest Predict) and its own split of
    the same series (for its window and scalers; a statistical one reads each series' history)."""

    model: torch.nn.Module | Callable[[np.ndarray, Split, np.ndarray, int], np.ndarray]
    split: Split

    @property
    def is_network(self) -> bool:
        return isinstance(self.model, torch.nn.Module)


@dataclass
class Ensemble:
    """Forecasts combined over members; callable as a backtest Predict."""

    members: list[Member]
    combine: str = "median"
    chunk: int = 65_536

    def forecasts(self, values: np.ndarray, split: Split, idx: np.ndarray, steps: int) -> np.ndarray:
        """Every member's forecasts of the targets of origins `idx` of `split`: (k, n, steps).

        split: the reference split (the longest window of all members); raises ValueError when a
        member's window is longer than it.
        """
        from tasks.components.backtest import model_forecasts

        idx = np.asarray(idx, dtype=np.int64)
        out = []
        for m in self.members:
            shift = split.seq_length - m.split.seq_length
            if shift < 0:
                raise ValueError(f"a member reads {m.split.seq_length} points, more than the reference's "
                                 f"{split.seq_length}")
            if not m.is_network:
                out.append(m.model(values, m.split, idx + shift, steps))
                continue
            view = dataclasses.replace(split, seq_length=m.split.seq_length, normalize=m.split.normalize,
                                       series=tuple(dataclasses.replace(s, scaler=own.scaler)
                                                    for s, own in zip(split.series, _same_series(split, m.split))))
            out.append(model_forecasts(m.model, values, view, idx + shift, steps, self.chunk))
        return np.stack(out)

    def combined(self, forecasts: np.ndarray) -> np.ndarray:
        """The members' forecasts (k, n, steps) combined: (n, steps)."""
        return COMBINE[self.combine](forecasts, axis=0)

    def __call__(self, values: np.ndarray, split: Split, idx: np.ndarray, steps: int) -> np.ndarray:
        """The combined forecast: (n, steps)."""
        return self.combined(self.forecasts(values, split, idx, steps))


def _same_series(ref: Split, own: Split) -> tuple:
    """The member's SeriesSplit of each of the reference's series (same ids, same order)."""
    if [s.series_id for s in own.series] != [s.series_id for s in ref.series]:
        raise ValueError("a member was trained on other series than the reference split holds")
    return own.series


def longest(splits: list[Split]) -> int:
    """Position of the split with the longest window (the first of equals): the reference."""
    return max(range(len(splits)), key=lambda i: (splits[i].seq_length, -i))
