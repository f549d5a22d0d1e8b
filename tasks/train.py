"""Stage 3: train the forecaster (tasks/components/fit.py), resumably, and write the model file.

Progress goes to the log every `log_every` epochs and, epoch by epoch, to the console's progress
display and the run's one Prefect progress artifact `rnn-training-progress` (tasks/runtime/
progress.py); a checkpoint every `checkpoint_every` epochs lets a killed run resume
with the same result.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from prefect import task

from tasks.components.fit import FitState, network_for, train_buckets
from tasks.components.specs import FitSettings, pick
from tasks.components.split import Split
from tasks.config import ModelConfig, TrainConfig
from tasks.formats.history import HISTORY_FILE, write_history
from tasks.formats.model import MODEL_FILE, ModelFile, save_model
from tasks.formats.window import read_split, read_values
from tasks.runtime import progress, store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

STAGE = StageSpec(
    "train", packages=("torch",), run_only=frozenset({"device", "checkpoint_every", "log_every", "deadline"}),
    trains=lambda inputs: True, files=(MODEL_FILE, HISTORY_FILE),
    resumes=lambda base, key: any(p.is_file() for p in checkpoints(checkpoint_path(base, key))),
)


def checkpoint_path(root: Path, key: str) -> Path:
    """Where the resumable checkpoint of the train entry `key` lives (always under `root`); the
    one before it is beside it (`previous_checkpoint`)."""
    return store.inside(root, Path("checkpoints") / f"train-{key}" / "checkpoint.pt", field="train key")


def previous_checkpoint(path: Path) -> Path:
    """The checkpoint written before the one at `path` (kept until the next one is written)."""
    return path.with_name("checkpoint.previous.pt")


def checkpoints(path: Path) -> tuple[Path, Path]:
    """Where a training resumes from, newest first: the checkpoint at `path`, then the previous one."""
    return path, previous_checkpoint(path)


# A checkpoint file: this header line, the sha256 of the rest, a newline, then torch.save's bytes.
CHECKPOINT_HEADER = b"rnnflow-checkpoint sha256="


def load_checkpoint(path: Path) -> dict | None:
    """The newest intact checkpoint blob of a training: the one at `path`, else the previous one;
    None when neither is there and intact (then training starts afresh).

    Each is verified against the sha256 its header carries before torch reads it (weights_only):
    a damaged one (a flipped byte, a torn write, a foreign file) is said in one warning, set
    aside, and the previous one, or a fresh start, gives the same result, since a checkpoint holds
    every random state the rest of the training uses.
    """
    for candidate in checkpoints(path):
        if not candidate.is_file():
            continue
        try:
            blob = read_checkpoint(candidate)
        except (OSError, ValueError, RuntimeError, EOFError) as exc:
            fallback = "the previous checkpoint" if candidate == path else "the start"
            log.warning("checkpoint %s is unusable (%s); training resumes from %s", candidate, exc, fallback)
            with contextlib.suppress(OSError):
                os.replace(candidate, candidate.with_name(candidate.name + ".damaged"))
            continue
        return blob
    return None


def read_checkpoint(path: Path) -> dict:
    """One checkpoint file's blob, verified: ValueError when its sha256 does not match (or it has
    no rnnflow header), torch's error when the verified bytes are not a checkpoint."""
    data = Path(path).read_bytes()
    head, _, payload = data.partition(b"\n")
    if not head.startswith(CHECKPOINT_HEADER):
        raise ValueError("no rnnflow checkpoint header")
    if hashlib.sha256(payload).hexdigest().encode() != head[len(CHECKPOINT_HEADER):]:
        raise ValueError("its sha256 does not match its content")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def save_checkpoint(path: Path, blob: dict) -> None:
    """Write a checkpoint with its sha256 through a temp file and a rename, so a kill never leaves
    half a checkpoint; the one it replaces stays as the previous checkpoint."""
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    payload = buffer.getvalue()
    data = CHECKPOINT_HEADER + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    if path.is_file():
        os.replace(path, previous_checkpoint(path))
    store.write_bytes(path, data)


def model_label(spec, seq_length: int, seed: int) -> str:
    """The model in a few words, e.g. "gru-64 L24 skip12 seed 43" (skip12: the seasonal skip of
    lag 12, skip1 the naive one, nothing without a skip; "L1440/48": a window of 1,440 points whose
    last 48 the recurrent layers read): what tells apart the epoch lines of members that train at
    the same time (a search's, a sweep's)."""
    skip = f" skip{spec.skip_lag}" if spec.skip_lag else ""
    reach = f"/{spec.recurrent_steps}" if getattr(spec, "recurrent_steps", 0) else ""
    return f"{spec.cell}-{spec.hidden_size} L{seq_length}{reach}{skip} seed {seed}"


