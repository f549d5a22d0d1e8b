"""Nothing lost to what production does to a run mid-training: a SIGTERM, a damaged checkpoint, a
crashed Prefect server. Real processes, real signals, real files, side by side with one undisturbed
run of the same settings that every outcome must equal bit for bit:

- stopped: SIGTERM to the run's process alone (as `timeout`, Kubernetes and CI cancellation send
  it), on a temporary server of its own (the default without a server). It ends within seconds
  with one line and status 143, leaving no process behind, neither in its process group nor the
  server it started. Its newest checkpoint then gets one flipped byte; the rerun finds it damaged,
  resumes from the previous one and ends identical.
- outlived: the server that `python flows/rnn_flow.py server` started is SIGKILLed mid-training.
  The run ends with every output on disk, identical, says in one line what the server did not
  record, and does not hang; `server` then starts again on the same port (its closing sockets do
  not refuse it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from tasks.train import load_checkpoint
from tests.helpers.cli import finish_flow, group_members, run_dir_of, start_flow
from tests.helpers.server import FLOW_SCRIPT, REPO, healthy, temporary_server_env


TINY = ["--n-points", "400", "--hidden-size", "16", "--epochs", "30", "--patience", "0", "--checkpoint-every", "2",
        "--batch-size", "8", "--references", "none", "--device", "cpu", "--fig-dpi", "40", "--fig-width", "4",
        "--fig-height", "3", "--verbose"]  # --verbose: the stages' log lines (the resume's) on the console


def outputs(base: Path) -> list[str]:
    return ["--output-dir", str(base / "artifacts"), "--data-dir", str(base / "data")]


def checkpoint_epoch(root: Path) -> int:
    """Epoch of the newest checkpoint under `root` (0 if none yet)."""
    for path in (root / "checkpoints").glob("train-*/checkpoint.pt"):
        try:
            return int(load_checkpoint(path)["state"]["epoch"])
        except (OSError, TypeError, KeyError):
            return 0  # replaced while we read it: try again
    return 0


def wait_for_checkpoint(proc, root: Path, epoch: int, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = checkpoint_epoch(root)
        if seen >= epoch:
            return seen
        assert proc.poll() is None, "the run ended before its first checkpoints"
        time.sleep(0.02)
    pytest.fail(f"no checkpoint at epoch >= {epoch} within {timeout} s")


def server_command(env: dict[str, str], *args: str, wait: bool = True):
    cmd = [sys.executable, str(FLOW_SCRIPT), "server", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def assert_identical(run_dir: Path, reference: Path) -> None:
    a, b = (torch.load(d / "model.pt", map_location="cpu", weights_only=True) for d in (run_dir, reference))
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["trained"]["epochs_run"] == 30 and a["trained"]["threads"] == 1  # threads is recorded with the model
    assert (run_dir / "history.json").read_text() == (reference / "history.json").read_text()
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"] == json.loads(
        (reference / "metrics.json").read_text())["metrics"]


def test_a_stopped_run_and_a_run_that_lost_its_server_end_bit_identical_to_an_undisturbed_one(
        tmp_path, prefect_server):
    stopped, outlived, clean = (tmp_path / d for d in ("stopped", "outlived", "clean"))
    for d in (stopped, outlived, clean):
        d.mkdir()
    # the outlived run's client gives up a call after one retry, not five: the same path, a shorter test
    own = temporary_server_env(prefect_server, tmp_path / "own-home", PREFECT_CLIENT_MAX_RETRIES="1")
    started = server_command(own, "--port", own["PREFECT_SERVER_API_PORT"])
    assert started.returncode == 0, started.stderr
    state = json.loads((tmp_path / "own-home" / "rnnflow-server.json").read_text())
    try:
        survivor = start_flow(outlived, prefect_server, *TINY, *outputs(outlived), log=outlived / "log.txt",
                              env=own)  # PREFECT_API_URL unset: it finds the server `server` started
        reference = start_flow(clean, prefect_server, *TINY, *outputs(clean), log=clean / "log.txt")
        victim = start_flow(stopped, prefect_server, *TINY, *outputs(stopped), log=stopped / "log1.txt",
                            env=temporary_server_env(prefect_server, tmp_path / "home"))

        # outlived: the server crashes mid-training (its run started first: its server was up)
        wait_for_checkpoint(survivor, outlived / "artifacts", 4)
        os.kill(state["pid"], signal.SIGKILL)
        crashed = time.monotonic()
        assert not list((outlived / "artifacts" / "cache" / "train").glob("*/manifest.json"))  # mid-training

        # stopped: SIGTERM mid-training
        wait_for_checkpoint(victim, stopped / "artifacts", 4)
        children = psutil.Process(victim.pid).children(recursive=True)
        assert any("server" in " ".join(p.cmdline()) for p in children), "no temporary server was started"
        sent = time.monotonic()
        victim.send_signal(signal.SIGTERM)  # the run's process alone
        assert victim.wait(timeout=30) == 143
        assert time.monotonic() - sent < 10
        assert (stopped / "log1.txt").read_text().strip().splitlines()[-1] == (
            "interrupted at train; finished stages are kept, run the same command to resume")
        time.sleep(0.5)
        assert group_members(victim.pid) == []
        assert [p.pid for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
        at_stop = checkpoint_epoch(stopped / "artifacts")
        assert 4 <= at_stop < 30, "stopped too late to test resuming"
        assert not list((stopped / "artifacts" / "cache" / "train").glob("*/manifest.json"))  # no model yet
        (newest,) = (stopped / "artifacts" / "checkpoints").glob("train-*/checkpoint.pt")
        data = bytearray(newest.read_bytes())
        data[-200] ^= 0x01  # one flipped byte in the weights' bytes
        newest.write_bytes(bytes(data))

        resumed = start_flow(stopped, prefect_server, *TINY, *outputs(stopped), log=stopped / "log2.txt")
        log = finish_flow(survivor, outlived / "log.txt", timeout=240)
        assert time.monotonic() - crashed < 180  # no hang
        lines = log.strip().splitlines()
        ui = state["url"].removesuffix("/api")
        assert lines[0] == f"prefect: using the server at {ui} (PREFECT_API_URL is unset)"
        assert lines[-1].startswith(f"prefect: the server at {state['url']} did not answer from ")
        assert "not recorded: the flow run's final state" in lines[-1]
        assert lines[-1].endswith("the outputs on disk are complete")
        assert "Traceback" not in log and "Error logging to API" not in log and "Unable to connect" not in log
        restart = server_command(own, wait=False)  # no --port: where it was

        reference_dir = run_dir_of(finish_flow(reference, clean / "log.txt"))
        assert_identical(run_dir_of(log), reference_dir)
        log2 = finish_flow(resumed, stopped / "log2.txt")
        assert "is unusable (its sha256 does not match its content); training resumes from the previous" in log2
        assert f"resuming from the checkpoint at epoch {at_stop - 2}" in log2
        (train_line,) = [ln for ln in log2.splitlines() if ln.strip().startswith("train ")]
        assert "resumes from the checkpoint a previous run left" in train_line  # not just "first run"
        assert_identical(run_dir_of(log2), reference_dir)

        out, err = restart.communicate(timeout=300)
        assert restart.returncode == 0, err
        assert f"running at {ui} " in out
        assert healthy(state["url"])
    finally:
        server_command(own, "stop")
