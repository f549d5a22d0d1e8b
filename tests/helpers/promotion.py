"""Hand-built window and train entries for the promotion tests (no flow, no Prefect server)."""

from __future__ import annotations

import numpy as np
import torch

from tasks.components.fit import train_model
from tasks.components.specs import FitSettings, NetworkSpec
from tasks.components.synthetic import sine_values
from tasks.formats.model import ModelFile, save_model
from tasks.formats.window import split_to_json, write_window
from tasks.runtime import store
from tests.helpers import split_for

CPU = torch.device("cpu")
VALUES = sine_values(n_points=240, noise=0.02, seed=1) + 3.0  # an offset: scalers matter
NET = NetworkSpec(hidden_size=8)


def make_split(values: np.ndarray, seq_length: int = 20, normalize: str = "none"):
    return split_for(values, seq_length=seq_length, normalize=normalize)


def window_entry(base, values: np.ndarray, split, data_hash: str = "d" * 64) -> store.StageRef:
    key = store.sha256_json([split_to_json(split), data_hash])[:24]
    ref, _ = store.build_entry(base, "window", key, {"upstream": {"generate": data_hash}},
                               lambda w: write_window(w.dir, values, split))
    return ref


def record_of(split, network: NetworkSpec = NET) -> ModelFile:
    return ModelFile(network, split.seq_length, 1, "direct", split.normalize, split.scalers)


def train_entry(base, model: torch.nn.Module, split, tag: str) -> store.StageRef:
    def compute(w: store.EntryWriter) -> None:
        save_model(w.dir, model, record_of(split))

    ref, _ = store.build_entry(base, "train", tag, {}, compute)
    return ref


def trained(split, epochs: int = 40) -> torch.nn.Module:
    settings = FitSettings(epochs=epochs, patience=0, lr=1e-2)
    return train_model(VALUES, split, NET, settings, CPU)[0]
