"""The chronological split of a series' forecast origins, as pure functions (no Prefect, no numpy).

Kept apart from tasks/windowing.py so the command line can check a data file's length before
Prefect is imported; the window stage re-exports these functions.

An origin (window start) s reads inputs s .. s+L-1 and forecasts targets s+L .. s+L+H-1. With a
horizon H > 1 neighbouring parts are purged of H - 1 origins, so no target is in two parts:

    origins: [ train ......... | gap | val ..... | gap | test ............ ]
             0                 a-H+1 a           b-H+1  b                  n_windows
"""

from __future__ import annotations

from tasks.config import WindowConfig

Range = tuple[int, int]


def fit_ranges(n_windows: int, val_fraction: float, horizon: int = 1) -> tuple[Range, Range]:
    """Train and val origin ranges over all `n_windows` origins (val from the end, purged gap before it)."""
    n_val = int(round(n_windows * val_fraction))
    a = n_windows - n_val
    return ((0, a - (horizon - 1)) if n_val else (0, a)), (a, n_windows)


def split_ranges(
    n_windows: int, train_fraction: float, val_fraction: float, horizon: int = 1
) -> dict[str, Range]:
    """Chronological [start, end) ranges of origins for train, val and test (horizon 1: the tutorial's)."""
    b = int(n_windows * train_fraction)  # the tutorial's int(len(X) * 0.8)
    train, val = fit_ranges(b - (horizon - 1), val_fraction, horizon)
    if train[1] < 1 or b >= n_windows:
        raise ValueError(
            f"{n_windows} windows cannot be split into train, val and test "
            f"(train_fraction={train_fraction}, val_fraction={val_fraction}, horizon={horizon})"
        )
    return {"train": train, "val": val, "test": (b, n_windows)}


def n_windows(length: int, seq_length: int, horizon: int = 1) -> int:
    """Origins of a series of `length` points with room for L inputs and H targets."""
    return length - seq_length - horizon + 1


def min_series_length(cfg: WindowConfig) -> int:
    """The shortest series that still gives at least one train and one test window."""
    n = 2
    while True:
        try:
            split_ranges(n, cfg.train_fraction, cfg.val_fraction, cfg.horizon)
            return n + cfg.seq_length + cfg.horizon - 1
        except ValueError:
            n += 1
