"""The recurrent forecaster and device resolution (no training logic here)."""

from __future__ import annotations

import torch
from torch import nn

from tasks.components.specs import NetworkSpec
from tasks.errors import InputError

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class Forecaster(nn.Module):
    """A recurrent layer stack plus a linear head on the last hidden state.

    forward: x (batch, seq_len, 1) -> (batch, n_outputs)

    skip_lag m > 0 adds a baseline read off the input window to the head's output, so the
    network learns a correction to it (and starts as it: the head is zero-initialised):

        out[:, h-1] = head(...)[:, h-1] + x[:, L-1 + h - m*ceil(h/m)]    m = 1: naive, m = season: seasonal naive

    recurrent_steps R > 0: the recurrent layers read only the window's last R points; the skip
    still reads the whole window. A window of one long season (a day of one-minute data, 1,440
    points) then brings its seasonal value in at the cost of R recurrent steps, not 1,440: the
    cost of a step grows with R, never with the season.
    """

    def __init__(
        self, cell: str = "rnn", hidden_size: int = 64, num_layers: int = 1, dropout: float = 0.0,
        n_outputs: int = 1, skip_lag: int = 0, recurrent_steps: int = 0,
    ) -> None:
        super().__init__()
        self.rnn = CELLS[cell](
            input_size=1,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, n_outputs)
        self.skip_lag = skip_lag
        self.recurrent_steps = recurrent_steps
        if skip_lag:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seen = x[:, -self.recurrent_steps:] if 0 < self.recurrent_steps < x.shape[1] else x
        out, _ = self.rnn(seen)  # (batch, steps read, hidden)
        y = self.head(out[:, -1, :])
        if not self.skip_lag:
            return y
        m, h = self.skip_lag, torch.arange(1, y.shape[1] + 1, device=x.device)
        return y + x[:, x.shape[1] - 1 + h - m * ((h + m - 1) // m), 0]


def build_model(spec: NetworkSpec) -> Forecaster:
    """A Forecaster with the architecture of `spec` (fresh weights from torch's current seed)."""
    return Forecaster(**spec.as_dict())


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda, then mps, then cpu; an explicit device that is absent is an InputError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("device", name, "CUDA is not available on this machine (use --device cpu or auto)")
    if name == "mps" and not _mps_available():
        raise InputError("device", name, "Apple MPS is not available on this machine (use --device cpu or auto)")
    if name not in ("cpu", "cuda", "mps"):
        raise InputError("device", name, "expected auto, cpu, cuda or mps")
    return torch.device(name)
