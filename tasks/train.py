"""Stage 3: train the forecaster with a lean loop, early stopping and resumable checkpoints.

The loop keeps everything on the device: the series, the window view, the shuffled indices and
the running loss. The host synchronises once per epoch (validation loss), never per step. On
CUDA the whole step (gather, forward, backward, Adam) can be captured in one CUDA graph.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from prefect import task

from tasks import store
from tasks.caching import STAGE_CACHE_POLICY, StagePlan
from tasks.config import ModelConfig, TrainConfig, resolve_auto
from tasks.model import Forecaster, resolve_device
from tasks.retry import RETRY_OPTIONS
from tasks.scaling import from_window, to_window, window_stats
from tasks.windowing import SPLIT_FILE, VALUES_FILE, ranges_to_index

log = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
HISTORY_FILE = "history.json"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


# --------------------------------------------------------------------------- data on the device


@dataclass
class SeriesData:
    """The (normalised) series on the device and its window view.

    values:  (n_total,) float32
    windows: (n_total - L + 1, L) view of `values` (torch unfold, no copy)
    window_norm: scale every window by its own statistics (tasks.scaling; normalize="window")
    """

    values: torch.Tensor
    seq_length: int
    horizon: int = 1
    window_norm: bool = False
    windows: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.windows = self.values.unfold(0, self.seq_length, 1)
        self._lead = torch.arange(self.horizon, device=self.values.device)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows starting at `idx` (b,) -> inputs (b, L, 1), targets (b, horizon), in model space."""
        x = self.windows[idx]
        y = self.values[idx[:, None] + self.seq_length + self._lead]
        if self.window_norm:
            loc, scale = window_stats(x)
            x, y = to_window(x, loc, scale), to_window(y, loc, scale)
        return x.unsqueeze(-1), y

    def forecast(self, model: torch.nn.Module, idx: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Forecasts of `steps` (default: horizon) values after windows `idx`, window scaling undone: (b, steps).

        A one-step model is fed its own forecasts back (recursive); the window statistics come
        from the input window only and are reused for every fed-back step.
        """
        x = self.windows[idx]
        steps = steps or self.horizon
        if not self.window_norm:
            return roll_forward(model, x, steps)
        loc, scale = window_stats(x)
        return from_window(roll_forward(model, to_window(x, loc, scale), steps), loc, scale)


def roll_forward(model: torch.nn.Module, x: torch.Tensor, steps: int) -> torch.Tensor:
    """x (b, L) -> (b, steps): one call when the head has `steps` outputs, else one-step calls fed back."""
    out = model(x.unsqueeze(-1))
    if out.shape[1] >= steps:
        return out[:, :steps]
    if out.shape[1] != 1:
        raise ValueError(f"a model with {out.shape[1]} outputs cannot forecast {steps} steps")
    outs = [out]
    for _ in range(steps - 1):
        x = torch.cat([x[:, 1:], out], dim=1)  # slide the window over its own forecast
        out = model(x.unsqueeze(-1))
        outs.append(out)
    return torch.cat(outs, dim=1)


def series_data(values: np.ndarray, split: dict, device: torch.device | str = "cpu", horizon: int = 1) -> SeriesData:
    """The series of a window entry, globally scaled, on `device`, with its window scaling."""
    return SeriesData(
        torch.as_tensor(normalised_values(values, split), dtype=torch.float32, device=device),
        split["seq_length"], horizon=horizon, window_norm=split.get("normalize") == "window",
    )


def normalised_values(values: np.ndarray, split: dict) -> np.ndarray:
    """Apply each series' fitted scaler to its own points: (n_total,) float64."""
    out = values.astype(np.float64, copy=True)
    for s, sc in zip(split["series"], split["scaler"]):
        a = s["offset"]
        out[a : a + s["length"]] = (out[a : a + s["length"]] - sc["mean"]) / sc["std"]
    return out


@torch.inference_mode()
def predict(
    model: torch.nn.Module, data: SeriesData, idx: torch.Tensor, chunk: int = 65_536, *,
    series_units: bool = False, steps: int | None = None,
) -> torch.Tensor:
    """Model outputs for windows starting at `idx`, in bounded chunks: (n, horizon).

    In model space by default (what the loss compares); `series_units` undoes the window scaling
    and forecasts `steps` values (recursively for a one-step model).
    """
    was_training = model.training
    model.eval()
    chunk = bounded_chunk(model, data, chunk)
    one = (lambda i: data.forecast(model, i, steps)) if series_units else (lambda i: model(data.batch(i)[0]))
    outs = [one(idx[i : i + chunk]) for i in range(0, len(idx), chunk)]
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0, steps or data.horizon, device=data.values.device)


