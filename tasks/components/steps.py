"""One optimisation step, eager or captured in a CUDA graph, and the weight average it updates."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from tasks.components.series_data import SeriesData


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
    stopping can trust a plateau, and slightly better weights at the same epoch
    (Polyak & Juditsky 1992; the EMA form as in Izmailov et al. 2018, "Averaging Weights").
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
