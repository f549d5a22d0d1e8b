"""3. Memory: the peak RSS of one full training epoch on a 1e7-point series, against a 1 GB limit.

A fresh process (`bench.py --rss-child N`, so that no earlier section's peak counts) generates
the series and runs train_model for one epoch at batch 1024 on 1 thread, validation over its
10% val windows included, and prints its peak RSS (VmHWM), its RSS after the imports and the
epoch time as one JSON line.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch

from benchmarks.sections.common import BENCH, fmt_b, fmt_s, fmt_x, print_table, project_split, status_kb
from tasks.components.fit import train_model
from tasks.components.specs import FitSettings, NetworkSpec
from tasks.components.synthetic import sine_values


def peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM, which starts afresh at exec (ru_maxrss can carry the
    parent's peak over fork + exec, so it is only the fallback)."""
    try:
        return status_kb("VmHWM") * 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(n_points: int) -> None:
    """In a fresh process: one epoch of train_model on n_points at batch 1024, 1 thread; print JSON."""
    torch.set_num_threads(1)
    after_import = peak_rss()
    values = sine_values(n_points=n_points)
    split = project_split(values)
    settings = FitSettings(epochs=1, batch_size=1024, patience=0)
    t = time.perf_counter()
    _, st = train_model(values, split, NetworkSpec(), settings, torch.device("cpu"))
    print(json.dumps({"n_points": n_points, "seconds": time.perf_counter() - t, "epochs": st.epoch,
                      "steps": -(-len(split.origins("train")) // settings.batch_size),
                      "rss_after_import_bytes": after_import,
                      "maxrss_bytes": peak_rss()}))


def run(n_points: int) -> dict:
    """Run `child` in a fresh `bench.py --rss-child` process and print its numbers against 1 GB."""
    proc = subprocess.run([sys.executable, str(BENCH), "--rss-child", str(n_points)], capture_output=True, text=True,
                          timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"the {n_points:.0e}-point child failed:\n{proc.stderr[-2000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["under_1gb"] = r["maxrss_bytes"] < 2**30
    print_table(f"3. {n_points:.0e}-point series, one full epoch at batch 1024 on CPU", ("ours", "limit"), [
        ("process peak RSS (VmHWM)", fmt_b(r["maxrss_bytes"]), "1024.0 MB", fmt_x(2**30 / r["maxrss_bytes"])),
        ("  of it, after the imports", fmt_b(r["rss_after_import_bytes"]), "", ""),
        (f"  epoch time ({r['steps']} steps + validation)", fmt_s(r["seconds"]), "", "")],
        ["a fresh process generates the series and runs tasks.components.fit.train_model(FitSettings(epochs=1, "
         "batch_size=1024)) with 1 thread, validation over its 10% val windows included; ratio = limit / peak "
         "(< 1: over the limit)"])
    return r
