"""Never losing work, never writing outside the output root: paths, retries, locks of dead runs."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import Timeout
from prefect.states import Failed

from tasks.config import PipelineConfig
from tasks.errors import InputError
from tasks.runtime import store
from tasks.runtime.caching import StagePlan
from tasks.runtime.ledger import write_run_dir
from tasks.runtime.retry import retry_transient_io
from tasks.runtime.stages import Paths, Run, build, outcome_reason
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
    cfg = PipelineConfig.model_validate({"output": {"root": str(tmp_path / "artifacts"),
                                                    "data_dir": str(tmp_path / "data")}})

    def run(name):
        return Run(name, cfg, cfg, Paths.from_config(cfg))

    with pytest.raises(InputError, match="outside the output root"):
        write_run_dir(run("../../evil"), {})
    assert not (tmp_path / "evil").exists()
    ok = write_run_dir(run("rnn-1"), {})
    assert (ok / "config.json").is_file()


def test_checkpoint_paths_stay_under_the_root(tmp_path):
    assert checkpoint_path(tmp_path, "abc").parent == (tmp_path / "checkpoints" / "train-abc").resolve()
    with pytest.raises(InputError):
        checkpoint_path(tmp_path, "/../../../x")


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


HOLD_LOCK = (
    "import sys, time\n"
    "from tasks.runtime import store\n"
    "with store.lock(sys.argv[1], 'train', 'k'):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(600)\n"
)


def test_the_lock_of_a_killed_builder_does_not_block_the_next_run(tmp_path):
    root = Path(__file__).resolve().parents[2]
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path)], cwd=root, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(Timeout):  # held by a live process: not ours to take
        store.lock(tmp_path, "train", "k").acquire(timeout=0.3)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    started = time.monotonic()
    ref, built = store.build_entry(tmp_path, "train", "k", {}, lambda w: w.path("a").write_text("x"))
    assert built and store.verify(ref.path) is None and time.monotonic() - started < 30


BUILD_SLOWLY = (
    "import sys, time\n"
    "from tasks.runtime import store\n"
    "def compute(w):\n"
    "    w.path('a').write_text('built by the other run')\n"
    "    print('building', flush=True)\n"
    "    time.sleep(float(sys.argv[2]))\n"
    "store.build_entry(sys.argv[1], 'train', 'k', {}, compute)\n"
)


def test_a_run_that_waited_for_a_concurrent_builder_reuses_its_entry_and_says_so(tmp_path):
    root = Path(__file__).resolve().parents[2]
    other = subprocess.Popen([sys.executable, "-c", BUILD_SLOWLY, str(tmp_path), "1.5"], cwd=root,
                             stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "building"  # the other process holds the entry's lock
    plan = StagePlan(stage="train", key="k", base=str(tmp_path), run=True, reason="no cached output (first run)",
                     key_inputs={})
    ours = []
    state = build(plan, lambda w: ours.append(1))  # waits for the lock, then finds the finished entry
    assert other.wait(timeout=60) == 0
    assert ours == [] and state.name == "Cached"
    assert (tmp_path / "cache" / "train" / "k" / "a").read_text() == "built by the other run"
    assert outcome_reason(plan.reason, planned_run=plan.run, reused=True) == (
        "built by a concurrent run while this one waited")
    assert outcome_reason("inputs unchanged", planned_run=False, reused=True) == "inputs unchanged"
    assert outcome_reason("inputs unchanged", planned_run=False, reused=False) == (
        "the cached output vanished after planning")


DIE_WHILE_BUILDING = (
    "import sys, time\n"
    "from tasks.runtime import store\n"
    "def compute(w):\n"
    "    w.path('half.bin').write_bytes(b'half')\n"
    "    print(w.dir, flush=True)\n"
    "    time.sleep(600)\n"
    "store.build_entry(sys.argv[1], 'train', sys.argv[2], {}, compute)\n"
)


def test_the_temp_dir_of_a_builder_killed_mid_entry_is_removed_by_a_later_run_of_another_key(tmp_path):
    root = Path(__file__).resolve().parents[2]
    victim = subprocess.Popen([sys.executable, "-c", DIE_WHILE_BUILDING, str(tmp_path), "old"], cwd=root,
                              stdout=subprocess.PIPE, text=True)
    work = Path(victim.stdout.readline().strip())
    assert work.name.startswith(".tmp-old-") and (work / "half.bin").is_file()
    assert store.remove_dead_work(tmp_path, "train") == []  # alive: its work stays
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert work.is_dir()  # a kill runs no cleanup
    ref, built = store.build_entry(tmp_path, "train", "new", {}, lambda w: w.path("a").write_text("x"))
    assert built and store.verify(ref.path) is None
    assert not work.exists() and not list((tmp_path / "cache" / "train").glob(".tmp-*"))
