"""train: model.pt, a ModelFile record with the network's weights (one network).

An ensemble's model.pt (the ensemble stage's) is tasks/formats/ensemble.py's, so that the train
stage's key covers the network's file format and not the ensemble's (nor its backtest code)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tasks.components.network import Forecaster, build_model
from tasks.components.specs import NetworkSpec
from tasks.components.split import Scaler

MODEL_FILE = "model.pt"
MODEL_FORMAT = 2


@dataclass(frozen=True)
class ModelFile:
    """What model.pt holds besides the weights: enough to forecast from a series on its own.

    network: the architecture (its n_outputs is the head's width, not the horizon);
    horizon: the leads this model forecasts (recursively when strategy is "recursive");
    seq_length, normalize, scalers: how it reads a series (one Scaler per series it was fitted on);
    trained: device, threads, epochs_run, best_epoch, stopped_early, best_val_loss, cuda_graphs.
    """

    network: NetworkSpec
    seq_length: int
    horizon: int
    strategy: str
    normalize: str
    scalers: tuple[Scaler, ...]
    trained: dict = field(default_factory=dict)


def save_model(directory: Path, model: torch.nn.Module, record: ModelFile) -> Path:
    """model.pt: CPU weights plus the record, loadable with torch.load(weights_only=True)."""
    path = Path(directory) / MODEL_FILE
    save_blob({
        "format": MODEL_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "network": record.network.as_dict(),
        "seq_length": record.seq_length, "horizon": record.horizon, "strategy": record.strategy,
        "normalize": record.normalize, "scalers": [dataclasses.asdict(s) for s in record.scalers],
        "trained": dict(record.trained),
    }, path)
    return path


def save_blob(obj: object, path: Path) -> None:
    """torch.save through a file object this process writes: a failed write (a full disk) raises
    the operating system's OSError naming `path`, not torch's "unexpected pos" RuntimeError."""
    try:
        with open(path, "wb") as fh:
            torch.save(obj, fh)
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
        raise


def from_blob(blob: dict) -> tuple[Forecaster, ModelFile]:
    if blob.get("format") == MODEL_FORMAT:
        record = ModelFile(NetworkSpec(**blob["network"]), blob["seq_length"], blob["horizon"], blob["strategy"],
                           blob["normalize"], tuple(Scaler(**s) for s in blob["scalers"]), blob["trained"])
    else:
        record = _legacy_record(blob)
    model = build_model(record.network)
    model.load_state_dict(blob["state_dict"])
    model.eval()
    return model, record


def _legacy_record(blob: dict) -> ModelFile:
    spec = dict(blob["model"])
    spec["n_outputs"] = spec.pop("horizon", 1)
    trained = {k: blob[k] for k in ("device", "threads", "epochs_run", "best_epoch", "stopped_early",
                                    "best_val_loss", "cuda_graphs") if k in blob}
    scalers = tuple(Scaler(float(s["mean"]), float(s["std"])) for s in blob.get("scaler") or [])
    return ModelFile(NetworkSpec(**spec), int(blob["seq_length"]), int(blob.get("horizon", 1)),
                     blob.get("strategy", "direct"), blob.get("normalize", "none"), scalers, trained)


def load_network_file(path: str | Path) -> tuple[Forecaster, ModelFile]:
    """A network's model file (an entry's model.pt or a champion's copy), safely: (model in eval
    mode, record). Files written before the record was typed (network under "model" with its head
    width as "horizon", per-series "scaler" dicts, training facts at the top level) are read as
    well. Any model file, an ensemble's too: tasks.formats.ensemble.load_model_file."""
    return from_blob(torch.load(path, map_location="cpu", weights_only=True))


def load_model(directory: Path) -> tuple[Forecaster, ModelFile]:
    """The model of a train entry."""
    return load_network_file(Path(directory) / MODEL_FILE)
