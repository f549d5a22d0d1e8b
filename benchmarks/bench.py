"""Side by side, in one process: rnnflow against the classic RNN sine tutorial it grew from.

    python benchmarks/bench.py                  # full run (10+ minutes on a 2-core CPU)
    python benchmarks/bench.py --quick          # under a minute: small sizes, 5 epochs
    python benchmarks/bench.py --json out.json  # also write every number as JSON

One table per section: ours, the tutorial (or another baseline), the ratio baseline/ours.
Needs numpy, torch, pandas, pyarrow; Prefect is optional (see _stub_missing_modules). Timings are
wall clock unless a row says CPU time; the machine may be shared, so the load average is printed.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import inspect
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_THREADS = torch.get_num_threads()  # what a tutorial script gets: read before anything sets it
L = 20  # the tutorial's window length


def _stub_missing_modules() -> list[str]:
    """Let `import tasks.*` work where Prefect (or its dependencies pydantic, filelock) is missing.

    The GPU machine has torch, numpy, pandas and pyarrow but no Prefect, and tasks/*.py import at
    module top: prefect.task, prefect.cache_policies.CacheKeyFnPolicy, prefect.context.TaskRunContext,
    prefect.tasks.exponential_backoff (`grep -n "from prefect" tasks/*.py`). The benchmark calls only
    plain functions, never a task, so inert stand-ins suffice. A module that imports is left alone.
    """
    stubbed = []

    def missing(name: str) -> bool:
        try:
            __import__(name)
            return False
        except ImportError:
            stubbed.append(name)
            return True

    def add(name: str, **attrs) -> None:
        sys.modules[name] = mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, mod)

    if missing("prefect"):
        no_run = type("NoRun", (), {"get": staticmethod(lambda: None)})  # never inside a flow or task run
        add("prefect", task=lambda fn=None, **_: fn if callable(fn) else (lambda f: f))  # @task(...) -> identity
        add("prefect.cache_policies", CacheKeyFnPolicy=lambda **kw: types.SimpleNamespace(**kw))
        add("prefect.context", TaskRunContext=no_run, FlowRunContext=no_run)
        add("prefect.tasks", exponential_backoff=lambda backoff_factor=1: [backoff_factor])
    if missing("pydantic"):  # tasks/config.py, store.py, caching.py

        class BaseModel:  # fields stay class attributes; no validation (we pass known-good values)
            def __init__(self, **kw):
                self.__dict__.update(kw)

            def model_dump(self, *, include=None, exclude=(), **_):
                names = dict.fromkeys(n for c in reversed(type(self).__mro__) for n in inspect.get_annotations(c))
                return {n: getattr(self, n) for n in names
                        if n != "model_config" and n not in exclude and (include is None or n in include)}

        def decorators(name: str):  # field_validator, model_validator, ...: no-op decorator factories
            if name.endswith(("_validator", "_serializer")):
                return lambda *a, **k: (lambda f: f)
            raise AttributeError(name)

        add("pydantic", BaseModel=BaseModel, ConfigDict=dict, ValidationError=ValueError,
            Field=lambda default=None, **_: default, __getattr__=decorators)
    if missing("filelock"):  # tasks/store.py
        add("filelock", FileLock=type("FileLock", (), {"__init__": lambda self, *a, **k: None,
                                                       "__enter__": lambda self: self, "__exit__": lambda self, *e: False}))
    return stubbed


STUBBED = _stub_missing_modules()

from tasks.config import DataConfig, ModelConfig, TrainConfig, WindowConfig  # noqa: E402
from tasks.evaluate import model_predictions  # noqa: E402
from tasks.generate import generate_values  # noqa: E402
from tasks.metrics import mse  # noqa: E402
from tasks.model import Forecaster  # noqa: E402
from tasks.train import SeriesData, fit, graph_step, make_optimizer, plain_step, train_model  # noqa: E402
from tasks.windowing import build_split, fit_scaler, make_windows, ranges_to_index  # noqa: E402

# --------------------------------------------------------------------------- measuring, printing


def status_kb(field: str) -> int:
    """A field of /proc/self/status in KB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_extra_rss(fn):
    """fn(), and how far the process's peak RSS rose above its RSS before the call (bytes; None off Linux).

    Freed heap goes back to the OS first (malloc_trim) and the kernel's high-water mark is reset
    (/proc/self/clear_refs), so numpy, Python and torch allocations all count (tracemalloc misses torch).
    """
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        before = status_kb("VmRSS")
    except (OSError, AttributeError):
        return fn(), None
    out = fn()
    return out, max(0, status_kb("VmHWM") - before) * 1024


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
        del out
    return best


def fmt_s(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e6:.0f} µs" if s < 1e-3 else f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_b(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:.1f} MB" if b >= 2**20 else f"{b / 2**10:.0f} KB"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def fmt_x(r: float | None, floor: bool = False) -> str:
    return "-" if r is None else (">=" if floor else "") + (f"{r:.0f}x" if r >= 100 else f"{r:.2f}x")


def print_table(title: str, header: tuple[str, str], rows: list[tuple], notes: list[str] = ()) -> None:
    """rows: (name, ours, baseline, ratio), all strings."""
    table = [("", *header, "ratio"), *rows]
    w = [max(len(r[i]) for r in table) for i in range(4)]
    print(f"\n== {title} ==")
    for r in table:
        print(f"  {r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}")
    for n in notes:
        print(f"  note: {n}")


# --------------------------------------------------------------------------- 1. windowing


def tutorial_windows(data: np.ndarray, seq_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The tutorial, verbatim: a Python loop of slices, stacked, then a FloatTensor copy."""
    xs, ys = [], []
    for i in range(len(data) - seq_length):
        xs.append(data[i : i + seq_length])
        ys.append(data[i + seq_length])
    return torch.FloatTensor(np.array(xs)), torch.FloatTensor(np.array(ys))


def ours_windows(values: np.ndarray, seq_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """make_windows (numpy views), then the float32 tensor view the trainer uses (one series copy)."""
    X, _ = make_windows(values, seq_length)
    t = torch.as_tensor(values, dtype=torch.float32)
    return t.unfold(0, seq_length, 1)[: len(X)], t[seq_length:]


def bench_windowing(sizes: list[int]) -> list[dict]:
    """Ours with the train stage's thread setting (TrainConfig().threads), the tutorial with torch's default."""
    out, rows = [], []
    tutorial_windows(np.zeros(100), L), ours_windows(np.zeros(100), L)  # first-call costs out of the way
    for n in sizes:
        values = generate_values(DataConfig(n_points=n))
        ours, tut = (lambda: ours_windows(values, L)), (lambda: tutorial_windows(values, L))
        torch.set_num_threads(TrainConfig().threads)
        (ow, oy), ours_mem = peak_extra_rss(ours)
        ours_s = best_time(ours, 20)
        torch.set_num_threads(DEFAULT_THREADS)
        (tw, ty), tut_mem = peak_extra_rss(tut)
        same = bool(torch.equal(ow, tw) and torch.equal(oy, ty))  # same shapes, every bit
        assert same, f"windows differ at n={n}"
        del tw, ty
        r = {"n": n, "ours_s": ours_s, "tutorial_s": best_time(tut, 3 if n <= 10**6 else 1),
             "ours_peak_bytes": ours_mem, "tutorial_peak_bytes": tut_mem, "memory_ratio_is_floor": (ours_mem or 0) <= 4096,
             "memory_ratio": ratio(tut_mem, max(ours_mem or 0, 4096)), "bit_identical": same}
        r["time_ratio"] = r["tutorial_s"] / r["ours_s"]
        out.append(r)
        rows += [(f"{n:.0e} points: time", fmt_s(r["ours_s"]), fmt_s(r["tutorial_s"]), fmt_x(r["time_ratio"])),
                 (f"{n:.0e} points: peak extra RSS", fmt_b(ours_mem), fmt_b(tut_mem),
                  fmt_x(r["memory_ratio"], r["memory_ratio_is_floor"]))]
    print_table("1. windowing (L=20): make_windows + tensor unfold vs the tutorial's loop", ("ours", "tutorial"), rows, [
        f"time: best of 20 runs (ours) and of 3 (tutorial; 1 at 1e7); ours at {TrainConfig().threads} thread(s) "
        f"(the train stage's setting), the tutorial at torch's default {DEFAULT_THREADS}; windows and targets asserted "
        "bit-identical",
        "memory: rise of the process's peak RSS (VmHWM, reset through /proc/self/clear_refs) while building them: "
        "numpy, Python and torch allocations all count; page-granular, so ours is floored at 4 KB (>=)"])
    return out


# --------------------------------------------------------------------------- 2. CPU training


class TutorialRNN(nn.Module):
    """The tutorial's model: nn.RNN(1, 64) and a Linear head on the last hidden state."""

    def __init__(self, input_size: int = 1, hidden_size: int = 64, output_size: int = 1):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1, :])


def tutorial_epoch(model, loader, criterion, optimizer, device=None, max_steps=None) -> int:
    """One epoch of the tutorial's loop (loss.item() every step, as tutorials print it); returns steps."""
    model.train()
    epoch_loss, steps = 0.0, 0
    for xb, yb in loader:
        if device is not None:
            xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
        steps += 1
        if max_steps and steps >= max_steps:
            break
    return steps


def project_split(values: np.ndarray) -> dict:
    """What the window stage writes to split.json for one series with the default WindowConfig."""
    cfg = WindowConfig()
    split = build_split([len(values)], ["sine"], cfg)
    split["normalize"], split["scaler"] = cfg.normalize, fit_scaler(values, split, cfg.normalize)
    return split


def test_mse(model, values, split) -> float:
    """The evaluate stage's model MSE: one-step forecasts on the test windows, in series units."""
    targets = ranges_to_index(split, "test") + split["seq_length"]
    return mse(values[targets], model_predictions(model, values, split, 65_536))


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
            curve.append(test_mse(model, values, split))
    return {"wall": wall, "cpu": cpu, "curve": curve, "cum_s": list(np.cumsum(wall)), "init": init, "X_train": X[:n_train]}


def run_ours_fixed(values, epochs: int) -> dict:
    """tasks.train.fit with TrainConfig() defaults but patience 0, on the tutorial's 800 windows."""
    torch.set_num_threads(TrainConfig().threads)
    torch.manual_seed(42)
    model = Forecaster()
    init = [p.detach().clone() for p in model.parameters()]
    data = SeriesData(torch.as_tensor(values, dtype=torch.float32), L)
    train_idx = torch.arange(int((len(values) - L) * 0.8))
    stamps = [(time.perf_counter(), time.process_time())]
    fit(model, data, train_idx, torch.empty(0, dtype=torch.long), TrainConfig(epochs=epochs, patience=0, device="cpu"),
        on_epoch=lambda e, st: stamps.append((time.perf_counter(), time.process_time())))
    d = np.diff(np.array(stamps), axis=0)
    return {"wall": list(d[:, 0]), "cpu": list(d[:, 1]), "init": init, "X_train": data.batch(train_idx)[0]}


def run_ours_defaults(values, split, epochs: int | None) -> dict:
    """train_model with the TrainConfig() defaults (early stopping on); after every epoch, outside
    the timed region, the test MSE of what it would return if it stopped there (its best weights)."""
    cfg = TrainConfig(device="cpu", **({"epochs": epochs} if epochs else {}))
    torch.set_num_threads(cfg.threads)
    probe = Forecaster()  # the default ModelConfig is Forecaster's defaults: the tutorial's network
    curve, cum_s, spent = [], [], [0.0]

    def hook(epoch, st):
        h = time.perf_counter()
        cum_s.append(h - start - spent[0])
        probe.load_state_dict(st.best_state)
        curve.append(test_mse(probe, values, split))
        spent[0] += time.perf_counter() - h

    start = time.perf_counter()
    model, st = train_model(values, split, ModelConfig(), cfg, torch.device("cpu"), on_epoch=hook)
    return {"seconds": time.perf_counter() - start - spent[0], "epochs": st.epoch, "best_epoch": st.best_epoch,
            "test_mse": test_mse(model, values, split), "curve": curve, "cum_s": cum_s}


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


def bench_training(quick: bool, target: float = 1e-5) -> dict:
    # quick mode runs the tutorial at 1 thread only: at torch's default thread count its epochs can
    # take seconds on a busy small machine (OpenMP threads waiting on each other), see RESULTS.md
    rounds, block, epochs = (2, 2, 3) if quick else (10, 10, 100)
    threads = [1] if quick or DEFAULT_THREADS == 1 else [DEFAULT_THREADS, 1]
    values = generate_values(DataConfig())
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
             f"initial weights: {med['identical']}); median epoch; ours = tasks.train.fit with TrainConfig() defaults "
             "(1 thread, fused Adam, weight average) and patience 0",
             f"(b) tutorial: {epochs} epochs on 800 windows; ours: train_model with TrainConfig() defaults (early stopping "
             "on 720 train / 80 val windows, returns its best weights); both scored on the same 200 test windows after "
             "every epoch, outside the timed region"]
    if quick:
        notes.append(f"quick mode: {rounds}x{block} epochs in (a), at most {epochs} in (b), tutorial at 1 thread only; "
                     "not the full-run numbers")
    print_table("2. CPU training, default task (sine, 1020 points, nn.RNN 64, batch 32)", ("ours", "tutorial"), rows, notes)
    return res


# --------------------------------------------------------------------------- 3. 1e7 points in 1 GB


def peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM, which starts afresh at exec (ru_maxrss can carry the
    parent's peak over fork + exec, so it is only the fallback)."""
    try:
        return status_kb("VmHWM") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_child(n_points: int) -> None:
    """In a fresh process: one epoch of train_model on n_points at batch 1024, 1 thread; print JSON."""
    torch.set_num_threads(1)
    after_import = peak_rss()
    values = generate_values(DataConfig(n_points=n_points))
    split = project_split(values)
    cfg = TrainConfig(epochs=1, batch_size=1024, patience=0, device="cpu")
    t = time.perf_counter()
    _, st = train_model(values, split, ModelConfig(), cfg, torch.device("cpu"))
    print(json.dumps({"n_points": n_points, "seconds": time.perf_counter() - t, "epochs": st.epoch,
                      "steps": -(-len(ranges_to_index(split, "train")) // cfg.batch_size),
                      "rss_after_import_bytes": after_import,
                      "maxrss_bytes": peak_rss()}))


def bench_rss(n_points: int) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--rss-child", str(n_points)], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"the {n_points:.0e}-point child failed:\n{proc.stderr[-2000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["under_1gb"] = r["maxrss_bytes"] < 2**30
    print_table(f"3. {n_points:.0e}-point series, one full epoch at batch 1024 on CPU", ("ours", "limit"), [
        ("process peak RSS (VmHWM)", fmt_b(r["maxrss_bytes"]), "1024.0 MB", fmt_x(2**30 / r["maxrss_bytes"])),
        ("  of it, after the imports", fmt_b(r["rss_after_import_bytes"]), "", ""),
        (f"  epoch time ({r['steps']} steps + validation)", fmt_s(r["seconds"]), "", "")],
        ["a fresh process generates the series and runs tasks.train.train_model(TrainConfig(epochs=1, batch_size=1024)) "
         "with 1 thread, validation over its 10% val windows included; ratio = limit / peak (< 1: over the limit)"])
    return r


# --------------------------------------------------------------------------- 4. CUDA


GPU = torch.device("cuda")


def cuda_setup(values, split):
    """Seeded Forecaster, the series and its train/val window starts, on the GPU."""
    torch.manual_seed(42)
    data = SeriesData(torch.as_tensor(values, dtype=torch.float32, device=GPU), L)
    idx = [torch.as_tensor(ranges_to_index(split, part), device=GPU) for part in ("train", "val")]
    return Forecaster().to(GPU), data, *idx


def cuda_fit_us(values, split, bs: int, epochs: int, graph: bool) -> tuple[float, bool]:
    """µs per step of tasks.train.fit (plain loop or CUDA graph, validation and weight average included):
    median epoch after the first (warm-up, capture) / steps per epoch; and whether capture fell back."""
    model, data, train_idx, val_idx = cuda_setup(values, split)
    warned = []
    handler = logging.Handler()
    handler.emit = lambda rec: warned.append(rec.getMessage())
    logging.getLogger("tasks.train").addHandler(handler)
    stamps = [time.perf_counter()]
    cfg = TrainConfig(epochs=epochs, batch_size=bs, patience=0, device="cuda", cuda_graphs=graph)
    fit(model, data, train_idx, val_idx, cfg, on_epoch=lambda e, st: stamps.append(time.perf_counter()))
    logging.getLogger("tasks.train").removeHandler(handler)
    per_epoch = float(np.median(np.diff(stamps)[1:]))
    return per_epoch / -(-len(train_idx) // bs) * 1e6, any("capture failed" in m for m in warned)


def cuda_losses(values, split, bs: int, n: int, graph: bool) -> torch.Tensor:
    """The first n losses of tasks.train.plain_step or graph_step on the same seeded batches."""
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


def bench_cuda(quick: bool) -> dict:
    if not torch.cuda.is_available():
        print("\n== 4. CUDA ==\n  skipped: torch.cuda.is_available() is False (no GPU here)")
        return {"skipped": "no CUDA device"}
    res = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cases": []}
    rows, check = [], 20
    cases = (("default task, batch 32", 1020, 32, 20 if quick else 100), ("1e6 points, batch 1024", 10**6, 1024, 2 if quick else 5))
    for label, n, bs, epochs in cases:
        values = generate_values(DataConfig(n_points=n))
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
        "ours: tasks.train.fit (patience 0), median epoch after the first / steps per epoch, so its per-epoch "
        "validation and sync are included; tutorial: 200 (quick) / 2000 steps after 5 warm-up steps",
        "loss check: tasks.train.plain_step vs graph_step from the same weights on the same batches"])
    return res


# --------------------------------------------------------------------------- 5. Prefect overhead

TRIVIAL_FLOW = "from prefect import flow, task\n@task\ndef one():\n    return 1\n@flow\ndef trivial():\n    return one()\ntrivial()\n"


def bench_prefect(repeats: int) -> dict:
    """Fresh processes, each on Prefect's temporary server: a one-task flow vs an rnn_pipeline warm rerun."""
    with tempfile.TemporaryDirectory(prefix="rnnflow-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(PREFECT_HOME=f"{tmp}/prefect-home", DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
        trivial = [sys.executable, "-c", TRIVIAL_FLOW]
        ours = [sys.executable, str(ROOT / "flows" / "rnn_flow.py"), "--output-dir", f"{tmp}/artifacts", "--data-dir", f"{tmp}/data"]

        def timed(cmd) -> float:
            t = time.perf_counter()
            p = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
            if p.returncode:
                raise RuntimeError(f"{' '.join(cmd[:2])} failed:\n{p.stderr[-1500:]}")
            return time.perf_counter() - t

        try:
            timed(trivial)  # creates the database: not counted
            cold = timed(ours)  # fills the stage cache
            triv, warm = zip(*[(timed(trivial), timed(ours)) for _ in range(repeats)])
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"\n== 5. orchestration overhead ==\n  failed: {exc}")
            return {"failed": str(exc)[-500:]}
    r = {"trivial_s": min(triv), "warm_rerun_s": min(warm), "cold_run_s": cold, "extra_s": min(warm) - min(triv)}
    print_table("5. orchestration overhead (fresh process + temporary Prefect server each)", ("rnn_pipeline", "trivial"), [
        ("warm rerun, all 5 stages cached", fmt_s(r["warm_rerun_s"]), fmt_s(r["trivial_s"]), f"+{r['extra_s']:.1f} s"),
        ("cold run, for reference", fmt_s(cold), "", "")],
        [f"best of {repeats}; last column: the seconds a warm rerun costs on top of a one-task flow"])
    return r


# --------------------------------------------------------------------------- 6. peers


def bench_peers(epochs: int, ours: dict) -> dict:
    """darts / neuralforecast on the same task with one CPU thread, where installed (benchmarks/requirements.txt).

    ours: {"train_s", "test_mse"} of our default run in section 2, for the ratio columns."""
    out, rows = {}, []
    values = generate_values(DataConfig())
    test = ranges_to_index(project_split(values), "test") + L
    torch.set_num_threads(1)
    for name, runner in (("darts", _run_darts), ("neuralforecast", _run_neuralforecast)):
        if importlib.util.find_spec(name) is None:
            out[name] = "not installed"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t, pred = runner(values, int(test[0]), epochs)
        except Exception as exc:  # a peer's API drift must not sink the benchmark
            out[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
            continue
        r = out[name] = {"train_s": t, "test_mse": mse(values[test], pred), "epochs": epochs}
        rows += [(f"{name}: training time", fmt_s(ours["train_s"]), fmt_s(t), fmt_x(ratio(t, ours["train_s"]))),
                 (f"{name}: test MSE", f"{ours['test_mse']:.2e}", f"{r['test_mse']:.2e}", fmt_x(ratio(r["test_mse"], ours["test_mse"])))]
    missing = [f"{k}: {v}" for k, v in out.items() if isinstance(v, str)]
    if not rows:
        print("\n== 6. peers ==\n" + "\n".join(f"  {m}" for m in missing))
        return out
    print_table(f"6. peers on the default task ({epochs} epochs, batch 32, 1 thread)", ("ours", "peer"), rows, missing + [
        "ours: the (b) run of section 2; darts: BlockRNNModel(RNN, 64), MSE; neuralforecast: RNN(64) with its MLP "
        "decoder, MSE, 32 windows a step; its time includes the 200 test forecasts"])
    return out


def _quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)  # after their import, which sets INFO


def _run_darts(values, test_start: int, epochs: int):
    from darts import TimeSeries
    from darts.models import BlockRNNModel

    _quiet_lightning()
    series = TimeSeries.from_values(values.astype(np.float32))
    model = BlockRNNModel(input_chunk_length=L, output_chunk_length=1, model="RNN", hidden_dim=64, n_rnn_layers=1,
                          batch_size=32, n_epochs=epochs, optimizer_kwargs={"lr": 1e-3}, random_state=42,
                          pl_trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False, "logger": False,
                                             "enable_model_summary": False})
    t = time.perf_counter()
    model.fit(series[:test_start])
    t = time.perf_counter() - t
    fc = model.historical_forecasts(series, start=test_start, forecast_horizon=1, retrain=False, verbose=False)
    return t, fc.values()[:, 0].astype(np.float64)


def _run_neuralforecast(values, test_start: int, epochs: int):
    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MSE
    from neuralforecast.models import RNN

    _quiet_lightning()
    df = pd.DataFrame({"unique_id": "sine", "ds": np.arange(len(values)), "y": values})
    model = RNN(h=1, input_size=L, encoder_hidden_size=64, encoder_n_layers=1, loss=MSE(), scaler_type="identity",
                max_steps=epochs * ((test_start - L) // 32), batch_size=1, windows_batch_size=32, learning_rate=1e-3,
                random_seed=42, accelerator="cpu", enable_progress_bar=False, logger=False, enable_model_summary=False)
    t = time.perf_counter()  # training and the test forecasts together: cross_validation does both
    cv = NeuralForecast(models=[model], freq=1).cross_validation(df, n_windows=len(values) - test_start, step_size=1, refit=False)
    return time.perf_counter() - t, cv["RNN"].to_numpy(np.float64)


# --------------------------------------------------------------------------- main


def machine() -> dict:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "default_threads": DEFAULT_THREADS, "stubbed_modules": STUBBED, "loadavg_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes and 5 epochs (under a minute on 2 cores)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--no-prefect", action="store_true", help="skip the orchestration section")
    p.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.rss_child:
        rss_child(a.rss_child)
        return 0
    res = {"mode": "quick" if a.quick else "full", "machine": machine()}
    m = res["machine"]
    print(f"rnnflow bench ({res['mode']}): {m['cpu']}, {m['cores']} cores, torch {m['torch']}, default threads "
          f"{DEFAULT_THREADS}, load {m['loadavg_start'][0]:.2f}" + (f"; stubbed: {', '.join(STUBBED)}" if STUBBED else ""))
    res["windowing"] = bench_windowing([10**k for k in range(3, 6 if a.quick else 8)])
    res["training"] = bench_training(a.quick)
    if a.quick:
        print("\n== 3. 1e7-point epoch ==\n  skipped: --quick")
        res["rss_1e7"] = {"skipped": "--quick"}
    else:
        res["rss_1e7"] = bench_rss(10**7)
    res["cuda"] = bench_cuda(a.quick)
    why = "--no-prefect" if a.no_prefect else "prefect is not installed" if "prefect" in STUBBED else "--quick" if a.quick else ""
    if why:
        print(f"\n== 5. orchestration overhead ==\n  skipped: {why}")
        res["prefect"] = {"skipped": why}
    else:
        res["prefect"] = bench_prefect(repeats=2)
    tr = res["training"]
    res["peers"] = bench_peers(tr["epochs"], {"train_s": tr["ours_train_s"], "test_mse": tr["ours_test_mse"]})
    m["loadavg_end"] = os.getloadavg()
    print(f"\nload average at the end: {m['loadavg_end'][0]:.2f} on {m['cores']} cores (higher: noisier wall times)")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2, default=float))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
