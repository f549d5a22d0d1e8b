"""Sliding windows over a 1-D series as views: nothing is copied.

    values:  v0 v1 v2 ... v(n-1)
    window i (length L): v[i] .. v[i+L-1], next value v[i+L]
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def window_view(values: np.ndarray, seq_length: int) -> np.ndarray:
    """All windows of a 1-D series as a read-only view, no copy: (n - seq_length + 1, seq_length)."""
    return sliding_window_view(values, seq_length)


def make_windows(values: np.ndarray, seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-value targets: X (n - L, L) as a view, y (n - L,).

    Raises ValueError when the series is not longer than one window.
    """
    n = len(values) - seq_length
    if n <= 0:
        raise ValueError(f"series of {len(values)} points is too short for windows of {seq_length}")
    return window_view(values, seq_length)[:n], values[seq_length:]
