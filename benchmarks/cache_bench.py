"""Cold run vs warm rerun of the default pipeline, each in its own process.

    python benchmarks/cache_bench.py                  # against Prefect's temporary server
    python benchmarks/cache_bench.py --api-url http://127.0.0.1:4200/api   # a running server

The warm rerun's wall time is split into the pipeline's own work (the flow body: planning,
verifying every cached file, the five cached task calls, artifacts, the run directory; measured
inside the flow as `pipeline_seconds`) and the rest (interpreter and imports, Prefect start-up
and shut-down). Outputs go to a temp dir; nothing is written into the repo.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(out: Path, env: dict, extra: list[str]) -> dict:
    """One `python flows/rnn_flow.py` process: wall time, the flow's own time, stage actions."""
    cmd = [sys.executable, str(ROOT / "flows" / "rnn_flow.py"), "--output-dir", str(out / "artifacts"),
           "--data-dir", str(out / "data"), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    run_dir = Path(proc.stdout.strip().splitlines()[-1].split("outputs: ", 1)[1])
    summary = json.loads((run_dir / "stages.json").read_text())["summary"]
    return {
        "wall_s": round(wall, 2),
        "pipeline_s": summary["pipeline_seconds"],
        "other_s": round(wall - summary["pipeline_seconds"], 2),
        "actions": {r["stage"]: r["action"] for r in summary["stages"]},
        "reasons": {r["stage"]: r["reason"] for r in summary["stages"] if r["action"] != "reused"},
        "epochs_run": summary.get("train", {}).get("epochs_run"),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--api-url", help="a running Prefect server's API URL (default: temporary server)")
    p.add_argument("--warm-runs", type=int, default=2, help="warm reruns to time")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("extra", nargs="*", help="extra pipeline options, after --")
    args = p.parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.api_url:
        env["PREFECT_API_URL"] = args.api_url
    else:
        env.pop("PREFECT_API_URL", None)
    with tempfile.TemporaryDirectory() as tmp:
        cold = run_once(Path(tmp), env, args.extra)
        warm = [run_once(Path(tmp), env, args.extra) for _ in range(args.warm_runs)]
    mode = f"running server {args.api_url}" if args.api_url else "temporary server"
    print(f"mode: {mode}")
    print(f"{'run':<8} {'wall s':>8} {'pipeline s':>11} {'start-up etc. s':>16}  stages")
    for name, r in [("cold", cold), *[(f"warm{i + 1}", w) for i, w in enumerate(warm)]]:
        acts = ", ".join(f"{k} {v}" for k, v in r["reasons"].items()) or "all reused"
        print(f"{name:<8} {r['wall_s']:>8.2f} {r['pipeline_s']:>11.3f} {r['other_s']:>16.2f}  recomputed: {acts}")
    ok = all(set(w["actions"].values()) == {"reused"} for w in warm)
    print(f"warm reruns reused every stage: {ok}; cold/warm pipeline time ratio: "
          f"{cold['pipeline_s'] / max(min(w['pipeline_s'] for w in warm), 1e-9):.0f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"mode": mode, "cold": cold, "warm": warm}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
