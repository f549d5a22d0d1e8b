"""ensemble: model.pt holding the top members of a search (each a network's model file content, or
a statistical forecaster's name, season length and MSTL seasons) and how they combine; and reading
any model file, a network's or an ensemble's (what promotion and a champion hold).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from tasks.components.ensemble import Member, check_combination
from tasks.components.network import Forecaster
from tasks.components.references import Statistical
from tasks.components.split import Split
from tasks.formats.model import MODEL_FILE, ModelFile, from_blob, load_model, save_blob

ENSEMBLE_FORMAT = 3


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
    save_blob({"format": ENSEMBLE_FORMAT, "combine": combine, "members": blobs,
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
    blob = torch.load(path, map_location="cpu", weights_only=True)  # one read, whichever the format
    if blob.get("format") == ENSEMBLE_FORMAT:
        ens = EnsembleFile(tuple(from_blob(b) for b in blob["members"]), blob["combine"],
                           tuple(Statistical(m["name"], m["season"], tuple(m.get("mstl", ())))
                                 for m in blob.get("statistical", ())),
                           tuple(blob.get("weights", ())), tuple(blob.get("calibration_weights", ())),
                           tuple(blob.get("networks", ())), tuple(blob.get("calibration_networks", ())))
        ref = ens.reference()
        forecasting = len(ens.networks or ens.members) + len(ens.statistical)
        return ens, dataclasses.replace(ref, trained={**ref.trained, "members": forecasting, "combine": ens.combine})
    return from_blob(blob)


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
