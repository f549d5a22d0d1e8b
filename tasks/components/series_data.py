"""The series on the device as the network sees it: scaled, windowed as a view, batched by origin.

    values (n_total,) float32, every series end to end, each scaled by its own Scaler
    windows = values.unfold(0, L, 1)      (n_total - L + 1, L), a view: no window is copied
    batch(origins) -> inputs windows[origins] (b, L, 1), targets values[origins + L + lead] (b, H)

With normalize="window" every window is then standardised by its own statistics, its std floored
at its series' floor (tasks.components.scaling), in training and in forecasting alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from tasks.components.scaling import from_window, to_window, window_stats
from tasks.components.split import Split


@dataclass
class SeriesData:
    """The (scaled) series on the device and its window view.

    values:  (n_total,) float32
    windows: (n_total - L + 1, L) view of `values` (torch unfold, no copy)
    window_norm: scale every window by its own statistics (normalize="window")
    """

    values: torch.Tensor
    seq_length: int
    horizon: int = 1
    window_norm: bool = False
    floors: torch.Tensor | None = None  # (n_total,) the window floor of each point's series (Scaler.floor)
    windows: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.windows = self.values.unfold(0, self.seq_length, 1)
        self._lead = torch.arange(self.horizon, device=self.values.device)

    def stats(self, idx: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The window statistics of windows `x` starting at `idx`, floored by their series' floor."""
        return window_stats(x, None if self.floors is None else self.floors[idx][:, None])

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows starting at `idx` (b,) -> inputs (b, L, 1), targets (b, horizon), in model space."""
        x = self.windows[idx]
        y = self.values[idx[:, None] + self.seq_length + self._lead]
        if self.window_norm:
            loc, scale = self.stats(idx, x)
            x, y = to_window(x, loc, scale), to_window(y, loc, scale)
        return x.unsqueeze(-1), y

    def forecast(self, model: torch.nn.Module, idx: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Forecasts of `steps` (default: horizon) values after windows `idx`, window scaling undone: (b, steps).

        A one-step model is fed its own forecasts back (recursive); the window statistics come
        from the input window only and are reused for every fed-back step.
        """
        x = self.windows[idx]
        steps = steps or self.horizon
        if not self.window_norm:
            return roll_forward(model, x, steps)
        loc, scale = self.stats(idx, x)
        return from_window(roll_forward(model, to_window(x, loc, scale), steps), loc, scale)


def roll_forward(model: torch.nn.Module, x: torch.Tensor, steps: int) -> torch.Tensor:
    """x (b, L) -> (b, steps): one call when the head has `steps` outputs, else one-step calls fed back."""
    out = model(x.unsqueeze(-1))
    if out.shape[1] >= steps:
        return out[:, :steps]
    if out.shape[1] != 1:
        raise ValueError(f"a model with {out.shape[1]} outputs cannot forecast {steps} steps")
    outs = [out]
    for _ in range(steps - 1):
        x = torch.cat([x[:, 1:], out], dim=1)  # slide the window over its own forecast
        out = model(x.unsqueeze(-1))
        outs.append(out)
    return torch.cat(outs, dim=1)


def scaled_values(values: np.ndarray, split: Split) -> np.ndarray:
    """Each series' points through its own Scaler, in float64: (n_total,)."""
    out = values.astype(np.float64, copy=True)
    for s in split.series:
        a, b = s.offset, s.offset + s.length
        out[a:b] = (out[a:b] - s.scaler.mean) / s.scaler.std
    return out


def series_data(values: np.ndarray, split: Split, device: torch.device | str = "cpu",
                horizon: int | None = None) -> SeriesData:
    """The series of a split, scaled, on `device`, with its window scaling (each series' window
    floor from its scaler); targets `horizon` wide (default: the split's horizon)."""
    window = split.normalize == "window"
    floors = None
    if window:
        floors = np.zeros(len(values), dtype=np.float32)
        for s in split.series:
            floors[s.offset:s.offset + s.length] = s.scaler.floor
    return SeriesData(
        torch.as_tensor(scaled_values(values, split), dtype=torch.float32, device=device),
        split.seq_length, horizon=horizon or split.horizon, window_norm=window,
        floors=None if floors is None else torch.as_tensor(floors, device=device),
    )


@torch.inference_mode()
def predict(
    model: torch.nn.Module, data: SeriesData, idx: torch.Tensor, chunk: int = 65_536, *,
    series_units: bool = False, steps: int | None = None,
) -> torch.Tensor:
    """Model outputs for windows starting at `idx`, in bounded chunks: (n, horizon).

    In model space by default (what the loss compares); `series_units` undoes the window scaling
    and forecasts `steps` values (recursively for a one-step model).
    """
    was_training = model.training
    model.eval()
    chunk = bounded_chunk(model, data, chunk)
    one = (lambda i: data.forecast(model, i, steps)) if series_units else (lambda i: model(data.batch(i)[0]))
    outs = [one(idx[i : i + chunk]) for i in range(0, len(idx), chunk)]
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0, steps or data.horizon, device=data.values.device)


@torch.inference_mode()
def mse_on(model: torch.nn.Module, data: SeriesData, idx: torch.Tensor, chunk: int = 65_536) -> float:
    """Mean squared error over windows `idx` in model space (one host sync); nan for no windows."""
    if len(idx) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    chunk = bounded_chunk(model, data, chunk)
    total = torch.zeros((), dtype=torch.float64, device=data.values.device)
    for i in range(0, len(idx), chunk):  # never all windows (or all targets) at once
        x, y = data.batch(idx[i : i + chunk])
        total += ((model(x) - y) ** 2).sum(dtype=torch.float64)
    model.train(was_training)
    return float(total.item()) / (len(idx) * data.horizon)


def bounded_chunk(model: torch.nn.Module, data: SeriesData, chunk: int) -> int:
    """At most `chunk` windows, and few enough that one inference chunk stays near 64 MB on CPU
    (1 GB on a GPU): the recurrent layers keep about 8 floats per step, unit and window."""
    rnn = getattr(model, "rnn", None)
    units = rnn.hidden_size * rnn.num_layers if rnn is not None else 64
    budget = (1 << 30) if data.values.device.type == "cuda" else (64 << 20)
    return max(1, min(chunk, budget // (data.seq_length * units * 32)))
