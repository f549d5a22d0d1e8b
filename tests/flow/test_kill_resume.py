"""Nothing lost: SIGKILL a run mid-training, start it again, and get the very same model."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.cli import finish_flow, run_dir_of, start_flow

pytestmark = [pytest.mark.slow, pytest.mark.server]

TINY = ["--n-points", "400", "--hidden-size", "16", "--epochs", "40", "--patience", "0", "--checkpoint-every", "2",
        "--batch-size", "8", "--device", "cpu", "--fig-dpi", "40", "--fig-width", "4", "--fig-height", "3"]


def outputs(base: Path) -> list[str]:
    return ["--output-dir", str(base / "artifacts"), "--data-dir", str(base / "data")]


def checkpoint_epoch(root: Path) -> int:
    """Epoch of the newest checkpoint under `root` (0 if none yet)."""
    for path in (root / "checkpoints").glob("train-*/checkpoint.pt"):
        try:
            return int(torch.load(path, map_location="cpu", weights_only=True)["state"]["epoch"])
        except (OSError, RuntimeError, EOFError, KeyError):
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


def state_dict(run_dir: Path) -> dict:
    return torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_bit_identical(tmp_path, prefect_server):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    killed.mkdir(), clean.mkdir()
    reference = start_flow(clean, prefect_server, *TINY, *outputs(clean), log=clean / "log.txt")
    victim = start_flow(killed, prefect_server, *TINY, *outputs(killed), log=killed / "log1.txt")
    wait_for_checkpoint(victim, killed / "artifacts", 4)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    at_kill = checkpoint_epoch(killed / "artifacts")
    assert 4 <= at_kill < 40, "killed too late to test resuming"
    assert not list((killed / "artifacts" / "cache" / "train").glob("*/manifest.json"))  # no model yet

    again = start_flow(killed, prefect_server, *TINY, *outputs(killed), log=killed / "log2.txt")
    log = finish_flow(again, killed / "log2.txt")
    assert "resuming from the checkpoint at epoch" in log
    resumed_dir = run_dir_of(log)
    clean_dir = run_dir_of(finish_flow(reference, clean / "log.txt"))

    a, b = state_dict(resumed_dir), state_dict(clean_dir)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert (resumed_dir / "history.json").read_text() == (clean_dir / "history.json").read_text()
    assert a["trained"]["epochs_run"] == 40 and a["trained"]["threads"] == 1  # threads is recorded with the model
