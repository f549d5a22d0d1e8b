"""The training loop: shuffled mini-batches, early stopping on validation, resumable state.

The loop keeps everything on the device: the series, the window view, the shuffled indices and
the running loss. The host synchronises once per epoch (validation loss), never per step. On
CUDA the whole step (gather, forward, backward, Adam) can be captured in one CUDA graph.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from tasks.components.network import Forecaster, build_model
from tasks.components.series_data import SeriesData, mse_on, series_data
from tasks.components.specs import MIN_EPOCHS, FitSettings, NetworkSpec, network_spec, pick
from tasks.components.split import Split
from tasks.components.steps import WeightAverage, graph_step, make_optimizer, plain_step
from tasks.errors import NumericalError

log = logging.getLogger(__name__)


class TrainingDiverged(NumericalError):
    """The training loss (or a weight) became NaN or infinite."""


@dataclass
class FitState:
    """Everything needed to resume: weights, optimiser, RNG, early stopping, history."""

    epoch: int = 0
    history: dict = field(default_factory=lambda: {"train_loss": [], "val_loss": []})
    best_val: float = math.inf
    best_epoch: int = 0
    ref_val: float = math.inf  # the last loss that improved on its predecessor by min_delta
    best_state: dict | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    stopped_at_deadline: bool = False  # the run's time limit ended training (its best weights kept)


class Loaded(NamedTuple):
    """One part, loaded: its data and origins (window starts within that data), on one device.

    data: SeriesData; train_idx, val_idx: (n,) int64; series: see `fit`.
    """

    data: SeriesData
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    series: tuple[torch.Tensor, torch.Tensor] | None = None


@dataclass(frozen=True)
class Part:
    """One bucket of series for `fit_parts`, loaded when its turn comes: only its origin counts are
    held in between, so that a thousand buckets cost a thousand pairs of ints, not their indexes.

    load: () -> Loaded (called for training and again for validation in every epoch when there
    are several parts); n_train, n_val: its numbers of train and val origins; device: where
    `load` puts them.
    """

    load: Callable[[], Loaded]
    n_train: int
    n_val: int
    device: torch.device


def fit(
    model: Forecaster,
    data: SeriesData,
    train_idx: torch.Tensor,
    val_idx: torch.Tensor,
    settings: FitSettings,
    *,
    on_epoch: Callable[[int, FitState], None] | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    resume: dict | None = None,
    series: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> FitState:
    """Train with shuffled mini-batches and early stopping on `val_idx`; restore the best weights.

    train_idx, val_idx: (n,) window starts on the data's device. `checkpoint(blob)` is called
    every settings.checkpoint_every epochs and at the end; `resume` is such a blob. `series`:
    (first train origin, number of train origins) of each series, when there are several: each
    epoch then draws len(train_idx) windows by series first, then a window of that series
    (`epoch_origins`); without it an epoch is a permutation of train_idx. settings.steps_per_epoch
    caps an epoch at that many batches (large data: a fixed amount of work per epoch);
    settings.val_windows thins the validation windows (`thinned`); no epoch starts after
    settings.deadline (a time.time()) once MIN_EPOCHS have run, so a member the deadline catches
    early still gets a model worth ranking. Raises TrainingDiverged when the
    epoch's training loss is not finite.
    """
    loaded = Loaded(data, train_idx, thinned(val_idx, settings.val_windows), series)
    part = Part(lambda: loaded, len(train_idx), len(val_idx), train_idx.device)
    return fit_parts(model, [part], settings, on_epoch=on_epoch, checkpoint=checkpoint, resume=resume)


def fit_parts(
    model: Forecaster,
    parts: list[Part],
    settings: FitSettings,
    *,
    on_epoch: Callable[[int, FitState], None] | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    resume: dict | None = None,
) -> FitState:
    """`fit` over parts of the data (buckets of series): one model, every part in every epoch.

    One part stays loaded (and may run as a captured CUDA graph). Several are streamed: each
    epoch visits them in a seeded random order, loading one at a time, so memory holds one
    bucket, not all of them; its batches come from that part, its share of
    settings.steps_per_epoch is proportional to its training windows, and the validation loss
    is the mean over every part's validation windows.
    """
    s = settings
    dev = parts[0].device
    resident = parts[0].load() if len(parts) == 1 else None
    use_graph = s.cuda_graphs and dev.type == "cuda" and resident is not None
    opt = make_optimizer(model, s.lr, dev, capturable=use_graph)
    gen = torch.Generator(device=dev).manual_seed(s.seed)
    avg = WeightAverage(model, s.ema_decay) if s.ema_decay > 0 else None
    kept = avg.model if avg else model  # the weights that are validated, checkpointed as best, returned
    st = FitState()
    if resume is not None:
        st = _restore(resume, model, opt, gen, avg)
        log.info("resuming from the checkpoint at epoch %d", st.epoch)
    resident_step = _choose_step(model, opt, resident.data, s.batch_size, use_graph, avg) if resident else None
    bs, sizes = s.batch_size, [p.n_train for p in parts]
    budget = s.steps_per_epoch * bs if s.steps_per_epoch else sum(sizes)
    shares = [min(k, math.ceil(budget * k / max(sum(sizes), 1))) for k in sizes]
    if resident is not None:
        shares = [min(sizes[0], budget)]
    while st.epoch < s.epochs and not st.stopped_early and not st.stopped_at_deadline:
        model.train()
        order = [0] if resident is not None else torch.randperm(len(parts), device=dev, generator=gen).tolist()
        total = torch.zeros((), device=dev)
        seen = 0
        for k in order:
            p, n = parts[k], shares[k]
            if n == 0:
                continue
            loaded = resident if resident is not None else p.load()
            data = loaded.data
            step = resident_step or _choose_step(model, opt, data, bs, False, avg)
            perm = epoch_origins(loaded.train_idx, gen, loaded.series)[:n]
            for i in range(0, n, bs):
                idx = perm[i : i + bs]
                total += step(idx) * len(idx)
            seen += n
        st.epoch += 1
        train_loss = float(total.item()) / seen  # the one sync per epoch
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} at epoch {st.epoch}; {_advice(data)}")
        val_loss = _validation_loss(kept, parts, resident, train_loss)
        _track(st, kept, opt, train_loss, val_loss, s)
        if (s.deadline and time.time() >= s.deadline and min(MIN_EPOCHS, s.epochs) <= st.epoch < s.epochs
                and not st.stopped_early):
            st.stopped_at_deadline = True
        if on_epoch:
            on_epoch(st.epoch, st)
        if checkpoint and (st.epoch % s.checkpoint_every == 0 or st.epoch == s.epochs or st.stopped_early
                           or st.stopped_at_deadline):
            checkpoint(_snapshot(st, model, opt, gen, avg))
    if st.best_state is not None:
        model.load_state_dict(st.best_state)
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise TrainingDiverged(f"the trained weights are not finite after epoch {st.epoch}; {_advice(data)}")
    return st


def _validation_loss(model, parts: list[Part], resident: Loaded | None, fallback: float) -> float:
    """Mean squared error over every part's validation windows (`fallback` when there are none)."""
    if resident is not None:
        return mse_on(model, resident.data, resident.val_idx) if len(resident.val_idx) else fallback
    counts = [p.n_val for p in parts]
    if not sum(counts):
        return fallback
    total = 0.0
    for p, c in zip(parts, counts):
        if c:
            loaded = p.load()
            total += mse_on(model, loaded.data, loaded.val_idx) * c
    return total / sum(counts)


