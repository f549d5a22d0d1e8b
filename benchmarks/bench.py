"""Side by side, in one process: rnnflow against the classic RNN sine tutorial it grew from.

    python benchmarks/bench.py                  # full run (10+ minutes on a 2-core CPU)
    python benchmarks/bench.py --quick          # under a minute: small sizes, 5 epochs
    python benchmarks/bench.py --json out.json  # also write every number as JSON

One table per section: ours, the tutorial (or another baseline), the ratio baseline/ours. Each
section is a module of benchmarks/sections/ (its docstring says what it measures); they call
tasks.components only, so numpy, torch, pandas and pyarrow suffice. Prefect is needed only by
section 5, which is skipped without it. Timings are wall clock unless a row says CPU time; the
machine may be shared, so the load average is printed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.sections import common, cuda, memory, orchestration, peers, training, windowing  # noqa: E402

OPTIONAL = ("prefect", "pydantic", "filelock")  # the pipeline's dependencies that the benchmark does without


def missing_modules() -> list[str]:
    """Which of OPTIONAL cannot be imported here (looked up, not imported)."""
    out = []
    for name in OPTIONAL:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            out.append(name)
    return out


def machine(missing: list[str]) -> dict:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "default_threads": common.DEFAULT_THREADS, "missing_modules": missing, "loadavg_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes and 5 epochs (under a minute on 2 cores)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--no-prefect", action="store_true", help="skip the orchestration section")
    p.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.rss_child:
        memory.child(a.rss_child)
        return 0
    missing = missing_modules()
    res = {"mode": "quick" if a.quick else "full", "machine": machine(missing)}
    m = res["machine"]
    print(f"rnnflow bench ({res['mode']}): {m['cpu']}, {m['cores']} cores, torch {m['torch']}, default threads "
          f"{m['default_threads']}, load {m['loadavg_start'][0]:.2f}" + (f"; missing: {', '.join(missing)}" if missing else ""))

    res["windowing"] = windowing.run([10**k for k in range(3, 6 if a.quick else 8)])
    res["training"] = training.run(a.quick)
    if a.quick:
        common.print_lines("3. 1e7-point epoch", ["skipped: --quick"])
        res["rss_1e7"] = {"skipped": "--quick"}
    else:
        res["rss_1e7"] = memory.run(10**7)
    res["cuda"] = cuda.run(a.quick)
    why = "--no-prefect" if a.no_prefect else "prefect is not installed" if "prefect" in missing else "--quick" if a.quick else ""
    if why:
        common.print_lines(orchestration.TITLE, [f"skipped: {why}"])
        res["prefect"] = {"skipped": why}
    else:
        res["prefect"] = orchestration.run(repeats=2)
    tr = res["training"]
    res["peers"] = peers.run(tr["epochs"], {"train_s": tr["ours_train_s"], "test_mse": tr["ours_test_mse"]})

    m["loadavg_end"] = os.getloadavg()
    print(f"\nload average at the end: {m['loadavg_end'][0]:.2f} on {m['cores']} cores (higher: noisier wall times)")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2, default=float))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
