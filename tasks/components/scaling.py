"""Per-window scaling (window.normalize="window"), RevIN / NeuralForecast style.

Each input window is standardised by its own mean and std; the model sees and forecasts in that
space, and its forecast is mapped back with the same window's statistics:

    x (b, L) ──window_stats──► loc, scale (b, 1)
    model input  (x - loc) / scale          target (training)  (y - loc) / scale
    forecast     model(...) * scale + loc   (evaluation, serving)

Only the inputs define the statistics, so no target value leaks into them. Pure tensor ops, no
host sync: they run inside a captured CUDA graph. Training (tasks.train.SeriesData) and
evaluation (tasks.evaluate) both call this one pair.
"""

from __future__ import annotations

import torch

# A near-constant window has its std floored at this share of its mean absolute level, so its
# scaled target cannot blow up; the floor keeps the map scale-equivariant (x*c -> loc*c, scale*c).
REL_FLOOR = 1e-3


def window_stats(x: torch.Tensor, rel_floor: float = REL_FLOOR) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (floored) std of each window: x (b, L) -> loc (b, 1), scale (b, 1); all-zero -> 1."""
    loc = x.mean(dim=1, keepdim=True)
    std = (x - loc).square().mean(dim=1, keepdim=True).sqrt()
    scale = torch.maximum(std, rel_floor * x.abs().mean(dim=1, keepdim=True))
    return loc, torch.where(scale > 0, scale, torch.ones_like(scale))


def to_window(v: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Series units -> window space: (v - loc) / scale, v (b, k) with loc, scale (b, 1)."""
    return (v - loc) / scale


def from_window(v: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Window space -> series units: v * scale + loc (the inverse of to_window)."""
    return v * scale + loc