@torch.inference_mode()
def mse_on(model: torch.nn.Module, data: SeriesData, idx: torch.Tensor, chunk: int = 65_536) -> float:
    """Mean squared error over windows `idx` (one host sync)."""
    if len(idx) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    chunk = bounded_chunk(model, data, chunk)
    total = torch.zeros((), dtype=torch.float64, device=data.values.device)
    for i in range(0, len(idx), chunk):  # never all windows (or all targets) at once
        x, y = data.batch(idx[i : i + chunk])
        total += ((model(x) - y) ** 2).sum(dtype=torch.float64)
    model.train(was_training)
    return float(total.item()) / (len(idx) * data.horizon)


def bounded_chunk(model: torch.nn.Module, data: SeriesData, chunk: int) -> int:
    """At most `chunk` windows, and few enough that one inference chunk stays near 64 MB on CPU
    (1 GB on a GPU): the recurrent layers keep about 8 floats per step, unit and window."""
    rnn = getattr(model, "rnn", None)
    units = rnn.hidden_size * rnn.num_layers if rnn is not None else 64
    budget = (1 << 30) if data.values.device.type == "cuda" else (64 << 20)
    return max(1, min(chunk, budget // (data.seq_length * units * 32)))


# --------------------------------------------------------------------------- steps


def make_optimizer(model: torch.nn.Module, lr: float, device: torch.device, capturable: bool = False):
    """Adam, fused where the device supports it (cpu, cuda), else foreach."""
    if device.type in ("cpu", "cuda"):
        # a tensor lr can be decayed without re-capturing a CUDA graph
        lr_ = torch.tensor(lr, device=device) if capturable else lr
        return torch.optim.Adam(model.parameters(), lr=lr_, fused=True, capturable=capturable)
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


class WeightAverage:
    """An exponential moving average of a model's weights (what is validated and kept).

    Averaging out Adam's step-to-step jitter gives a smoother validation curve, so early
    stopping can trust a plateau, and slightly better weights at the same epoch.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self._src = list(model.parameters())
        self._dst = list(self.model.parameters())

    @torch.no_grad()
    def update(self) -> None:
        """avg += (1 - decay) * (w - avg), for every parameter at once (graph-capturable)."""
        torch._foreach_lerp_(self._dst, self._src, 1.0 - self.decay)


def plain_step(model, opt, data: SeriesData, after: Callable[[], None] = lambda: None):
    """One eager training step on windows `idx`; returns the batch loss (on the device)."""

    def step(idx: torch.Tensor) -> torch.Tensor:
        x, y = data.batch(idx)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        after()
        return loss.detach()

    return step


def graph_step(model, opt, data: SeriesData, batch_size: int, after: Callable[[], None] = lambda: None,
               extra: list[torch.Tensor] = ()) -> Callable[[torch.Tensor], torch.Tensor]:
    """The whole step captured in one CUDA graph; a short last batch is padded with weight 0.

    Needs an Adam built with capturable=True. Warm-up steps run on a side stream and are then
    undone (weights and `extra` tensors copied back, optimiser state zeroed), so the first replay
    is the first step. `after` (the weight average's update) is captured after the Adam step.
    """
    dev = data.values.device
    static_idx = torch.zeros(batch_size, dtype=torch.long, device=dev)
    static_w = torch.ones(batch_size, device=dev)

    def loss_fn() -> torch.Tensor:
        x, y = data.batch(static_idx)
        err = ((model(x) - y) ** 2).mean(dim=1)  # (batch,)
        return (err * static_w).sum() / static_w.sum()

    live = [*model.parameters(), *extra]
    saved = [p.detach().clone() for p in live]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            opt.zero_grad(set_to_none=True)
            loss_fn().backward()
            opt.step()
            after()
    torch.cuda.current_stream().wait_stream(side)
    _undo_warmup(live, opt, saved)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = loss_fn()
        static_loss.backward()
        opt.step()
        after()

    def step(idx: torch.Tensor) -> torch.Tensor:
        b = len(idx)
        static_idx[:b].copy_(idx)
        if b < batch_size:
            static_idx[b:].fill_(0)
            static_w[b:].zero_()
        graph.replay()
        if b < batch_size:
            static_w.fill_(1.0)
        return static_loss.detach().clone()

    return step


@torch.no_grad()
def _undo_warmup(live: list[torch.Tensor], opt: torch.optim.Optimizer, saved: list[torch.Tensor]) -> None:
    for p, s in zip(live, saved):
        p.copy_(s)
    for state in opt.state.values():
        for v in state.values():
            if torch.is_tensor(v):
                v.zero_()


# --------------------------------------------------------------------------- the loop


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


def fit(
    model: Forecaster,
    data: SeriesData,
    train_idx: torch.Tensor,
    val_idx: torch.Tensor,
    cfg: TrainConfig,
    *,
    on_epoch: Callable[[int, FitState], None] | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    resume: dict | None = None,
) -> FitState:
    """Train with shuffled mini-batches and early stopping on `val_idx`; restore the best weights.

    train_idx, val_idx: (n,) window starts on the data's device. `checkpoint(blob)` is called
    every cfg.checkpoint_every epochs and at the end; `resume` is such a blob.
    """
    cfg = resolve_auto(cfg, None)  # train_model resolved it for the data source; direct callers get the tutorial's
    dev = data.values.device
    use_graph = cfg.cuda_graphs and dev.type == "cuda"
    opt = make_optimizer(model, cfg.lr, dev, capturable=use_graph)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed)
    avg = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    kept = avg.model if avg else model  # the weights that are validated, checkpointed as best, returned
    st = FitState()
    if resume is not None:
        st = _restore(resume, model, opt, gen, avg)
        log.info("resuming from the checkpoint at epoch %d", st.epoch)
    step = _choose_step(model, opt, data, cfg.batch_size, use_graph, avg)
    n, bs = len(train_idx), cfg.batch_size
    while st.epoch < cfg.epochs and not st.stopped_early:
        model.train()
        perm = train_idx[torch.randperm(n, device=dev, generator=gen)]
        total = torch.zeros((), device=dev)
        for s in range(0, n, bs):
            idx = perm[s : s + bs]
            total += step(idx) * len(idx)
        st.epoch += 1
        train_loss = float(total.item()) / n  # the one sync per epoch
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} at epoch {st.epoch}; try a lower --lr")
        val_loss = mse_on(kept, data, val_idx) if len(val_idx) else train_loss
        _track(st, kept, opt, train_loss, val_loss, cfg)
        if on_epoch:
            on_epoch(st.epoch, st)
        if checkpoint and (st.epoch % cfg.checkpoint_every == 0 or st.epoch == cfg.epochs or st.stopped_early):
            checkpoint(_snapshot(st, model, opt, gen, avg))
    if st.best_state is not None:
        model.load_state_dict(st.best_state)
    return st


def _choose_step(model, opt, data, batch_size, use_graph, avg: WeightAverage | None = None):
    after = avg.update if avg else (lambda: None)
    if not use_graph:
        return plain_step(model, opt, data, after)
    try:
        return graph_step(model, opt, data, batch_size, after, list(avg.model.parameters()) if avg else [])
    except Exception as exc:  # capture is impossible on some setups: say so once, carry on
        log.warning("CUDA graph capture failed (%s); using the plain training loop", exc)
        return plain_step(model, opt, data, after)


def _track(st: FitState, model, opt, train_loss: float, val_loss: float, cfg: TrainConfig) -> None:
    """Record the epoch; keep the best weights; decay the lr on a plateau; decide to stop."""
    st.history["train_loss"].append(train_loss)
    st.history["val_loss"].append(val_loss)
    if val_loss < st.best_val or st.best_state is None:  # keep the lowest-loss weights, always
        st.best_val, st.best_epoch = val_loss, st.epoch
        st.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if val_loss < st.ref_val * (1 - cfg.min_delta):  # progress that resets the patience
        st.ref_val, st.bad_epochs = val_loss, 0
    else:
        st.bad_epochs += 1
        if cfg.patience and st.bad_epochs >= cfg.patience:
            st.stopped_early = True
        elif cfg.lr_patience and st.bad_epochs % cfg.lr_patience == 0:
            _scale_lr(opt, cfg.lr_factor)


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


# --------------------------------------------------------------------------- the task


def checkpoint_path(root: str, key: str) -> Path:
    """Where the resumable checkpoint of the train entry `key` lives (always under `root`)."""
    return store.inside(root, Path("checkpoints") / f"train-{key}" / "checkpoint.pt", field="train key")


def load_checkpoint(path: Path) -> dict | None:
    """A checkpoint blob, or None if there is none or it cannot be read (then start afresh)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file is not worth a crash: train from scratch
        log.warning("ignoring unreadable checkpoint %s (%s)", path, exc)
        return None


def save_checkpoint(path: Path, blob: dict) -> None:
    """torch.save through a temp file and a rename, so a kill never leaves half a checkpoint."""
    with store.atomic_path(path) as tmp:
        torch.save(blob, tmp)


def train_model(
    values: np.ndarray, split: dict, model_cfg: ModelConfig, cfg: TrainConfig, device: torch.device, **hooks
) -> tuple[Forecaster, FitState]:
    """Seed, build and fit a model on one series file's windows (pure apart from `hooks`).

    direct: the head outputs split["horizon"] values; recursive: a one-step model (horizon 1).
    """
    cfg = resolve_auto(cfg, split.get("source"))
    torch.manual_seed(cfg.seed)
    spec = model_spec(model_cfg, split)
    model = Forecaster(**spec).to(device)
    data = series_data(values, split, device, horizon=spec["horizon"])
    train_idx = torch.as_tensor(ranges_to_index(split, "train"), device=device)
    val_idx = torch.as_tensor(ranges_to_index(split, "val"), device=device)
    st = fit(model, data, train_idx, val_idx, cfg, **hooks)
    return model, st


def model_spec(model_cfg: ModelConfig, split: dict) -> dict:
    """The Forecaster's arguments (stored in model.pt): head size and skip lag resolved for this split.

    The head has split["horizon"] outputs when direct, else 1; skip "auto" is none for generated
    data and seasonal for files; seasonal falls back to naive (lag 1) without a season that fits the window.
    """
    model_cfg = resolve_auto(model_cfg, split.get("source"))
    spec = model_cfg.model_dump(exclude={"strategy", "skip"})
    spec["horizon"] = split.get("horizon", 1) if model_cfg.strategy == "direct" else 1
    season = split.get("season_length") or 0
    lag = {"none": 0, "naive": 1, "seasonal": season if 0 < season <= split["seq_length"] else 1}[model_cfg.skip]
    return {**spec, "skip_lag": lag} if lag else spec


def train_env(cfg: TrainConfig) -> dict[str, str]:
    """What besides config and code changes a trained model: torch version and device kind."""
    return {"torch": torch.__version__.split("+")[0], "device": resolve_device(cfg.device).type}


@task(name="train", cache_policy=STAGE_CACHE_POLICY, **RETRY_OPTIONS)
def train_task(plan: StagePlan, model_cfg: ModelConfig, cfg: TrainConfig, window: dict, root: str) -> dict:
    """Train (resuming from a checkpoint if one exists), write model.pt + history.json."""

    def compute(w: store.EntryWriter) -> dict:
        device = resolve_device(cfg.device)
        torch.set_num_threads(cfg.threads)
        win = store.StageRef(**window)
        values, split = np.load(win.file(VALUES_FILE)), store.read_json(win.file(SPLIT_FILE))
        ckpt = checkpoint_path(root, plan.key)
        progress = _progress_reporter(resolve_auto(cfg, split.get("source")))
        model, st = train_model(
            values, split, model_cfg, cfg, device,
            on_epoch=progress, checkpoint=lambda b: save_checkpoint(ckpt, b), resume=load_checkpoint(ckpt),
        )
        meta = {
            "device": device.type, "threads": cfg.threads, "epochs_run": st.epoch, "best_epoch": st.best_epoch,
            "stopped_early": st.stopped_early, "best_val_loss": st.best_val,
            "cuda_graphs": bool(cfg.cuda_graphs and device.type == "cuda"),
        }
        torch.save(
            {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
             "model": model_spec(model_cfg, split), "seq_length": split["seq_length"],
             "horizon": split.get("horizon", 1), "strategy": model_cfg.strategy,
             "scaler": split["scaler"], "normalize": split.get("normalize", "none"), **meta},
            w.path(MODEL_FILE),
        )
        store.write_json(w.path(HISTORY_FILE), {**st.history, **meta})
        log.info("train: %d epochs on %s (best %d, val loss %.3g)", st.epoch, device.type, st.best_epoch, st.best_val)
        return meta

    return store.build_entry(plan.base, plan.stage, plan.key, plan.key_inputs, compute, force=plan.forced).model_dump()


def _progress_reporter(cfg: TrainConfig) -> Callable[[int, FitState], None]:
    """Log every cfg.log_every epochs and keep a Prefect progress artifact up to date."""
    from tasks.ui import ProgressArtifact

    bar = ProgressArtifact("rnn-training-progress", f"Training up to {cfg.epochs} epochs")

    def on_epoch(epoch: int, st: FitState) -> None:
        if epoch % cfg.log_every == 0 or epoch == 1 or st.stopped_early or epoch == cfg.epochs:
            log.info(
                "epoch %d/%d  train %.3e  val %.3e%s", epoch, cfg.epochs,
                st.history["train_loss"][-1], st.history["val_loss"][-1],
                "  (early stop)" if st.stopped_early else "",
            )
        bar.update(100.0 if st.stopped_early else 100.0 * epoch / cfg.epochs)

    return on_epoch
