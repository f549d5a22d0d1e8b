"""SIGINT, SIGTERM and SIGHUP stop a command-line run within seconds, whatever it is doing.

    interrupted at train; finished stages are kept, run the same command to resume

The command line arms the handler (`arm`) before any work. On the first SIGINT (Ctrl-C),
SIGTERM (`timeout`, `kill`, Kubernetes, CI cancellation) or SIGHUP (the terminal or the ssh
connection closed; not under `nohup`, which ignores it) it writes that one line to stderr (if it
still can: a pipe's reader or the terminal may be gone), tells the Prefect server the flow run
crashed (bounded: REPORT_S), stops every process this one started (the temporary Prefect server,
Dask workers: SIGTERM, then SIGKILL after STOP_S), removes the files registered with
`remove_on_exit` (the temporary server's log), and leaves with status 128 + the signal number
(130, 143, 129) through `os._exit`. Nothing waits for a worker thread in the middle of a training
epoch or a statistical fit, and nothing needs to: every stage entry is published by one rename
of a complete directory and every file by one rename of a complete temp file
(tasks/runtime/store.py), so what was finished is on disk and what was not leaves only temp
files, which the next run sweeps before it reuses the rest.

Prefect's flow engine installs its own SIGTERM handler when a flow starts: it raises
TerminationSignal in the main thread, which then waits for the task runner's threads (a
statistical fit in one of them kept a run alive for 8 minutes). `Run.start` calls `rearm` so the
armed handler is the one in charge during the flow; Prefect restores it after the flow. A flow
run of a deployment (`serve`, a worker) is never armed and keeps Prefect's handling, which its
runner relies on to cancel runs.
"""

from __future__ import annotations

import contextvars
import os
import signal
import sys
import threading
from typing import Any

REPORT_S = 2.0  # at most this long to tell the server the flow run crashed
STOP_S = 3.0  # child processes get this long to exit on SIGTERM before SIGKILL

_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
_state: dict[str, Any] = {"armed": False, "stage": "start-up", "entries": set(), "flow_run": None, "stopping": False,
                          "leftovers": [], "signals": []}


def arm() -> bool:
    """Install the handler for SIGINT, SIGTERM and SIGHUP in this process (the main thread only;
    False elsewhere, where Python cannot install signal handlers). A SIGHUP this process was
    started ignoring (`nohup`) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        return False
    _state["signals"] = [sig for sig in _NAMES
                         if not (sig == signal.SIGHUP and signal.getsignal(sig) is signal.SIG_IGN)]
    for sig in _state["signals"]:
        signal.signal(sig, _handle)
    _state["armed"] = True
    return True


def armed() -> bool:
    """Did this process's command line arm the handler?"""
    return _state["armed"]


def stopping() -> bool:
    """Is this process stopping on a signal (its children stopped, os._exit next)?"""
    return _state["stopping"]


def rearm(flow_run_id: Any = None) -> None:
    """Inside a flow: put the armed handler back in charge (Prefect's flow engine replaced the
    SIGTERM one) and remember the flow run to mark crashed. Does nothing unless armed, or off
    the main thread."""
    if not _state["armed"] or threading.current_thread() is not threading.main_thread():
        return
    _state["flow_run"] = flow_run_id
    for sig in _state["signals"]:
        if signal.getsignal(sig) is not _handle:
            signal.signal(sig, _handle)


def remove_on_exit(path: os.PathLike | str) -> None:
    """Remove the file at `path` (if it is there) when this process leaves through `os._exit`
    (leave_now: a signal, a server gone), where atexit handlers never run: a temporary server's log."""
    _state["leftovers"].append(os.fspath(path))


def keep_on_exit(path: os.PathLike | str) -> None:
    """Undo `remove_on_exit(path)`: the file is worth keeping (a failed server start's log)."""
    _state["leftovers"] = [p for p in _state["leftovers"] if p != os.fspath(path)]


def _remove_leftovers() -> None:
    """Remove the files `remove_on_exit` named; one that is gone already is no error."""
    for path in _state["leftovers"]:
        try:
            os.unlink(path)
        except OSError:
            pass


