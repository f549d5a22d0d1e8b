"""2. CPU training on the default task (sine, 1020 points, nn.RNN 64, batch 32): ours vs the tutorial.

(a) time per epoch at identical hyperparameters, inputs and initial weights: the tutorial at each
    thread count and tasks.components.fit.fit (patience 0), in alternating blocks of epochs so
    that all see the same load on a shared machine; median of the pooled epoch times.
(b) whole runs: the tutorial for its 100 epochs; train_model with the FitSettings() defaults
    (early stopping, best weights). Training time, test MSE at the end, and the first epoch
    (and training seconds) at which the test MSE reaches 1e-5; scored outside the timed region.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.sections.common import (DEFAULT_THREADS, TRAIN_THREADS, L, TutorialRNN, fmt_s, fmt_x, holdout_mse,
                                        print_table, project_split, ratio, tutorial_epoch, tutorial_windows)
from tasks.components.fit import fit, train_model
from tasks.components.network import build_model
from tasks.components.series_data import SeriesData
from tasks.components.specs import FitSettings, NetworkSpec
from tasks.components.synthetic import sine_values

TITLE = "2. CPU training, default task (sine, 1020 points, nn.RNN 64, batch 32)"


def run_tutorial(values, split, epochs: int, threads: int, score: bool = True) -> dict:
    """The tutorial's run: 80/20 split, DataLoader(shuffle), Adam 1e-3, MSELoss; with `score`, the
    test MSE after every epoch, outside the timed region."""
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    X, y = tutorial_windows(values, L)
    X, y = X.unsqueeze(-1), y.unsqueeze(-1)  # (n, 20, 1), (n, 1)
    n_train = int(len(X) * 0.8)
    loader = DataLoader(TensorDataset(X[:n_train], y[:n_train]), batch_size=32, shuffle=True)
    model = TutorialRNN()
    init = [p.detach().clone() for p in model.parameters()]
    criterion, optimizer = nn.MSELoss(), torch.optim.Adam(model.parameters(), lr=1e-3)
    wall, cpu, curve = [], [], []
    for _ in range(epochs):
        t, c = time.perf_counter(), time.process_time()
        tutorial_epoch(model, loader, criterion, optimizer)
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        if score:
            curve.append(holdout_mse(model, values, split))
    return {"wall": wall, "cpu": cpu, "curve": curve, "cum_s": list(np.cumsum(wall)), "init": init, "X_train": X[:n_train]}


def run_ours_fixed(values, epochs: int) -> dict:
    """fit with FitSettings() defaults but patience 0, on the tutorial's 800 windows."""
    torch.set_num_threads(TRAIN_THREADS)
    torch.manual_seed(42)
    model = build_model(NetworkSpec())  # the default network is the tutorial's: nn.RNN(1, 64) + Linear
    init = [p.detach().clone() for p in model.parameters()]
    data = SeriesData(torch.as_tensor(values, dtype=torch.float32), L)
    train_idx = torch.arange(int((len(values) - L) * 0.8))
    stamps = [(time.perf_counter(), time.process_time())]
    fit(model, data, train_idx, torch.empty(0, dtype=torch.long), FitSettings(epochs=epochs, patience=0),
        on_epoch=lambda e, st: stamps.append((time.perf_counter(), time.process_time())))
    d = np.diff(np.array(stamps), axis=0)
    return {"wall": list(d[:, 0]), "cpu": list(d[:, 1]), "init": init, "X_train": data.batch(train_idx)[0]}


def run_ours_defaults(values, split, epochs: int | None) -> dict:
    """train_model with the FitSettings() defaults (early stopping on); after every epoch, outside
    the timed region, the test MSE of what it would return if it stopped there (its best weights)."""
    settings = FitSettings(**({"epochs": epochs} if epochs else {}))
    torch.set_num_threads(TRAIN_THREADS)
    probe = build_model(NetworkSpec())
    curve, cum_s, spent = [], [], [0.0]

    def hook(epoch, st):
        h = time.perf_counter()
        cum_s.append(h - start - spent[0])
        probe.load_state_dict(st.best_state)
        curve.append(holdout_mse(probe, values, split))
        spent[0] += time.perf_counter() - h

    start = time.perf_counter()
    model, st = train_model(values, split, NetworkSpec(), settings, torch.device("cpu"), on_epoch=hook)
    return {"seconds": time.perf_counter() - start - spent[0], "epochs": st.epoch, "best_epoch": st.best_epoch,
            "test_mse": holdout_mse(model, values, split), "curve": curve, "cum_s": cum_s}


def first_below(run: dict, target: float) -> tuple[int | None, float | None]:
    """(first epoch whose test MSE <= target, training seconds up to its end), or (None, None)."""
    return next(((i + 1, run["cum_s"][i]) for i, v in enumerate(run["curve"]) if v <= target), (None, None))


def per_epoch(values, split, rounds: int, epochs: int, threads: list[int]) -> dict:
    """(a): the tutorial at each thread count and ours, in alternating blocks of `epochs` epochs, so
    that all see the same load on a shared machine; median of the pooled epoch times."""
    runs = {t: (lambda t=t: run_tutorial(values, split, epochs, t, score=False)) for t in threads}
    runs["ours"] = lambda: run_ours_fixed(values, epochs)
    pooled = {k: {"wall": [], "cpu": []} for k in runs}
    for _ in range(rounds):
        last = {k: run() for k, run in runs.items()}
        for k, r in last.items():
            pooled[k]["wall"] += r["wall"]
            pooled[k]["cpu"] += r["cpu"]
    med = {k: {m: float(np.median(v)) for m, v in d.items()} for k, d in pooled.items()}
    med["identical"] = bool(torch.equal(last[1]["X_train"], last["ours"]["X_train"])
                            and all(map(torch.equal, last[1]["init"], last["ours"]["init"])))
    return med


def run(quick: bool, target: float = 1e-5) -> dict:
    # quick mode runs the tutorial at 1 thread only: at torch's default thread count its epochs can
    # take seconds on a busy small machine (OpenMP threads waiting on each other), see RESULTS.md
    rounds, block, epochs = (2, 2, 3) if quick else (10, 10, 100)
    threads = [1] if quick or DEFAULT_THREADS == 1 else [DEFAULT_THREADS, 1]
    values = sine_values()
    split = project_split(values)
    med = per_epoch(values, split, rounds, block, threads)
    tuts = {t: run_tutorial(values, split, epochs, t) for t in threads}
    dflt = run_ours_defaults(values, split, epochs if quick else None)
    o_ep, o_s = first_below(dflt, target)
    res = {"epochs": epochs, "default_threads": DEFAULT_THREADS, "identical_inputs": med["identical"], "rows": []}

    def row(name, ours_v, tut_v, fmt=fmt_s):
        res["rows"].append({"name": name, "ours": ours_v, "tutorial": tut_v, "ratio": ratio(tut_v, ours_v)})
        return (name, fmt(ours_v) if ours_v is not None else "not reached",
                fmt(tut_v) if tut_v is not None else "not reached", fmt_x(ratio(tut_v, ours_v)))

    def label(t: int) -> str:
        return f"{t} thread" + ("s" if t > 1 else "") + (" (default)" if t == DEFAULT_THREADS else "")

    rows = [row(f"(a) per epoch, wall, tutorial at {label(t)}", med["ours"]["wall"], med[t]["wall"]) for t in threads]
    rows.append(row("(a) per epoch, CPU time, tutorial at 1 thread", med["ours"]["cpu"], med[1]["cpu"]))
    for t, tut in tuts.items():
        t_ep, t_s = first_below(tut, target)
        rows += [row(f"(b) training time, whole run (tutorial {label(t)})", dflt["seconds"], tut["cum_s"][-1]),
                 row(f"(b) test MSE at the end (tutorial {label(t)})", dflt["test_mse"], tut["curve"][-1], lambda v: f"{v:.2e}"),
                 row(f"(b) first epoch with test MSE <= {target:g} (tutorial {label(t)})", o_ep, t_ep, str),
                 row(f"(b) training time to test MSE <= {target:g} (tutorial {label(t)})", o_s, t_s)]
    rows.append(row("(b) epochs run", dflt["epochs"], epochs, str))
    res.update(ours_epochs=dflt["epochs"], ours_best_epoch=dflt["best_epoch"], ours_train_s=dflt["seconds"],
               ours_test_mse=dflt["test_mse"])
    notes = [f"(a) {rounds} rounds of {block} epochs each, alternating, on the same 800 windows (identical inputs and "
             f"initial weights: {med['identical']}); median epoch; ours = tasks.components.fit.fit with FitSettings() "
             f"defaults ({TRAIN_THREADS} thread, fused Adam, weight average) and patience 0",
             f"(b) tutorial: {epochs} epochs on 800 windows; ours: train_model with FitSettings() defaults (early stopping "
             "on 720 train / 80 val windows, returns its best weights); both scored on the same 200 test windows after "
             "every epoch, outside the timed region"]
    if quick:
        notes.append(f"quick mode: {rounds}x{block} epochs in (a), at most {epochs} in (b), tutorial at 1 thread only; "
                     "not the full-run numbers")
    print_table(TITLE, ("ours", "tutorial"), rows, notes)
    return res
