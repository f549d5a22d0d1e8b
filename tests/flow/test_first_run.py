"""A new user's first commands, through the real command line on a fresh Prefect home.

    - the default run, with no server configured, on a server that takes 22 s to start (longer
      than Prefect's own 20 s limit for its temporary server): it waits and completes;
    - a server that cannot start: one line and exit status 2, nothing written;
    - the edit-rerun loop: `server` starts a local server, later runs find it by themselves.

Each test moves Prefect's local port to a free one, so no server another process runs on 4200
is ever used.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flows.server import process_alive
from tests.helpers.cli import finished
from tests.helpers.server import FLOW_SCRIPT, REPO, free_port, healthy


# Loaded by every Python process that has this folder on PYTHONPATH: the Prefect server's process
# (`python -m prefect server start ...`) sleeps first, as a start on a very busy machine would.
SLOW_SERVER = """
import os, sys, time
if {"server", "start"} <= set(sys.orig_argv):
    open(os.environ["SLOW_SERVER_MARK"], "w").write("slept")
    time.sleep(float(os.environ["SLOW_SERVER_SECONDS"]))
"""
TINY = ["--epochs", "2", "--n-points", "240", "--hidden-size", "8", "--references", "none", "--fig-dpi", "40",
        "--device", "cpu"]


def fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A new user's environment: no Prefect settings but a fresh home, and a free local port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {"PREFECT_HOME": str(tmp_path / "prefect-home"), "PREFECT_SERVER_API_HOST": "127.0.0.1",
                  "PREFECT_SERVER_API_PORT": str(free_port()), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                  "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"} | extra


def cli(env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(FLOW_SCRIPT), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def outputs(tmp_path: Path) -> list[str]:
    return ["--output-dir", str(tmp_path / "artifacts"), "--data-dir", str(tmp_path / "data")]


@pytest.mark.server  # starts a real Prefect server of its own
def test_the_default_run_on_a_fresh_prefect_home_waits_for_a_slow_server_start(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_SERVER)
    mark = tmp_path / "slept"
    env = fresh_env(tmp_path, PYTHONPATH=str(tmp_path / "site"), SLOW_SERVER_MARK=str(mark),
                    SLOW_SERVER_SECONDS="22")
    res = cli(env, *outputs(tmp_path))  # the README's first command, with the outputs in tmp_path
    assert res.returncode == 0, res.stderr[-3000:]  # the tutorial's sine: its gate passes
    assert mark.read_text() == "slept"  # the server's start really was held up
    assert "starting a temporary server" in res.stderr  # one line said what it was waiting for
    out = res.stdout + res.stderr
    assert out.count("stages:") == 1 and out.count("result: ") == 1 and out.count("outputs: ") == 1
    assert "See https://" not in out and "Traceback" not in out and "View at" not in out
    assert res.stdout.strip().splitlines()[-1].startswith("outputs: ")
    assert ("settings: auto for the generated series (the tutorial's): --normalize none, --calibration 0, "
            "--search off, --cell rnn") in res.stdout
    run_dir = Path(res.stdout.strip().splitlines()[-1].split("outputs: ", 1)[1])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["epochs_run"] > 0 and metrics["config"]["model"]["cell"] == "rnn"


@pytest.mark.server  # starts a real Prefect server of its own
def test_a_server_that_cannot_start_is_one_line_and_exit_2(tmp_path):
    env = fresh_env(tmp_path, PREFECT_SERVER_DATABASE_CONNECTION_URL="sqlite+aiosqlite:////proc/no/prefect.db")
    res = cli(env, *TINY, *outputs(tmp_path))
    assert res.returncode == 2, res.stderr[-3000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [res.stderr.strip().splitlines()[-1]] and len(res.stderr.strip().splitlines()) <= 2
    assert errors[0].startswith("error: the temporary Prefect server exited with status ")
    assert "`python flows/rnn_flow.py server`" in errors[0] and "Traceback" not in res.stderr
    log = Path(errors[0].split("its log: ", 1)[1].split(")", 1)[0])
    assert log.is_file()  # kept, for the user to read
    log.unlink()
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "data").exists()


@pytest.mark.server  # starts a real Prefect server of its own
def test_server_keeps_a_local_server_that_later_runs_use_by_themselves(tmp_path):
    env = fresh_env(tmp_path)
    started = cli(env, "server")
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        state = json.loads((tmp_path / "prefect-home" / "rnnflow-server.json").read_text())
        url = state["url"]
        assert url == f"http://127.0.0.1:{env['PREFECT_SERVER_API_PORT']}/api" and healthy(url)
        assert started.stdout.startswith(f"Prefect server and UI running at {url[:-4]} (pid {state['pid']}")
        assert "already running" in cli(env, "server").stdout
        assert cli(env, "server", "status").stdout.startswith(f"a Prefect server answers at {url[:-4]}")

        first = cli(env, *TINY, *outputs(tmp_path))
        second = cli(env, *TINY, *outputs(tmp_path))
        for res in (first, second):
            assert finished(res.returncode, res.stdout), res.stderr[-3000:]
            assert f"prefect: using the server at {url[:-4]} (PREFECT_API_URL is unset)" in res.stderr
            assert "starting a temporary server" not in res.stderr
            assert f"\nui: {url[:-4]}/runs/flow-run/" in res.stdout  # its UI shows the run: the summary says where
        rows = [line.split() for line in second.stdout.splitlines() if line.startswith("  ")]
        assert {r[1] for r in rows} == {"reused"}
    finally:
        stopped = cli(env, "server", "stop")
    assert stopped.stdout.startswith(f"stopped the Prefect server at {url[:-4]}")
    assert not healthy(url) and not (tmp_path / "prefect-home" / "rnnflow-server.json").exists()
    assert cli(env, "server", "stop").stdout.startswith("no server started by")
    alive = process_alive(state["pid"])
    if alive:  # never leave it behind, even when the test fails
        os.killpg(state["pid"], signal.SIGKILL)
    assert not alive
