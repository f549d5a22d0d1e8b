"""4. CUDA: microseconds per training step on a GPU, and whether the CUDA graph computes the same losses.

Per case (the default task at batch 32; a 1e6-point series at batch 1024): the tutorial's loop
on the GPU (CPU DataLoader, .to(device), loss.item() every step); tasks.components.fit.fit with
the plain loop and with a CUDA graph (median epoch after the first / steps per epoch, so its
validation and sync are included; a failed capture is flagged); and the largest relative
difference of the first 20 losses of plain_step and graph_step from the same weights on the
same batches. Skipped where torch.cuda.is_available() is False.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.sections.common import (GPU, L, TutorialRNN, fmt_x, print_lines, print_table, project_split,
                                        tutorial_epoch, tutorial_windows)
from tasks.components import fit as fit_module
from tasks.components.fit import fit
from tasks.components.network import build_model
from tasks.components.series_data import SeriesData
from tasks.components.specs import FitSettings, NetworkSpec
from tasks.components.steps import graph_step, make_optimizer, plain_step
from tasks.components.synthetic import sine_values


def cuda_setup(values, split):
    """Seeded Forecaster, the series and its train/val window starts, on the GPU."""
    torch.manual_seed(42)
    data = SeriesData(torch.as_tensor(values, dtype=torch.float32, device=GPU), L)
    idx = [torch.as_tensor(split.origins(part), device=GPU) for part in ("train", "val")]
    return build_model(NetworkSpec()).to(GPU), data, *idx


def cuda_fit_us(values, split, bs: int, epochs: int, graph: bool) -> tuple[float, bool]:
    """µs per step of fit (plain loop or CUDA graph, validation and weight average included):
    median epoch after the first (warm-up, capture) / steps per epoch; and whether capture fell back."""
    model, data, train_idx, val_idx = cuda_setup(values, split)
    warned = []
    handler = logging.Handler()
    handler.emit = lambda rec: warned.append(rec.getMessage())
    logger = logging.getLogger(fit_module.__name__)  # where fit says "CUDA graph capture failed"
    logger.addHandler(handler)
    stamps = [time.perf_counter()]
    settings = FitSettings(epochs=epochs, batch_size=bs, patience=0, cuda_graphs=graph)
    try:
        fit(model, data, train_idx, val_idx, settings, on_epoch=lambda e, st: stamps.append(time.perf_counter()))
    finally:
        logger.removeHandler(handler)
    per_epoch = float(np.median(np.diff(stamps)[1:]))
    return per_epoch / -(-len(train_idx) // bs) * 1e6, any("capture failed" in m for m in warned)


def cuda_losses(values, split, bs: int, n: int, graph: bool) -> torch.Tensor:
    """The first n losses of plain_step or graph_step on the same seeded batches."""
    model, data, train_idx, _ = cuda_setup(values, split)
    gen = torch.Generator(device=train_idx.device).manual_seed(0)
    batches = train_idx[torch.randperm(len(train_idx), device=train_idx.device, generator=gen)][: n * bs].view(n, bs)
    opt = make_optimizer(model, 1e-3, train_idx.device, capturable=graph)
    step = graph_step(model, opt, data, bs) if graph else plain_step(model, opt, data)
    return torch.stack([step(b) for b in batches]).cpu()


def cuda_tutorial(values, bs: int, steps: int) -> float:
    """µs per step of the tutorial's loop on the GPU (CPU DataLoader, .to(device), loss.item())."""
    torch.manual_seed(42)
    X, y = tutorial_windows(values, L)
    n_train = int(len(X) * 0.8)
    loader = DataLoader(TensorDataset(X[:n_train].unsqueeze(-1), y[:n_train].unsqueeze(-1)), batch_size=bs, shuffle=True)
    model = TutorialRNN().to(GPU)
    crit, opt = nn.MSELoss(), torch.optim.Adam(model.parameters(), lr=1e-3)
    tutorial_epoch(model, loader, crit, opt, GPU, max_steps=5)  # warm-up: cuDNN and allocator
    done, t = 0, time.perf_counter()
    while done < steps:
        done += tutorial_epoch(model, loader, crit, opt, GPU, max_steps=steps - done)
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / done * 1e6


def run(quick: bool) -> dict:
    if not torch.cuda.is_available():
        print_lines("4. CUDA", ["skipped: torch.cuda.is_available() is False (no GPU here)"])
        return {"skipped": "no CUDA device"}
    res = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cases": []}
    rows, check = [], 20
    cases = (("default task, batch 32", 1020, 32, 20 if quick else 100), ("1e6 points, batch 1024", 10**6, 1024, 2 if quick else 5))
    for label, n, bs, epochs in cases:
        values = sine_values(n_points=n)
        split = project_split(values)
        tut = cuda_tutorial(values, bs, 200 if quick else 2000)
        plain, _ = cuda_fit_us(values, split, bs, epochs, graph=False)
        graph, fell_back = cuda_fit_us(values, split, bs, epochs, graph=True)
        lp, lg = cuda_losses(values, split, bs, check, False), cuda_losses(values, split, bs, check, True)
        diff = float(((lg - lp).abs() / lp.abs().clamp_min(1e-12)).max())
        res["cases"].append({"case": label, "tutorial_us": tut, "plain_us": plain, "graph_us": graph, "epochs": epochs,
                             "graph_fell_back": fell_back, "loss_max_rel_diff": diff, "losses_match": diff <= 1e-3})
        rows += [(f"{label}: fit, plain loop", f"{plain:.0f} µs", f"{tut:.0f} µs", fmt_x(tut / plain)),
                 (f"{label}: fit, CUDA graph" + (" (CAPTURE FAILED: plain)" if fell_back else ""),
                  f"{graph:.0f} µs", f"{tut:.0f} µs", fmt_x(tut / graph)),
                 (f"{label}: graph vs plain step, first {check} losses", f"max rel diff {diff:.1e}", "",
                  "ok" if diff <= 1e-3 else "MISMATCH")]
    print_table(f"4. CUDA, per training step ({res['gpu']})", ("ours", "tutorial"), rows, [
        "ours: tasks.components.fit.fit (patience 0), median epoch after the first / steps per epoch, so its per-epoch "
        "validation and sync are included; tutorial: 200 (quick) / 2000 steps after 5 warm-up steps",
        "loss check: tasks.components.steps.plain_step vs graph_step from the same weights on the same batches"])
    return res
