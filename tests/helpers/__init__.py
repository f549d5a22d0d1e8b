"""Helpers shared by the tests (fixtures live in tests/conftest.py)."""

from __future__ import annotations

import sys

import numpy as np

from tasks.components.split import Split, build_split
from tasks.config import PipelineConfig, WindowConfig, with_overrides


def tiny_config(tmp_path, **sections) -> PipelineConfig:
    """A config that trains in well under a second, writing under tmp_path."""
    base = {
        "data": {"n_points": 240},
        "model": {"hidden_size": 8},
        "train": {"epochs": 3, "batch_size": 32, "device": "cpu", "patience": 0},
        "figures": {"width": 4, "height": 3, "dpi": 40},
        "search": {"mode": "off"},  # one model; tests of the search turn it on
        "output": {"root": str(tmp_path / "artifacts"), "data_dir": str(tmp_path / "data")},
    }
    for section, fields in sections.items():
        base.setdefault(section, {}).update(fields)
    return with_overrides(PipelineConfig(), base)


def split_for(values: np.ndarray, ids: tuple[str, ...] = ("s",), lengths: tuple[int, ...] | None = None,
              **window) -> Split:
    """The Split the window stage would make of `values` (one series unless `lengths` says otherwise),
    built by the real builder with WindowConfig(**window); normalize "auto" means "none",
    calibration "auto" 0 (no calibration origins)."""
    cfg = WindowConfig(**window)
    normalize = "none" if cfg.normalize == "auto" else cfg.normalize
    calibration = 0 if cfg.calibration == "auto" else cfg.calibration
    split = build_split(lengths or (len(values),), ids, cfg.seq_length, cfg.horizon, cfg.train_fraction,
                        cfg.val_fraction, calibration=calibration, normalize=normalize)
    return split.with_scalers(values)


def network(split: Split, **model):
    """The NetworkSpec the train stage builds on `split` for ModelConfig(**model), "auto" resolved
    as for generated data (the tutorial's rnn, no skip)."""
    from tasks.components.fit import network_for
    from tasks.config import ModelConfig, resolve

    cfg = resolve(PipelineConfig(model=ModelConfig(**model)), device="cpu")
    return network_for(split, cfg.model.model_dump())


def resolved(**sections) -> PipelineConfig:
    """PipelineConfig(**sections) with every "auto" resolved (device cpu), as a run's stages get it."""
    from tasks.config import resolve

    return resolve(with_overrides(PipelineConfig(), sections), device="cpu")


def imported(module: str) -> bool:
    """Has this process imported `module`? (Module-level, so that a statistical worker can run it.)"""
    return module in sys.modules
