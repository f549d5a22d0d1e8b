"""Ctrl-C and SIGTERM at other stages than training (tests/flow/test_kill_resume.py has that one):
one line, status 130/143 within seconds, no traceback, the flow run marked crashed on the server,
and a rerun that reuses every stage that finished.

RNNFLOW_STALL (tasks/runtime/faults.py) holds the run in the stage, so the signal lands there.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.helpers.cli import finish_flow, start_flow
from tests.helpers.server import api_post

pytestmark = [pytest.mark.slow, pytest.mark.server]

TINY = ["--n-points", "240", "--hidden-size", "8", "--epochs", "2", "--device", "cpu", "--fig-dpi", "40",
        "--fig-width", "4", "--fig-height", "3"]


def stop_in(stage_entry: str, sig: signal.Signals, base: Path, server, log: Path) -> tuple[int, float, str]:
    """Run until the drill holds `stage_entry`, send `sig` to the run's process; (status, seconds it
    took to end, its output)."""
    env = {**server.env(), "RNNFLOW_STALL": stage_entry}
    proc = start_flow(base, server, *TINY, "--output-dir", str(base / "artifacts"), "--data-dir", str(base / "data"),
                      log=log, env=env)
    deadline = time.monotonic() + 240
    while "stalls here" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.1)
    sent = time.monotonic()
    proc.send_signal(sig)
    status = proc.wait(timeout=60)
    return status, time.monotonic() - sent, log.read_text()


def test_ctrl_c_at_generate_and_sigterm_at_evaluate_stop_at_once_and_the_rerun_resumes(tmp_path, prefect_server):
    status, took, out = stop_in("generate", signal.SIGINT, tmp_path, prefect_server, tmp_path / "log1.txt")
    assert (status, out.strip().splitlines()[-1]) == (
        130, "interrupted at generate; finished stages are kept, run the same command to resume")
    assert took < 10 and "Traceback" not in out and "KeyboardInterrupt" not in out

    status, took, out = stop_in("backtest", signal.SIGTERM, tmp_path, prefect_server, tmp_path / "log2.txt")
    assert (status, out.strip().splitlines()[-1]) == (
        143, "interrupted at evaluate; finished stages are kept, run the same command to resume")
    assert took < 10 and "Traceback" not in out
    assert not list((tmp_path / "artifacts" / "cache" / "backtest").glob("*/manifest.json"))

    runs = api_post(prefect_server, "flow_runs/filter", {"sort": "START_TIME_DESC", "limit": 20})
    names = [line.split("'")[1] for line in (tmp_path / "log1.txt").read_text().splitlines() + out.splitlines()
             if "Beginning flow run" in line]
    states = {r["name"]: (r["state_type"], r["state"]["message"]) for r in runs if r["name"] in names}
    assert [states[n][0] for n in names] == ["CRASHED", "CRASHED"]
    assert states[names[1]][1].startswith("interrupted at evaluate; ")

    rerun = start_flow(tmp_path, prefect_server, *TINY, "--output-dir", str(tmp_path / "artifacts"), "--data-dir",
                       str(tmp_path / "data"), log=tmp_path / "log3.txt")
    log = finish_flow(rerun, tmp_path / "log3.txt")
    stages = {line.split()[0]: line.split()[1] for line in log.split("stages:\n", 1)[1].splitlines()[:5]}
    assert stages == {"generate": "reused", "window": "reused", "train": "reused", "evaluate": "recomputed",
                      "figures": "recomputed"}
