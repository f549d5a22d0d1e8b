"""Plain settings records of the network and of training (no torch, no pydantic).

The pipeline's config (tasks/config.py) is the user-facing form; a stage turns its resolved
sections into these records with `pick`, so the numerical code never sees the config classes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def pick(cls: type[T], values: Mapping[str, Any], **overrides: Any) -> T:
    """An instance of dataclass `cls` from the entries of `values` that name its fields."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{**{k: v for k, v in values.items() if k in names}, **overrides})


MIN_EPOCHS = 10  # a search member is trained for at least this many epochs, or skipped (cost.py, fit.py)


@dataclass(frozen=True)
class NetworkSpec:
    """The Forecaster's arguments, as stored in a model file.

    n_outputs: width of the linear head (the horizon for a direct model, 1 for a recursive one);
    skip_lag: 0, or the lag m of the baseline added to the head's output (1: naive, season: seasonal naive);
    recurrent_steps: 0, or how many of the window's last points the recurrent layers read (the skip
    reads the whole window).
    """

    cell: str = "rnn"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    n_outputs: int = 1
    skip_lag: int = 0
    recurrent_steps: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def head_width(strategy: str, horizon: int) -> int:
    """Outputs of the head: every lead for strategy "direct", one (fed back) for "recursive"."""
    if strategy not in ("direct", "recursive"):
        raise ValueError(f"unknown strategy {strategy!r}")
    return horizon if strategy == "direct" else 1


def skip_lag(skip: str, season: int | None, seq_length: int, seasons: tuple[int, ...] = ()) -> int:
    """The baseline lag of a skip setting: none 0, naive 1, seasonal the longest of the calendar's
    `seasons` (or `season`) the input window holds (a week of sub-daily data in a week's window, a
    day in a day's), naive if none fits or the season is unknown."""
    if skip == "none":
        return 0
    if skip == "naive":
        return 1
    if skip == "seasonal":
        fits = [int(m) for m in (seasons or (season,)) if m and 0 < m <= seq_length]
        return max(fits) if fits else 1
    raise ValueError(f"unknown skip {skip!r}")


def network_spec(*, seq_length: int, horizon: int, season: int | None, cell: str, hidden_size: int,
                 num_layers: int, dropout: float, strategy: str, skip: str, recurrent_steps: int = 0,
                 seasons: tuple[int, ...] = (), **_: Any) -> NetworkSpec:
    """The network for one split: head width from the strategy and horizon, skip lag from the season,
    the recurrent layers' reach (0 where it covers the whole window anyway)."""
    reach = recurrent_steps if 0 < recurrent_steps < seq_length else 0
    return NetworkSpec(cell=cell, hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
                       n_outputs=head_width(strategy, horizon), skip_lag=skip_lag(skip, season, seq_length, seasons),
                       recurrent_steps=reach)


@dataclass(frozen=True)
class FitSettings:
    """How `fit` trains (defaults: the tutorial's Adam 1e-3, batch 32, 100 epochs, seed 42).

    patience/min_delta: stop after `patience` epochs whose validation loss is not `min_delta`
    (relative) below the last improvement (0: never); ema_decay: per-step decay of the weight
    average that is validated and kept (0: off); lr_patience/lr_factor: multiply the learning
    rate by lr_factor after lr_patience epochs without improvement (0: off); steps_per_epoch: at most
    this many batches per epoch (0: all training windows); val_windows: at most this many
    validation windows, evenly spaced, score each epoch (0: all); deadline: a time.time() after
    which no further epoch starts (0: none).
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 42
    patience: int = 5
    min_delta: float = 0.1
    ema_decay: float = 0.95
    lr_patience: int = 0
    lr_factor: float = 0.5
    cuda_graphs: bool = True
    checkpoint_every: int = 10
    steps_per_epoch: int = 0  # 0: every training window once per epoch
    val_windows: int = 0  # 0: every validation window each epoch
    deadline: float = 0.0  # 0: no deadline
