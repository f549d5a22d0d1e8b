"""Ctrl-C and SIGTERM at other stages than training (tests/flow/test_kill_resume.py has that one):
one line, status 130/143 within seconds, no traceback, no process left in the run's process group,
the flow run marked crashed on the server, and a rerun that reuses every stage that finished.

RNNFLOW_STALL (tasks/runtime/faults.py) holds the run in the stage, so the signal lands there.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil

from tests.helpers.cli import finish_flow, group_members, start_flow
from tests.helpers.server import api_post


TINY = ["--n-points", "240", "--hidden-size", "8", "--epochs", "2", "--device", "cpu", "--fig-dpi", "40",
        "--fig-width", "4", "--fig-height", "3", "--verbose"]  # the flow runs' names, from Prefect's lines


def start_stalled(stage_entry: str, base: Path, server, log: Path):
    """A run whose drill holds `stage_entry` (in `base`)."""
    env = {**server.env(), "RNNFLOW_STALL": stage_entry}
    base.mkdir()
    return start_flow(base, server, *TINY, *outputs(base), log=log, env=env)


def outputs(base: Path) -> list[str]:
    return ["--output-dir", str(base / "artifacts"), "--data-dir", str(base / "data")]


def stop_when_stalled(proc, log: Path, sig: signal.Signals) -> tuple[int, float, str]:
    """Send `sig` to the run's process once its drill holds it; (status, seconds it took to end, its output)."""
    deadline = time.monotonic() + 240
    while "stalls here" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    children = psutil.Process(proc.pid).children(recursive=True)
    sent = time.monotonic()
    proc.send_signal(sig)
    status = proc.wait(timeout=60)
    took = time.monotonic() - sent
    time.sleep(0.5)
    assert group_members(proc.pid) == [] and not [c for c in children if c.is_running()
                                                  and c.status() != psutil.STATUS_ZOMBIE]
    return status, took, log.read_text()


def test_ctrl_c_at_generate_and_sigterm_at_evaluate_stop_at_once_and_the_rerun_resumes(tmp_path, prefect_server):
    at_generate, at_evaluate = tmp_path / "generate", tmp_path / "evaluate"
    first = start_stalled("generate", at_generate, prefect_server, tmp_path / "log1.txt")
    second = start_stalled("backtest", at_evaluate, prefect_server, tmp_path / "log2.txt")

    status, took, out1 = stop_when_stalled(first, tmp_path / "log1.txt", signal.SIGINT)
    assert (status, out1.strip().splitlines()[-1]) == (
        130, "interrupted at generate; finished stages are kept, run the same command to resume")
    assert took < 10 and "Traceback" not in out1 and "KeyboardInterrupt" not in out1

    status, took, out2 = stop_when_stalled(second, tmp_path / "log2.txt", signal.SIGTERM)
    assert (status, out2.strip().splitlines()[-1]) == (
        143, "interrupted at evaluate; finished stages are kept, run the same command to resume")
    assert took < 10 and "Traceback" not in out2
    assert not list((at_evaluate / "artifacts" / "cache" / "backtest").glob("*/manifest.json"))

    runs = api_post(prefect_server, "flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 50})
    names = [line.split("'")[1] for line in out1.splitlines() + out2.splitlines() if "Beginning flow run" in line]
    states = {r["name"]: (r["state_type"], r["state"]["message"]) for r in runs if r["name"] in names}
    assert [states[n][0] for n in names] == ["CRASHED", "CRASHED"]
    assert states[names[1]][1].startswith("interrupted at evaluate; ")

    rerun = start_flow(at_evaluate, prefect_server, *TINY, *outputs(at_evaluate), log=tmp_path / "log3.txt")
    log = finish_flow(rerun, tmp_path / "log3.txt")
    stages = {line.split()[0]: line.split()[1] for line in log.split("stages:\n", 1)[1].splitlines()[:5]}
    assert stages == {"generate": "reused", "window": "reused", "train": "reused", "evaluate": "recomputed",
                      "figures": "recomputed"}
