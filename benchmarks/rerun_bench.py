"""The edit-rerun loop: a fully cached rerun from a new process vs the bare import floor.

    python benchmarks/rerun_bench.py                 # 5 rounds, side by side (about 2 minutes)
    python benchmarks/rerun_bench.py --repeats 9 --json rerun.json
    python benchmarks/rerun_bench.py --temporary     # also one rerun on a per-run temporary server

What a user does (README, "The edit-rerun loop"): `python flows/rnn_flow.py server` once, then
`python flows/rnn_flow.py ...` as often as they like. Here, in a throwaway PREFECT_HOME and output
dir, with Prefect's local port moved to a free one (so no other server on 4200 is touched):

  1. `python flows/rnn_flow.py server` starts the session server;
  2. one cold run fills the stage cache;
  3. rounds of, in turn: the import floor `python -c "import torch, prefect, pandas, pyarrow, matplotlib"`
     and the same `python flows/rnn_flow.py` again (every stage reused: checked), each a fresh
     process, wall clock from spawn to exit;
  4. `python flows/rnn_flow.py server stop`.

The ratio is rerun / floor, of the medians (and of the best times); the target is <= 1.5. Both
run from the repository root, as the README's commands do, so prefect.toml applies to both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.server import free_port  # noqa: E402  (no Prefect import)

FLOOR = [sys.executable, "-c", "import torch, prefect, pandas, pyarrow, matplotlib"]
FLOW = [sys.executable, str(ROOT / "flows" / "rnn_flow.py")]
TARGET = 1.5


def timed(cmd: list[str], env: dict, timeout: float = 900) -> tuple[float, str]:
    """(wall seconds from spawn to exit, stdout) of one fresh process; fails loudly on an error."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:3])} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, proc.stdout


def all_reused(stdout: str) -> bool:
    rows = [line.split() for line in stdout.splitlines() if line.startswith("  ")]
    return bool(rows) and all(r[1] == "reused" for r in rows)


def measure(repeats: int, temporary: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="rnnflow-rerun-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(PREFECT_HOME=f"{tmp}/prefect-home", PREFECT_SERVER_API_HOST="127.0.0.1",
                   PREFECT_SERVER_API_PORT=str(free_port()), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
        run = [*FLOW, "--output-dir", f"{tmp}/artifacts", "--data-dir", f"{tmp}/data"]
        out: dict = {"repeats": repeats, "loadavg_start": os.getloadavg()}
        try:
            out["server_start_s"], _ = timed([*FLOW, "server"], env)
            out["cold_run_s"], _ = timed(run, env)
            floors, reruns = [], []
            for _ in range(repeats):
                floors.append(timed(FLOOR, env)[0])
                wall, stdout = timed(run, env)
                if not all_reused(stdout):
                    raise RuntimeError(f"a rerun recomputed a stage:\n{stdout}")
                reruns.append(wall)
            out.update(floor_s=floors, rerun_s=reruns)
            if temporary:  # the same rerun without the session server: a temporary one per run
                subprocess.run([*FLOW, "server", "stop"], cwd=ROOT, env=env, capture_output=True, timeout=120)
                out["temporary_rerun_s"], _ = timed(run, env)
        finally:
            subprocess.run([*FLOW, "server", "stop"], cwd=ROOT, env=env, capture_output=True, timeout=120)
        out["loadavg_end"] = os.getloadavg()
    med_f, med_r = statistics.median(out["floor_s"]), statistics.median(out["rerun_s"])
    out.update(floor_median_s=med_f, rerun_median_s=med_r, ratio_median=med_r / med_f,
               ratio_best=min(out["rerun_s"]) / min(out["floor_s"]))
    return out


def report(r: dict) -> str:
    lines = [
        f"== fully cached rerun vs the import floor ({r['repeats']} rounds, side by side; load "
        f"{r['loadavg_start'][0]:.2f} -> {r['loadavg_end'][0]:.2f}) ==",
        f"{'':42}{'median':>9}{'best':>9}",
        f"{'rerun: python flows/rnn_flow.py':42}{r['rerun_median_s']:>8.2f}s{min(r['rerun_s']):>8.2f}s",
        f"{'floor: import torch, prefect, pandas, ...':42}{r['floor_median_s']:>8.2f}s{min(r['floor_s']):>8.2f}s",
        f"{'ratio rerun / floor (target <= 1.5)':42}{r['ratio_median']:>8.2f}x{r['ratio_best']:>8.2f}x",
        f"  for reference: `server` start {r['server_start_s']:.1f} s (once per session), "
        f"cold run {r['cold_run_s']:.1f} s",
    ]
    if "temporary_rerun_s" in r:
        lines.append(f"  the same rerun on a per-run temporary server (no `server`): {r['temporary_rerun_s']:.1f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="rounds of floor + rerun (default: 5)")
    p.add_argument("--temporary", action="store_true", help="also time one rerun on a temporary server")
    p.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    a = p.parse_args(argv)
    r = measure(a.repeats, a.temporary)
    print(report(r))
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2))
    return 0 if r["ratio_median"] <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
