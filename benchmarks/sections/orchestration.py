"""5. Orchestration overhead: what Prefect adds to a run of the pipeline.

Fresh processes, each on a temporary server in a throwaway PREFECT_HOME: a one-task flow (on
Prefect's own), and `flows/rnn_flow.py` rerun with all five stages cached (after one cold run that
fills the cache; on the one the command line starts, flows/server.py). The difference of the best
times is what a warm rerun costs on top of Prefect itself. Prefect is needed only in those
subprocesses: this module does not import it. benchmarks/rerun_bench.py measures the same rerun
against a running server, the edit-rerun loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from benchmarks.sections.common import ROOT, fmt_s, print_lines, print_table
from flows.server import free_port

TITLE = "5. orchestration overhead"
TRIVIAL_FLOW = "from prefect import flow, task\n@task\ndef one():\n    return 1\n@flow\ndef trivial():\n    return one()\ntrivial()\n"


def run(repeats: int) -> dict:
    """Fresh processes, each on Prefect's temporary server: a one-task flow vs an rnn_pipeline warm rerun."""
    with tempfile.TemporaryDirectory(prefix="rnnflow-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env.update(PREFECT_HOME=f"{tmp}/prefect-home", DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   PREFECT_SERVER_API_PORT=str(free_port()))  # no local server on 4200 is used instead
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
            print_lines(TITLE, [f"failed: {exc}"])
            return {"failed": str(exc)[-500:]}
    r = {"trivial_s": min(triv), "warm_rerun_s": min(warm), "cold_run_s": cold, "extra_s": min(warm) - min(triv)}
    print_table(f"{TITLE} (fresh process + temporary Prefect server each)", ("rnn_pipeline", "trivial"), [
        ("warm rerun, all 5 stages cached", fmt_s(r["warm_rerun_s"]), fmt_s(r["trivial_s"]), f"+{r['extra_s']:.1f} s"),
        ("cold run, for reference", fmt_s(cold), "", "")],
        [f"best of {repeats}; last column: the seconds a warm rerun costs on top of a one-task flow"])
    return r