def at_stage(stage: str, entry: str | None = None) -> None:
    """Say which pipeline stage the run is in now (the interrupt line names it); `entry`: the
    name of the stage's task (e.g. "backtest" for stage "evaluate")."""
    _state["stage"] = stage
    if entry:
        _state["entries"].add(entry)


def current_stage() -> str:
    """The stage the interrupt line names: a task of its own running in the main thread (the
    promotion), else the stage the run said last."""
    context = sys.modules.get("prefect.context")  # never imported here: that alone would take seconds
    try:
        ctx = context.TaskRunContext.get() if context is not None else None
    except Exception:  # not usable: the stage the run said
        ctx = None
    if ctx is not None and ctx.task.name not in _state["entries"]:
        return ctx.task.name
    return _state["stage"]


def line(stage: str) -> str:
    """The one line an interrupt prints."""
    return f"interrupted at {stage}; finished stages are kept, run the same command to resume"


def _handle(signum: int, frame: Any) -> None:
    for sig in _state["signals"]:  # a second Ctrl-C while stopping changes nothing
        signal.signal(sig, signal.SIG_IGN)
    _state["stopping"] = True
    try:  # nothing here may keep the process from stopping: an exception would be raised in the main
        # thread instead, and the run would go on (a fit in a runner thread for minutes)
        stage = current_stage()
        progress = sys.modules.get("tasks.runtime.progress")  # a live display: erased, the cursor shown again
        erase = progress.abandon() if progress is not None else ""
        try:  # on a terminal the line starts on a line of its own (after the echoed ^C); in a log, no blank line
            os.write(2, f"{erase or (chr(10) if os.isatty(2) else '')}{line(stage)}\n".encode())
        except OSError:  # stderr is gone: `... | tee log` on Ctrl-C, where the shell stops tee as well
            pass
        _report_crash(f"{line(stage)} ({_NAMES.get(signum, signum)})")
    finally:
        leave_now(128 + signum)


def leave_now(status: int) -> None:
    """Leave this process at once with `status` (os._exit: no atexit handler, no waiting for
    threads): every process it started stopped first (stop_children), the files `remove_on_exit`
    named removed, stdout and stderr flushed where they still can be."""
    try:
        stop_children()
        _remove_leftovers()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # a pipe whose reader is gone
                pass
    finally:
        os._exit(status)


def _report_crash(message: str) -> None:
    """Tell the API the flow run crashed, in a daemon thread given REPORT_S (the server may be
    gone, or be the temporary one about to stop)."""
    flow_run = _state["flow_run"]
    if flow_run is None:
        return
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:  # never start Prefect's own ephemeral server for this
        return

    def report() -> None:
        try:
            from prefect.client.orchestration import get_client
            from prefect.states import Crashed

            with get_client(sync_client=True) as client:
                client.set_flow_run_state(flow_run, Crashed(message=message), force=True)
        except Exception:
            pass

    # the thread sees this one's settings (the API URL the command chose lives in a context variable)
    t = threading.Thread(target=contextvars.copy_context().run, args=(report,), name="rnnflow-interrupt-report",
                         daemon=True)
    t.start()
    t.join(REPORT_S)


def stop_children(wait_s: float = STOP_S) -> list[int]:
    """SIGTERM every process this one started (and their descendants, and the process group of
    any that leads one: the temporary server runs in a session of its own), SIGKILL what is left
    after `wait_s`. Returns the pids signalled."""
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    leaders = []
    for child in children:
        try:
            if os.getpgid(child.pid) == child.pid:
                leaders.append(child.pid)
        except OSError:
            continue
    for pgid in leaders:
        _signal_group(pgid, signal.SIGTERM)
    for child in children:
        try:
            child.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(children, timeout=wait_s)
    for pgid in leaders:
        _signal_group(pgid, signal.SIGKILL)
    for child in alive:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=1.0)
    return [c.pid for c in children]


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass
