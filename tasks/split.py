"""The chronological split of a series' windows, as pure functions (no Prefect, no numpy).

Kept apart from tasks/windowing.py so the command line can check a data file's length before
Prefect is imported; the window stage re-exports both functions.
"""

from __future__ import annotations

from tasks.config import WindowConfig


def split_ranges(n_windows: int, train_fraction: float, val_fraction: float) -> dict[str, tuple[int, int]]:
    """Chronological [start, end) ranges of window indices for train, val and test."""
    n_fit = int(n_windows * train_fraction)  # the tutorial's int(len(X) * 0.8)
    n_val = int(round(n_fit * val_fraction))
    a, b = n_fit - n_val, n_fit
    if a < 1 or b >= n_windows:
        raise ValueError(
            f"{n_windows} windows cannot be split into train, val and test "
            f"(train_fraction={train_fraction}, val_fraction={val_fraction})"
        )
    return {"train": (0, a), "val": (a, b), "test": (b, n_windows)}


def min_series_length(cfg: WindowConfig) -> int:
    """The shortest series that still gives at least one train and one test window."""
    n = 2
    while True:
        try:
            split_ranges(n, cfg.train_fraction, cfg.val_fraction)
            return n + cfg.seq_length
        except ValueError:
            n += 1
