"""What the sections share: measuring and printing helpers, and the tutorial's reference code.

The tutorial is the classic RNN sine script rnnflow grew from: windows built by a Python loop,
nn.RNN(1, 64) plus a Linear head, an 80/20 split, DataLoader(shuffle), Adam 1e-3, MSELoss.
"""

from __future__ import annotations

import ctypes
import gc
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tasks.components.backtest import one_step_forecasts
from tasks.components.metrics import mse
from tasks.components.split import Split, build_split
from tasks.components.synthetic import SERIES_ID

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench.py"
DEFAULT_THREADS = torch.get_num_threads()  # what a tutorial script gets: read before anything sets it
TRAIN_THREADS = 1  # the train stage's setting: TrainConfig.threads' default (tasks/config.py)
L = 20  # the tutorial's window length
GPU = torch.device("cuda")

# --------------------------------------------------------------------------- measuring


def status_kb(field: str) -> int:
    """A field of /proc/self/status in KB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_extra_rss(fn):
    """fn(), and how far the process's peak RSS rose above its RSS before the call (bytes; None off Linux).

    Freed heap goes back to the OS first (malloc_trim) and the kernel's high-water mark is reset
    (/proc/self/clear_refs), so numpy, Python and torch allocations all count (tracemalloc misses torch).
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        before = status_kb("VmRSS")
    except (OSError, AttributeError):
        return fn(), None
    out = fn()
    return out, max(0, status_kb("VmHWM") - before) * 1024


def best_time(fn, repeats: int) -> float:
    """The shortest wall time of `repeats` calls of fn()."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
        del out
    return best


# --------------------------------------------------------------------------- printing


def fmt_s(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_b(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:.1f} MB" if b >= 2**20 else f"{b / 2**10:.0f} KB"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def fmt_x(r: float | None, floor: bool = False) -> str:
    return "-" if r is None else (">=" if floor else "") + (f"{r:.0f}x" if r >= 100 else f"{r:.2f}x")


def print_table(title: str, header: tuple[str, str], rows: list[tuple], notes: list[str] = ()) -> None:
    """rows: (name, ours, baseline, ratio), all strings."""
    table = [("", *header, "ratio"), *rows]
    w = [max(len(r[i]) for r in table) for i in range(4)]
    print(f"\n== {title} ==")
    for r in table:
        print(f"  {r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}")
    for n in notes:
        print(f"  note: {n}")


def print_lines(title: str, lines: list[str]) -> None:
    """A section without a table: its title, then one indented line each (skipped: ..., failed: ...)."""
    print(f"\n== {title} ==\n" + "\n".join(f"  {line}" for line in lines))


# --------------------------------------------------------------------------- the project's side


def project_split(values: np.ndarray) -> Split:
    """What the window stage hands on for one generated series with the default window settings."""
    split = build_split([len(values)], [SERIES_ID], L, horizon=1, train_fraction=0.8, val_fraction=0.1, normalize="none")
    return split.with_scalers(values)


def holdout_mse(model, values: np.ndarray, split: Split) -> float:
    """The evaluate stage's model MSE: one-step forecasts on the test windows, in series units."""
    targets = split.origins("test") + split.seq_length
    return mse(values[targets], one_step_forecasts(model, values, split, 65_536))


# --------------------------------------------------------------------------- the tutorial


def tutorial_windows(data: np.ndarray, seq_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The tutorial, verbatim: a Python loop of slices, stacked, then a FloatTensor copy."""
    xs, ys = [], []
    for i in range(len(data) - seq_length):
        xs.append(data[i : i + seq_length])
        ys.append(data[i + seq_length])
    return torch.FloatTensor(np.array(xs)), torch.FloatTensor(np.array(ys))


class TutorialRNN(nn.Module):
    """The tutorial's model: nn.RNN(1, 64) and a Linear head on the last hidden state."""

    def __init__(self, input_size: int = 1, hidden_size: int = 64, output_size: int = 1):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])


def tutorial_epoch(model, loader, criterion, optimizer, device=None, max_steps=None) -> int:
    """One epoch of the tutorial's loop (loss.item() every step, as tutorials print it); returns steps."""
    model.train()
    epoch_loss, steps = 0.0, 0
    for xb, yb in loader:
        if device is not None:
            xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
        steps += 1
        if max_steps and steps >= max_steps:
            break
    return steps
