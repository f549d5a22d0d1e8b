"""train: history.json, the per-epoch losses and how training ended."""

from __future__ import annotations

from pathlib import Path

from tasks.formats import read_json, write_json

HISTORY_FILE = "history.json"


def write_history(directory: Path, history: dict) -> None:
    write_json(Path(directory) / HISTORY_FILE, history)


def read_history(directory: Path) -> dict:
    """Per-epoch train_loss and val_loss lists, plus how training ended (best_epoch, ...)."""
    return read_json(Path(directory) / HISTORY_FILE)
