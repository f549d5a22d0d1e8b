"""1. Windowing: time and peak extra RSS of building every (window, next value) pair of a series.

Ours: tasks.components.windows.make_windows (numpy views), then the float32 tensor view the
trainer uses (one series copy). The tutorial: a Python loop of slices, stacked, then copied.
Both are asserted bit-identical, at L = 20, for series of 1e3 .. 1e7 points.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.sections.common import (DEFAULT_THREADS, TRAIN_THREADS, L, best_time, fmt_b, fmt_s, fmt_x,
                                        peak_extra_rss, print_table, ratio, tutorial_windows)
from tasks.components.synthetic import sine_values
from tasks.components.windows import make_windows

TITLE = "1. windowing (L=20): make_windows + tensor unfold vs the tutorial's loop"


def ours_windows(values: np.ndarray, seq_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """make_windows (numpy views), then the float32 tensor view the trainer uses (one series copy)."""
    X, _ = make_windows(values, seq_length)
    t = torch.as_tensor(values, dtype=torch.float32)
    return t.unfold(0, seq_length, 1)[: len(X)], t[seq_length:]


def run(sizes: list[int]) -> list[dict]:
    """Ours with the train stage's thread setting (TRAIN_THREADS), the tutorial with torch's default."""
    out, rows = [], []
    tutorial_windows(np.zeros(100), L), ours_windows(np.zeros(100), L)  # first-call costs out of the way
    for n in sizes:
        values = sine_values(n_points=n)
        ours, tut = (lambda: ours_windows(values, L)), (lambda: tutorial_windows(values, L))
        torch.set_num_threads(TRAIN_THREADS)
        (ow, oy), ours_mem = peak_extra_rss(ours)
        ours_s = best_time(ours, 20)
        torch.set_num_threads(DEFAULT_THREADS)
        (tw, ty), tut_mem = peak_extra_rss(tut)
        same = bool(torch.equal(ow, tw) and torch.equal(oy, ty))  # same shapes, every bit
        assert same, f"windows differ at n={n}"
        del tw, ty
        r = {"n": n, "ours_s": ours_s, "tutorial_s": best_time(tut, 3 if n <= 10**6 else 1),
             "ours_peak_bytes": ours_mem, "tutorial_peak_bytes": tut_mem, "memory_ratio_is_floor": (ours_mem or 0) <= 4096,
             "memory_ratio": ratio(tut_mem, max(ours_mem or 0, 4096)), "bit_identical": same}
        r["time_ratio"] = r["tutorial_s"] / r["ours_s"]
        out.append(r)
        rows += [(f"{n:.0e} points: time", fmt_s(r["ours_s"]), fmt_s(r["tutorial_s"]), fmt_x(r["time_ratio"])),
                 (f"{n:.0e} points: peak extra RSS", fmt_b(ours_mem), fmt_b(tut_mem),
                  fmt_x(r["memory_ratio"], r["memory_ratio_is_floor"]))]
    print_table(TITLE, ("ours", "tutorial"), rows, [
        f"time: best of 20 runs (ours) and of 3 (tutorial; 1 at 1e7); ours at {TRAIN_THREADS} thread(s) "
        f"(the train stage's setting), the tutorial at torch's default {DEFAULT_THREADS}; windows and targets asserted "
        "bit-identical",
        "memory: rise of the process's peak RSS (VmHWM, reset through /proc/self/clear_refs) while building them: "
        "numpy, Python and torch allocations all count; page-granular, so ours is floored at 4 KB (>=)"])
    return out
