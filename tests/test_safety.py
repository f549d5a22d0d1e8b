"""Never losing work, never writing outside the output root: paths, retries, stale locks."""

import os
import subprocess
import sys

import pytest
from prefect.states import Failed

from tasks import store
from tasks.config import PipelineConfig
from tasks.errors import InputError
from tasks.locks import ProcessFileLockManager, process_alive
from tasks.pipeline import RunLedger, write_run_dir
from tasks.retry import retry_transient_io
from tasks.train import checkpoint_path


def test_inside_accepts_paths_under_the_root(tmp_path):
    assert store.inside(tmp_path, "runs/a") == (tmp_path / "runs" / "a").resolve()
    assert store.inside(tmp_path, tmp_path / "x" / ".." / "y") == (tmp_path / "y").resolve()
    assert store.inside(tmp_path, ".") == tmp_path.resolve()


@pytest.mark.parametrize("bad", ["../evil", "runs/../../evil", "/etc/passwd"])
def test_inside_refuses_paths_that_escape(tmp_path, bad):
    with pytest.raises(InputError, match="outside the output root") as err:
        store.inside(tmp_path / "root", bad, field="run name")
    assert err.value.field == "run name"


def test_inside_refuses_a_symlink_out_of_the_root(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    with pytest.raises(InputError):
        store.inside(tmp_path / "root", "link/escaped")


def test_a_run_name_with_dots_cannot_write_outside_the_root(tmp_path):
    cfg = PipelineConfig.model_validate({"output": {"root": str(tmp_path / "artifacts")}})
    with pytest.raises(InputError, match="outside the output root"):
        write_run_dir(tmp_path / "artifacts" / "runs" / ".." / ".." / "evil", cfg, RunLedger(), {})
    assert not (tmp_path / "evil").exists()
    ok = write_run_dir(tmp_path / "artifacts" / "runs" / "rnn-1", cfg, RunLedger(), {})
    assert (ok / "config.json").is_file()


def test_checkpoint_paths_stay_under_the_root(tmp_path):
    assert checkpoint_path(str(tmp_path), "abc").parent == (tmp_path / "checkpoints" / "train-abc").resolve()
    with pytest.raises(InputError):
        checkpoint_path(str(tmp_path), "/../../../x")


def failed(exc):
    return Failed(data=exc)


@pytest.mark.parametrize(
    "exc, retried",
    [(OSError(5, "I/O error"), True), (PermissionError("locked"), True), (TimeoutError(), True),
     (InputError("value_column", "v", "no such column"), False), (ValueError("bad"), False),
     (RuntimeError("boom"), False)],
)
def test_only_transient_io_errors_are_retried(exc, retried):
    assert retry_transient_io(None, None, failed(exc)) is retried


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lock_left_by_a_killed_process_is_removed(tmp_path):
    pid = dead_pid()
    assert not process_alive(pid) and process_alive(os.getpid())
    mine = ProcessFileLockManager(tmp_path)
    stale = ProcessFileLockManager(tmp_path)
    stale._prefix = stale._prefix.rsplit(":", 2)[0] + f":{pid}:"  # as if taken by that process
    assert stale.acquire_lock("train-k", "holder-1")
    assert (tmp_path / "train-k.lock").is_file()
    assert not mine.is_locked("train-k")  # its process is gone: stale, removed
    assert not (tmp_path / "train-k.lock").exists()
    assert mine.acquire_lock("train-k", "holder-2", acquire_timeout=1)
    assert mine.is_lock_holder("train-k", "holder-2") and not mine.is_lock_holder("train-k", "holder-1")


def test_a_lock_of_a_live_process_is_respected(tmp_path):
    a, b = ProcessFileLockManager(tmp_path), ProcessFileLockManager(tmp_path)
    assert a.acquire_lock("k", "h1")
    assert b.is_locked("k")
    assert not b.acquire_lock("k", "h2", acquire_timeout=0.3)
    a.release_lock("k", "h1")
    assert b.acquire_lock("k", "h2", acquire_timeout=1)