def progress_reporter(cfg: TrainConfig, label: str = "", key: str | None = None) -> Callable[[int, FitState], None]:
    """Log every cfg.log_every epochs (each line starting with `label`: the run's Prefect logs,
    and the console at --verbose) and report each epoch to the progress display and the run's
    training-progress artifact (tasks.runtime.progress, as item `key`, default `label`): an early
    stop, the time limit or the last epoch reports the model done at the epochs it ran; until then
    it is expected to run at least its patience's remaining epochs."""
    prefix = f"{label}: " if label else ""

    def on_epoch(epoch: int, st: FitState) -> None:
        if epoch % cfg.log_every == 0 or epoch == 1 or st.stopped_early or epoch == cfg.epochs:
            log.info(
                prefix + "epoch %d/%d  train %.3e  val %.3e%s", epoch, cfg.epochs,
                st.history["train_loss"][-1], st.history["val_loss"][-1],
                "  (early stop)" if st.stopped_early else "",
            )
        finished = st.stopped_early or st.stopped_at_deadline or epoch == cfg.epochs
        patience = cfg.patience if isinstance(cfg.patience, int) else 0  # "auto" where unresolved
        expected = epoch + max(0, patience - st.bad_epochs) if patience else cfg.epochs
        progress.item(STAGE.name, label or "model", epoch, epoch if finished else cfg.epochs, "epoch",
                      expected=epoch if finished else expected, key=key)

    return on_epoch


def bucket_loaders(splits: Sequence[store.StageRef], group: str | None = None
                   ) -> list[tuple[Callable[[], np.ndarray], Callable[[], Split]]]:
    """(read its values, read its Split) of every bucket's window entry with series of `group`
    (all series for None). Both are read when needed, not held: the driver's memory then does
    not grow with the number of series while a global model trains."""

    def reader(ref: store.StageRef) -> Callable[[], Split]:
        return lambda: read_split(ref.path).subset(group)

    return [(lambda ref=ref: read_values(ref.path), reader(ref)) for ref in splits if reader(ref)().series]


@task(**stage_task(STAGE))
def train_task(plan, model_cfg: ModelConfig, train_cfg: TrainConfig, splits: tuple[store.StageRef, ...],
               group: str | None = None) -> dict:
    """Train one global model on every bucket's series (only those of `group`, for per-group
    models), resuming from a checkpoint if one exists; write model.pt and history.json.

    model_cfg, train_cfg: resolved (no "auto"); train_cfg.device is the device to train on.
    """

    def compute(w: store.EntryWriter) -> dict:
        device = torch.device(train_cfg.device)
        torch.set_num_threads(train_cfg.threads)
        buckets = bucket_loaders(splits, group)
        sp = buckets[0][1]()
        spec = network_for(sp, model_cfg.model_dump())
        ckpt = checkpoint_path(Path(plan.base), plan.key)
        label = model_label(spec, sp.seq_length, train_cfg.seed)
        model, st = train_buckets(
            buckets, spec, pick(FitSettings, train_cfg.model_dump()), device,
            on_epoch=progress_reporter(train_cfg, label, plan.key), checkpoint=lambda b: save_checkpoint(ckpt, b),
            resume=load_checkpoint(ckpt),
        )
        trained = {
            "device": device.type, "threads": train_cfg.threads, "epochs_run": st.epoch, "best_epoch": st.best_epoch,
            "stopped_early": st.stopped_early, "best_val_loss": st.best_val,
            "stopped_at_deadline": st.stopped_at_deadline,
            "cuda_graphs": bool(train_cfg.cuda_graphs and device.type == "cuda"),
        }
        scalers = tuple(sc for _, read in buckets for sc in read().scalers)  # every series, bucket by bucket
        save_model(w.dir, model, ModelFile(spec, sp.seq_length, sp.horizon, model_cfg.strategy, sp.normalize,
                                           scalers, trained))
        write_history(w.dir, {**st.history, **trained})
        log.info("train: %s, %d epochs on %s (best %d, val loss %.3g)%s", label, st.epoch, device.type, st.best_epoch,
                 st.best_val, "; stopped at the run's time limit" if st.stopped_at_deadline else "")
        return trained

    return build(plan, compute)
