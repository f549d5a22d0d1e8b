"""window: values.npy (every series end to end) and split.json (the Split)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tasks.components.split import Scaler, SeriesSplit, Split
from tasks.formats import read_json, write_json

VALUES_FILE = "values.npy"
SPLIT_FILE = "split.json"


def split_to_json(split: Split) -> dict:
    """A Split as plain JSON (ranges as [start, end] lists)."""
    return dataclasses.asdict(split)


def split_from_json(obj: dict) -> Split:
    """The Split of split_to_json's output."""
    series = tuple(
        SeriesSplit(**{**s, **{k: tuple(s[k]) for k in ("train", "val", "cal", "test", "fit_range") if k in s},
                       "scaler": Scaler(**s["scaler"])})
        for s in obj["series"]
    )
    return Split(**{**obj, "series": series, "seasons": tuple(obj.get("seasons", ()))})


def write_window(directory: Path, values: np.ndarray, split: Split) -> None:
    """values.npy (float64) and split.json."""
    np.save(Path(directory) / VALUES_FILE, np.ascontiguousarray(values, dtype=np.float64))
    write_json(Path(directory) / SPLIT_FILE, split_to_json(split))


def read_window(directory: Path) -> tuple[np.ndarray, Split]:
    """(values (n_total,), Split) of a window entry."""
    return read_values(directory), read_split(directory)


def read_split(directory: Path) -> Split:
    """The Split of a window entry (without loading its values)."""
    return split_from_json(read_json(Path(directory) / SPLIT_FILE))


def read_values(directory: Path) -> np.ndarray:
    """values.npy of a window entry: (n_total,) float64."""
    return np.load(Path(directory) / VALUES_FILE)
