"""One optimisation step, eager or captured in a CUDA graph, and the weight average it updates."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch.optim.adam import adam as adam_update  # the functional Adam (FusedAdam)

from tasks.components.series_data import SeriesData


def uses_torch_optim(device_type: str) -> bool:
    """Does training on this kind of device step a torch.optim optimiser (whose first use imports
    torch._dynamo and builds ASTs: tasks.runtime.runners.warm_up)? Everywhere but the CPU."""
    return device_type != "cpu"


def make_optimizer(model: torch.nn.Module, lr: float, device: torch.device, capturable: bool = False):
    """Adam, fused where the device supports it (cpu, cuda), else foreach. On the CPU it is
    `FusedAdam` (the same kernel, the same bits, without torch.optim.Optimizer's import cost; a
    CUDA graph's capturable Adam is CUDA's only)."""
    if not uses_torch_optim(device.type):
        return FusedAdam(model.parameters(), lr=lr)
    if device.type in ("cpu", "cuda"):
        # a tensor lr can be decayed without re-capturing a CUDA graph
        lr_ = torch.tensor(lr, device=device) if capturable else lr
        return torch.optim.Adam(model.parameters(), lr=lr_, fused=True, capturable=capturable)
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


class FusedAdam:
    """Adam with torch's defaults (betas 0.9, 0.999, eps 1e-8, no weight decay), stepped by
    torch's fused kernel through the functional `torch.optim.adam.adam(..., fused=True)`: the
    same update, to the bit, as `torch.optim.Adam(params, lr, fused=True)`.

    Why not torch.optim.Adam itself: constructing any torch.optim.Optimizer imports
    torch._dynamo (its add_param_group is wrapped by torch._disable_dynamo), 1.2-1.4 s of CPU on
    the reference machine, in every process that trains: on a short file that is a tenth of the
    whole run. The functional form imports nothing.

    What the training loop uses of an optimiser, nothing more: `param_groups[0]["lr"]` (decayed
    in place on a plateau), `zero_grad`, `step`, and `state_dict` / `load_state_dict` in
    torch.optim.Adam's format, so a checkpoint written by either loads in the other.
    Parameters without a gradient are skipped, as torch.optim.Adam does.
    """

    betas = (0.9, 0.999)
    eps = 1e-8

    def __init__(self, params, lr: float) -> None:
        self.params = list(params)
        self.param_groups = [{"lr": lr, "betas": self.betas, "eps": self.eps, "weight_decay": 0, "amsgrad": False,
                              "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
                              "fused": True, "decoupled_weight_decay": False,
                              "params": list(range(len(self.params)))}]
        self.state: dict[int, dict[str, torch.Tensor]] = {}  # by position in params

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop every parameter's gradient (set_to_none only: nothing here reads a zero grad)."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient; its moments start at zero."""
        with_grad = [i for i, p in enumerate(self.params) if p.grad is not None]
        for i in with_grad:
            if i not in self.state:
                p = self.params[i]
                self.state[i] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                                 "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                 "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        states = [self.state[i] for i in with_grad]
        adam_update([self.params[i] for i in with_grad], [self.params[i].grad for i in with_grad],
                    [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [], [s["step"] for s in states],
                    fused=True, amsgrad=False, beta1=self.betas[0], beta2=self.betas[1],
                    lr=self.param_groups[0]["lr"], weight_decay=0.0, eps=self.eps, maximize=False)

    def state_dict(self) -> dict:
        """{"state": {position: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...]}, as torch's."""
        return {"state": {i: dict(s) for i, s in self.state.items()},
                "param_groups": [dict(g) for g in self.param_groups]}

    def load_state_dict(self, blob: dict) -> None:
        """Restore from `state_dict` (this class's or torch.optim.Adam's of the same parameters).

        Raises ValueError when the blob holds another number of parameters."""
        group = blob["param_groups"][0]
        if len(blob["param_groups"]) != 1 or len(group["params"]) != len(self.params):
            raise ValueError(f"optimiser state for {len(group['params'])} parameter(s) in "
                             f"{len(blob['param_groups'])} group(s); this model has {len(self.params)} in one")
        self.param_groups[0]["lr"] = float(group["lr"])
        position = {pid: k for k, pid in enumerate(group["params"])}
        self.state = {position[pid]: {name: v.detach().to(self.params[position[pid]].device, copy=True)
                                      for name, v in s.items()} for pid, s in blob["state"].items()}


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