def thinned(idx: torch.Tensor, cap: int) -> torch.Tensor:
    """At most `cap` of the window starts `idx`, evenly spaced over them (first and last kept), in
    order; all of them for cap 0 or when there are no more: (min(n, cap),). Early stopping on a
    large file then costs a fixed amount per epoch, and still sees every part of the range."""
    n = len(idx)
    if not cap or n <= cap:
        return idx
    pick = torch.linspace(0, n - 1, cap, device=idx.device).round().long()
    return idx[pick]


def epoch_origins(train_idx: torch.Tensor, gen: torch.Generator,
                  series: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The window starts of one epoch, (len(train_idx),) on train_idx's device.

    Without `series`: a permutation of train_idx (every window once). With series = (starts,
    counts) per series: for each draw, a series uniformly, then one of its windows uniformly,
    so a long series does not outweigh many short ones in a global model.
    """
    n, dev = len(train_idx), train_idx.device
    if series is None:
        return train_idx[torch.randperm(n, device=dev, generator=gen)]
    starts, counts = series
    pick = torch.randint(len(starts), (n,), device=dev, generator=gen)
    offset = (torch.rand(n, device=dev, generator=gen, dtype=torch.float64) * counts[pick]).long()
    return starts[pick] + torch.minimum(offset, counts[pick] - 1)


def series_ranges(split: Split, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(first train origin, number of train origins) of each series with any, or None for fewer than two."""
    parts = [(s.train[0], s.count("train")) for s in split.series if s.count("train") > 0]
    if len(parts) < 2:
        return None
    starts, counts = zip(*parts)
    return (torch.tensor(starts, dtype=torch.long, device=device), torch.tensor(counts, dtype=torch.long, device=device))


def _advice(data: SeriesData) -> str:
    """What to try after a divergence: scaling when the network sees huge or non-finite values, else the lr."""
    v = data.values
    if not bool(torch.isfinite(v).all()):
        return "the series holds values that are not finite"
    top = float(v.abs().max()) if v.numel() else 0.0
    if not data.window_norm and top > 1e4:
        return f"the network sees values up to {top:.3g}: use --normalize standard or window"
    return "try a lower --lr"


_SEEDING = threading.Lock()  # torch's global RNG is one per process


def seeded_model(spec: NetworkSpec, seed: int, device: torch.device) -> Forecaster:
    """build_model(spec) on `device`, its initial weights drawn from torch's global RNG seeded
    with `seed`, as one step: models built side by side in threads of one process (sweep or
    search members on the local runner) cannot interleave their draws, so each gets the weights
    it would get alone (and on a Dask worker)."""
    with _SEEDING:
        torch.manual_seed(seed)
        return build_model(spec).to(device)


def train_model(
    values: np.ndarray, split: Split, spec: NetworkSpec, settings: FitSettings, device: torch.device, **hooks
) -> tuple[Forecaster, FitState]:
    """Seed, build and fit a network on a split's train origins, stopping early on its val origins.

    values: (n_total,) every series end to end; the targets are spec.n_outputs wide. With several
    series the model is a global one: epochs sample series, then windows (`epoch_origins`).
    `hooks`: on_epoch, checkpoint, resume (see `fit`).
    """
    model = seeded_model(spec, settings.seed, device)
    data = series_data(values, split, device, horizon=spec.n_outputs)
    train_idx = torch.as_tensor(split.origins("train"), device=device)
    val_idx = torch.as_tensor(split.origins("val"), device=device)
    st = fit(model, data, train_idx, val_idx, settings, series=series_ranges(split, device), **hooks)
    return model, st


def train_buckets(
    buckets: Sequence[tuple[Callable[[], np.ndarray], Split | Callable[[], Split]]], spec: NetworkSpec,
    settings: FitSettings, device: torch.device, **hooks,
) -> tuple[Forecaster, FitState]:
    """A global model over buckets of series, streamed: (load values (n_bucket,), its Split, or a
    function that reads it) each.

    One bucket is `train_model` itself; several are visited one at a time every epoch
    (`fit_parts`), so only one bucket's values, split and origins are in memory at once (a split
    given as a function is read again at each visit).
    """
    if len(buckets) == 1:
        load, split = buckets[0]
        return train_model(load(), split() if callable(split) else split, spec, settings, device, **hooks)
    model = seeded_model(spec, settings.seed, device)

    def part(load: Callable[[], np.ndarray], split: Split | Callable[[], Split]) -> Part:
        read = split if callable(split) else (lambda: split)

        def loaded() -> Loaded:
            sp = read()
            return Loaded(series_data(load(), sp, device, horizon=spec.n_outputs),
                          torch.as_tensor(sp.origins("train"), device=device),
                          thinned(torch.as_tensor(sp.origins("val"), device=device), share(sp)),
                          series_ranges(sp, device))

        first = read()
        return Part(loaded, first.count("train"), len(thinned(torch.arange(first.count("val")), share(first))), device)

    total_val = sum((sp() if callable(sp) else sp).count("val") for _, sp in buckets) if settings.val_windows else 0

    def share(sp: Split) -> int:  # a bucket's part of settings.val_windows, in proportion to its windows
        if not settings.val_windows or not total_val:
            return 0
        return max(1, math.ceil(settings.val_windows * sp.count("val") / total_val))

    st = fit_parts(model, [part(load, split) for load, split in buckets], settings, **hooks)
    return model, st


def network_for(split: Split, model: Mapping[str, Any]) -> NetworkSpec:
    """The network of model settings (cell, hidden_size, ..., strategy, skip) on a split: head width
    from its horizon, skip lag from its seasons (the longest its window holds)."""
    return network_spec(seq_length=split.seq_length, horizon=split.horizon, season=split.season_length,
                        seasons=tuple(split.seasons), **model)


def retrain(values: np.ndarray, split: Split, model: Mapping[str, Any], train: Mapping[str, Any],
            device: torch.device) -> Forecaster:
    """A fresh network trained on `split` from model and training settings given as mappings
    (a resolved config section's fields); returned on the CPU in eval mode."""
    net, _ = train_model(values, split, network_for(split, model), pick(FitSettings, train), device)
    return net.cpu().eval()


def _choose_step(model, opt, data, batch_size, use_graph, avg: WeightAverage | None = None):
    after = avg.update if avg else (lambda: None)
    if not use_graph:
        return plain_step(model, opt, data, after)
    try:
        return graph_step(model, opt, data, batch_size, after, list(avg.model.parameters()) if avg else [])
    except Exception as exc:  # capture is impossible on some setups: say so once, carry on
        log.warning("CUDA graph capture failed (%s); using the plain training loop", exc)
        return plain_step(model, opt, data, after)


def _track(st: FitState, model, opt, train_loss: float, val_loss: float, s: FitSettings) -> None:
    """Record the epoch; keep the best weights; decay the lr on a plateau; decide to stop."""
    st.history["train_loss"].append(train_loss)
    st.history["val_loss"].append(val_loss)
    if val_loss < st.best_val or st.best_state is None:  # keep the lowest-loss weights, always
        st.best_val, st.best_epoch = val_loss, st.epoch
        st.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if val_loss < st.ref_val * (1 - s.min_delta):  # progress that resets the patience
        st.ref_val, st.bad_epochs = val_loss, 0
    else:
        st.bad_epochs += 1
        if s.patience and st.bad_epochs >= s.patience:
            st.stopped_early = True
        elif s.lr_patience and st.bad_epochs % s.lr_patience == 0:
            _scale_lr(opt, s.lr_factor)


def _scale_lr(opt: torch.optim.Optimizer, factor: float) -> None:
    """Decay the learning rate in place (a tensor lr keeps a captured CUDA graph valid)."""
    for g in opt.param_groups:
        if torch.is_tensor(g["lr"]):
            g["lr"].mul_(factor)
        else:
            g["lr"] *= factor


def _snapshot(st: FitState, model, opt, gen, avg: WeightAverage | None = None) -> dict:
    """A deep copy of everything `_restore` needs (safe to keep in memory or torch.save)."""
    return copy.deepcopy({
        "state": dict(vars(st)),
        "model": model.state_dict(),
        "average": avg.model.state_dict() if avg else {},
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    })


def _restore(blob: dict, model, opt, gen, avg: WeightAverage | None = None) -> FitState:
    model.load_state_dict(blob["model"])
    if avg is not None:
        avg.model.load_state_dict(blob["average"])
    opt.load_state_dict(blob["optimizer"])
    gen.set_state(blob["generator"])
    torch.set_rng_state(blob["torch_rng"])
    if blob["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["cuda_rng"])
    return FitState(**copy.deepcopy(blob["state"]))
