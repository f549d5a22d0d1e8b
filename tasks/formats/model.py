"""train: model.pt, a ModelFile record with the network's weights; ensemble: model.pt holding
the top members of a search (each a network's model file content, or a statistical forecaster's
name and season length) and how they combine."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tasks.components.ensemble import Member, check_combination
from tasks.components.network import Forecaster, build_model
from tasks.components.references import Statistical
from tasks.components.specs import NetworkSpec
from tasks.components.split import Scaler, Split

MODEL_FILE = "model.pt"
_MODEL_FORMAT = 2
_ENSEMBLE_FORMAT = 3


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
    _save({
        "format": _MODEL_FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "network": record.network.as_dict(),
        "seq_length": record.seq_length, "horizon": record.horizon, "strategy": record.strategy,
        "normalize": record.normalize, "scalers": [dataclasses.asdict(s) for s in record.scalers],
        "trained": dict(record.trained),
    }, path)
    return path


def _save(obj: object, path: Path) -> None:
    """torch.save through a file object this process writes: a failed write (a full disk) raises
    the operating system's OSError naming `path`, not torch's "unexpected pos" RuntimeError."""
    try:
        with open(path, "wb") as fh:
            torch.save(obj, fh)
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
        raise


@dataclass(frozen=True)
class EnsembleFile:
    """The content of an ensemble's model.pt: each network member's network and record, the
    statistical members (tasks.components.references.Statistical), and the combination."""

    members: tuple[tuple[Forecaster, ModelFile], ...]
    combine: str = "median"
    statistical: tuple[Statistical, ...] = ()
    weights: tuple[float, ...] = ()  # (networks, each statistical member): tasks.components.ensemble
    calibration_weights: tuple[float, ...] = ()  # what calibrates the intervals; (): `weights`
    networks: tuple[int, ...] = ()  # the members that forecast (positions in `members`); (): all
    calibration_networks: tuple[int, ...] = ()  # those whose residuals calibrate; (): `networks`

    def combination(self) -> dict:
        """How its members combine, as tasks.components.ensemble.Ensemble's keyword arguments."""
        return {"weights": self.weights, "calibration_weights": self.calibration_weights,
                "networks": self.networks, "calibration_networks": self.calibration_networks}

    def reference(self) -> ModelFile:
        """The record of the network member with the longest window (the first of equals): the
        ensemble's forecasts are made from its origins (tasks.components.ensemble)."""
        return max((r for _, r in self.members), key=lambda r: r.seq_length)


def save_ensemble(directory: Path, member_files: Sequence[Path], combine: str,
                  statistical: Sequence[Statistical] = (), weights: Sequence[float] = (),
                  calibration_weights: Sequence[float] = (), networks: Sequence[int] = (),
                  calibration_networks: Sequence[int] = ()) -> Path:
    """model.pt of an ensemble: every network member's model file content, in rank order, the
    statistical members (name, season length and the seasons MSTL removes first), `combine` and the combination `weights`
    (networks, each statistical member; none: every member combined by `combine`) and
    `calibration_weights` (the same shape, the hybrid whose residuals calibrate the intervals;
    none: `weights`: tasks.validate.hybrid_weights); `networks` and `calibration_networks`: the
    positions in `member_files` of the networks that forecast and of those that calibrate (none:
    all, and `networks`). Raises ValueError without a network member (an ensemble forecasts from
    a network's origins) or with weights or positions that do not fit the members."""
    if not member_files:
        raise ValueError("an ensemble needs at least one network member")
    check_combination(len(member_files), len(statistical), tuple(weights), tuple(calibration_weights),
                      tuple(networks), tuple(calibration_networks))
    path = Path(directory) / MODEL_FILE
    blobs = [torch.load(f, map_location="cpu", weights_only=True) for f in member_files]
    _save({"format": _ENSEMBLE_FORMAT, "combine": combine, "members": blobs,
           "statistical": [{"name": m.name, "season": m.season, **({"mstl": list(m.mstl)} if m.mstl else {})}
                           for m in statistical],
           "weights": [float(w) for w in weights],
           "calibration_weights": [float(w) for w in calibration_weights],
           "networks": [int(i) for i in networks], "calibration_networks": [int(i) for i in calibration_networks]},
          path)
    return path


def load_model_file(path: str | Path) -> tuple[Forecaster | EnsembleFile, ModelFile]:
    """A model file (an entry's model.pt or a champion's copy), safely: (model in eval mode, record).

    An ensemble's file gives (EnsembleFile, the record of its reference member, with "members"
    and "combine" added to `trained`). Files written before the record was typed (network under
    "model" with its head width as "horizon", per-series "scaler" dicts, training facts at the
    top level) are read as well.
    """
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") == _ENSEMBLE_FORMAT:
        ens = EnsembleFile(tuple(_from_blob(b) for b in blob["members"]), blob["combine"],
                           tuple(Statistical(m["name"], m["season"], tuple(m.get("mstl", ())))
                                 for m in blob.get("statistical", ())),
                           tuple(blob.get("weights", ())), tuple(blob.get("calibration_weights", ())),
                           tuple(blob.get("networks", ())), tuple(blob.get("calibration_networks", ())))
        ref = ens.reference()
        forecasting = len(ens.networks or ens.members) + len(ens.statistical)
        return ens, dataclasses.replace(ref, trained={**ref.trained, "members": forecasting, "combine": ens.combine})
    return _from_blob(blob)


def _from_blob(blob: dict) -> tuple[Forecaster, ModelFile]:
    if blob.get("format") == _MODEL_FORMAT:
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


def load_model(directory: Path) -> tuple[Forecaster, ModelFile]:
    """The model of a train entry."""
    return load_model_file(Path(directory) / MODEL_FILE)


def load_members(model_dirs: Sequence[Path], splits: Sequence[Split], statistical: Sequence[Statistical] = (),
                 reference: Split | None = None) -> list[Member]:
    """The members of an ensemble: each train entry's model with the split it reads the series by,
    then each statistical member reading them through `reference` (the longest window's split)."""
    if statistical and reference is None:
        raise ValueError("statistical members need the reference split")
    return [*(Member(load_model(d)[0], sp) for d, sp in zip(model_dirs, splits)),
            *(Member(m, reference) for m in statistical)]


def hybrid_of(packed) -> tuple[tuple[Statistical, ...], dict]:
    """The statistical members of a packed ensemble entry (a StageRef) and how its members
    combine (EnsembleFile.combination: Ensemble's keyword arguments); None: ((), {})."""
    if packed is None:
        return (), {}
    ens, _ = load_model_file(packed.file(MODEL_FILE))
    return ens.statistical, ens.combination()
