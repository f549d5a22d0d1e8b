"""SIGINT/SIGTERM/SIGHUP stop a run within seconds, even inside a statistical fit, and leave no process:
real signals to real processes (tasks/runtime/interrupt.py, flows/server.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import psutil

ROOT = Path(__file__).resolve().parents[2]

# A run's shape: a child process in a session of its own (as the temporary server is), then a
# statsforecast fit (AutoARIMA, season 24, 500 origins: minutes) in a runner thread while the main
# thread waits for it, as Run.map does.
FIT = (
    "import subprocess, sys, numpy as np\n"
    "from concurrent.futures import ThreadPoolExecutor, wait\n"
    "from tasks.runtime import interrupt\n"
    "from tasks.components.references import cross_validation\n"
    "import statsforecast.models  # imported here: the signal lands in the fit, not in an import\n"
    "interrupt.arm()\n"
    "interrupt.at_stage('evaluate', 'backtest')\n"
    "for name in ('server.log', 'kept.log'):  # as flows/server.py registers a temporary server's log\n"
    "    open(sys.argv[1] + '/' + name, 'w').close()\n"
    "    interrupt.remove_on_exit(sys.argv[1] + '/' + name)\n"
    "interrupt.keep_on_exit(sys.argv[1] + '/kept.log')\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True)\n"
    "y = 10 + np.sin(np.arange(3000) * 2 * np.pi / 24) * 3 + np.random.default_rng(0).normal(0, 0.05, 3000).cumsum()\n"
    "with ThreadPoolExecutor(1) as pool:\n"
    "    fit = pool.submit(cross_validation, [y], 'arima', 24, 1, 500)\n"
    "    print(child.pid, flush=True)\n"
    "    wait([fit])\n"
    "print('finished', flush=True)\n"
)


@contextlib.contextmanager
def fit_process(tmp_path: Path, merge_output: bool = False, ignore_hangup: bool = False):
    """FIT in a process of its own session (its files in `tmp_path`), yields (the process, its
    child's pid) once the fit runs; killed at the end if still running. merge_output: stderr
    into the stdout pipe; ignore_hangup: started under `nohup` (SIGHUP ignored)."""
    def preexec() -> None:
        if ignore_hangup:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    proc = subprocess.Popen([sys.executable, "-c", FIT, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT if merge_output else subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=preexec)
    try:
        child = int(proc.stdout.readline())
        time.sleep(2.0)  # well inside the fit (it takes minutes)
        assert proc.poll() is None
        yield proc, child
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def assert_stopped(proc: subprocess.Popen, child: int, tmp_path: Path, status: int, sent: float) -> None:
    """Stopped within seconds with `status`, its child gone, the files registered for removal
    removed and the one kept again kept."""
    assert proc.wait(timeout=30) == status
    assert time.monotonic() - sent < 10
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.log"]


def test_sigterm_in_a_statistical_fit_ends_the_run_at_once_with_one_line_and_no_child_left(tmp_path):
    """SIGTERM (Ctrl-C's SIGINT takes the same path: tests/flow/test_signals.py) while a runner
    thread is deep in a statsforecast fit that takes minutes; the files registered for removal
    (a temporary server's log) are gone, those kept again are not."""
    with fit_process(tmp_path) as (proc, child):
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert_stopped(proc, child, tmp_path, 143, sent)
        assert "finished" not in out
        assert err == "interrupted at evaluate; finished stages are kept, run the same command to resume\n"  # no blank line


def test_sigterm_stops_the_run_when_its_output_pipe_is_gone(tmp_path):
    """`python flows/rnn_flow.py ... 2>&1 | tee run.log` and Ctrl-C: the shell stops tee too, and
    when tee is gone first the interrupt line cannot be written (EPIPE). The run still stops at
    once: before, the failed write raised in the main thread instead and the fit went on."""
    with fit_process(tmp_path, merge_output=True) as (proc, child):
        proc.stdout.close()  # the reader is gone: stdout and stderr are a broken pipe
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert_stopped(proc, child, tmp_path, 143, sent)


def test_sighup_stops_the_run_unless_it_was_started_under_nohup(tmp_path):
    """The terminal or the ssh connection closing (SIGHUP) stops a run as SIGTERM does, with
    status 129; under `nohup` (SIGHUP ignored from the start) the run goes on."""
    with fit_process(tmp_path) as (proc, child):
        sent = time.monotonic()
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=30)
        assert_stopped(proc, child, tmp_path, 129, sent)
        assert err.strip().splitlines() == [
            "interrupted at evaluate; finished stages are kept, run the same command to resume"]
    with fit_process(tmp_path, ignore_hangup=True) as (proc, child):
        proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert proc.poll() is None  # nohup: still fitting
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert_stopped(proc, child, tmp_path, 143, sent)


# A process that starts a child tied to it (as the temporary server is), prints the child's pid,
# then waits to be killed.
TIED = (
    "import subprocess, sys, time\n"
    "from flows.server import _die_with\n"
    "import os\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True,\n"
    "                         preexec_fn=_die_with(os.getpid()))\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_temporary_servers_process_dies_with_a_run_killed_by_sigkill():
    proc = subprocess.Popen([sys.executable, "-c", TIED], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    assert psutil.Process(child).ppid() == proc.pid
    proc.kill()
    proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the tied child outlived its parent"
        time.sleep(0.05)


PTY_PROBE = """
import os, signal, time
from tasks.runtime import interrupt, progress
interrupt.arm()
with progress.display():  # stderr is a terminal: rich's live display, which hides the cursor
    progress.begin("train", 8, building=8)
    progress.item("train", "gru-64 L24 seed 42", 3, 300, "epoch")
    time.sleep(1.0)  # a few redraws
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(10)
"""


def test_an_interrupt_on_a_terminal_erases_the_live_display_and_shows_the_cursor_again():
    """Ctrl-C during a live display: the handler leaves through os._exit, so rich never stops it;
    the interrupt line must come after the display is erased and the cursor shown again."""
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", PTY_PROBE], stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    said = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the probe left: the terminal is closed
            break
        if not chunk:
            break
        said += chunk
    os.close(master)
    assert proc.wait(timeout=60) == 130
    text = said.decode(errors="replace")
    assert "\x1b[?25l" in text, "the live display never started (nothing to restore)"
    end = text.rindex("interrupted at ")
    assert text.rfind("\x1b[?25h") > text.rfind("\x1b[?25l") and text.rfind("\x1b[?25h") < end
    assert "gru-64" not in text[end:]  # no redraw after the line
