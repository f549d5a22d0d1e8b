"""Ensembles of networks that may read different window lengths, forecasting the same targets.

A member is a trained network and the split it was trained on for these series (its window
length L_m, normalisation and per-series scalers). The ensemble forecasts from the origins of a
reference split whose window is the longest, L_ref; member m reads the same targets through
origins shifted by L_ref - L_m:

    target t = o + L_ref + h - 1       member m: origin o + (L_ref - L_m), its own last L_m points

The networks' combination is the median (default) or the mean over members, per origin and lead:
M4's best entries were combinations (Makridakis et al. 2020), and the median is robust to one bad
member. The spread over members (min, max) is kept for the report and the figures.

A search's ensemble is a hybrid: after its networks come statistical members
(tasks.components.references.Statistical: AutoETS, AutoTheta, seasonal naive), each reading the
whole history up to an origin through its own split (the reference's, so its shift is 0). The
forecast is then a weighted mean of the networks' combination and each statistical member,

    yhat = w_0 * combine(networks) + sum_j w_j * statistical_j,    w_i proportional to 1 / MASE_i^2,

the weights from each part's MASE before the test range (`inverse_error_weights`; which origins:
tasks.validate.hybrid_weights, whose calibration weights leave out the calibration origins): the
combination of Bates & Granger (1969), "The combination of forecasts", Operational Research
Quarterly 20(4), whose weights are inversely proportional to each forecast's error variance (here
its squared scaled error), in the spirit of the M4 winner's hybrid of exponential smoothing and a
recurrent network (Smyl 2020, Int. J. Forecasting 36(1)). Measured on the quality panel, the
squared form beat plain 1 / MASE (geometric-mean MASE ratio to AutoETS 0.950 and 0.900 at one
step and one season ahead, against 0.954 and 0.923; one seed): it lets a clearly better part
dominate instead of being diluted by several weaker ones.

A search's ensemble is also cross-fitted: it may hold more networks than it forecasts with. Those
that forecast (`networks`) were chosen on the validation and calibration origins; those whose
residuals on the calibration origins calibrate the intervals (`calibration_networks`, with the
calibration weights: `for_calibration`) were chosen on the validation origins alone
(tasks.validate.pooled_ranking).
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

    members: list[Member]  # the networks first, then the statistical members
    combine: str = "median"
    chunk: int = 65_536
    weights: tuple[float, ...] = ()  # (networks, each statistical member); (): all combined by `combine`
    calibration_weights: tuple[float, ...] = ()  # the hybrid whose residuals calibrate the intervals; (): `weights`
    networks: tuple[int, ...] = ()  # positions of the networks that forecast, among the networks; (): all
    calibration_networks: tuple[int, ...] = ()  # those of the ensemble that calibrates; (): `networks`

    def __post_init__(self) -> None:
        n_stat = sum(not m.is_network for m in self.members)
        if any(not m.is_network for m in self.members[: len(self.members) - n_stat]):
            raise ValueError("an ensemble's networks come before its statistical members")
        check_combination(len(self.members) - n_stat, n_stat, self.weights, self.calibration_weights, self.networks,
                          self.calibration_networks)

    def for_calibration(self) -> "Ensemble":
        """The ensemble whose residuals on the calibration origins calibrate the intervals: the
        networks and weights chosen without those origins (tasks.validate.hybrid_weights), or itself."""
        weights = self.calibration_weights or self.weights
        networks = self.calibration_networks or self.networks
        if weights == self.weights and networks == self.networks:
            return self
        return dataclasses.replace(self, weights=weights, networks=networks, calibration_weights=(),
                                   calibration_networks=())

    def active(self) -> list[Member]:
        """The members this ensemble forecasts with: its chosen networks, then every statistical member."""
        nets = [m for m in self.members if m.is_network]
        chosen = [nets[i] for i in self.networks] if self.networks else nets
        return [*chosen, *(m for m in self.members if not m.is_network)]

    def forecasts(self, values: np.ndarray, split: Split, idx: np.ndarray, steps: int) -> np.ndarray:
        """The forecasts of every member it forecasts with (`active`) of the targets of origins
        `idx` of `split`: (k, n, steps).

        split: the reference split (the longest window of all members); raises ValueError when a
        member's window is longer than it.
        """
        from tasks.components.backtest import model_forecasts

        idx = np.asarray(idx, dtype=np.int64)
        out = []
        for m in self.active():
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
        """The forecasts (k, n, steps) of its `active` members combined: (n, steps). With weights,
        the weighted mean of the networks' combination and each statistical member (see the module
        docstring)."""
        if not self.weights:
            return COMBINE[self.combine](forecasts, axis=0)
        n_net = len(forecasts) - (len(self.weights) - 1)
        parts = [COMBINE[self.combine](forecasts[:n_net], axis=0), *forecasts[n_net:]]
        return sum(w * p for w, p in zip(self.weights, parts))

    def __call__(self, values: np.ndarray, split: Split, idx: np.ndarray, steps: int) -> np.ndarray:
        """The combined forecast: (n, steps)."""
        return self.combined(self.forecasts(values, split, idx, steps))


def check_combination(n_networks: int, n_statistical: int, weights: tuple[float, ...] = (),
                      calibration_weights: tuple[float, ...] = (), networks: tuple[int, ...] = (),
                      calibration_networks: tuple[int, ...] = ()) -> None:
    """Raise ValueError unless the weights (each: none, or one for the networks' combination and one
    per statistical member) and the network positions (each: none, or distinct positions among
    the `n_networks` networks) fit an ensemble's members (Ensemble's fields of those names)."""
    for given in (weights, calibration_weights):
        if given and len(given) != 1 + n_statistical:
            raise ValueError(f"{len(given)} weights for the networks and {n_statistical} statistical member(s)")
    for given in (networks, calibration_networks):
        if any(not 0 <= i < n_networks for i in given) or len(set(given)) != len(given):
            raise ValueError(f"network positions {list(given)} do not fit the {n_networks} network member(s)")


def _same_series(ref: Split, own: Split) -> tuple:
    """The member's SeriesSplit of each of the reference's series (same ids, same order)."""
    if [s.series_id for s in own.series] != [s.series_id for s in ref.series]:
        raise ValueError("a member was trained on other series than the reference split holds")
    return own.series


def longest(splits: list[Split]) -> int:
    """Position of the split with the longest window (the first of equals): the reference."""
    return max(range(len(splits)), key=lambda i: (splits[i].seq_length, -i))


def inverse_error_weights(errors: list[float | None], power: float = 2.0) -> tuple[float, ...]:
    """Combination weights proportional to 1 / error^power (Bates & Granger 1969: power 2, the
    inverse error variance), summing to 1.

    errors: each part's validation MASE (>= 0). An undefined or infinite error gets weight 0; an
    error of 0 (a perfect part) takes all the weight, shared with any other perfect part. When no
    error is usable the weights are equal. Returns a tuple as long as `errors`.
    """
    e = np.array([np.inf if x is None or not np.isfinite(x) else max(float(x), 0.0) for x in errors])
    if not np.isfinite(e).any():
        return tuple(1.0 / len(e) for _ in e)
    if (e == 0).any():
        w = (e == 0).astype(float)
    else:
        w = np.where(np.isfinite(e), 1.0 / e**power, 0.0)
    return tuple(float(x) for x in w / w.sum())
