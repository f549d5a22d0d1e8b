"""Statistical work off Python's GIL: one child process runs statsforecast's fits and forecasts.

statsforecast's models are numba code that holds the GIL for as long as a fit runs. On the local
runner a search trains its networks in threads beside its statistical members, so while AutoETS
fitted, the networks all but stopped: measured here, a GRU training thread made 2.4 steps a
second beside AutoETS on 40 monthly series, against 101 alone, and on a panel of 145 monthly
series (issue 26's cost benchmark) the networks' wave waited out about 110 s of AutoETS and
AutoTheta before it trained at speed. A child process has a GIL of its own.

    prestart()     a worker now, importing statsforecast and running its first-use code before
                   any call arrives (a local run's first entry to compute: Run.offload_statistics)
    install()      from then until the run leaves: references.py's heavy calls go to the
                   workers; uninstall() then
    widen(n)       allow up to n workers (a search with many fits: two models fit side by side)
    run            fn(*args) in the worker of a key (a model's name): its value, or its exception
                   raised here; one worker (Pool), or up to `widen`'s, started only when one is busy

A worker starts on prestart() or on the first call that finds no idle one (`python -m
tasks.runtime.offload`: numpy, pandas and statsforecast, never torch or Prefect), serves one call
at a time and lives as long as this process: it is killed at exit (`Worker.stop`), ends by itself
when its input closes, and an interrupt stops it with the run's other children
(tasks.runtime.interrupt.stop_children). Its fits are kept there (references._FITS), so the
validation stage's fit serves the backtest as before.

What it computes is what the same call computes in this process, to the bit: the same code on the
same arrays. If the worker cannot start or dies, the call runs here instead (logged once), after
the first-use code of statsforecast has run in one thread (runners.warm_up_statistics).

Protocol: pickled (module, function name, args) and (ok, value or exception) frames, each after an
8-byte little-endian length, over the child's stdin and stdout.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]  # the directory holding the `tasks` package
_LENGTH = struct.Struct("<Q")


def _send(stream, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the statistical worker's stream ended")
    (n,) = _LENGTH.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("the statistical worker's stream ended mid-frame")
    return pickle.loads(data)


class WorkerGone(RuntimeError):
    """The worker process could not be started, or ended before it answered."""


class Worker:
    """One child process serving calls of module-level functions (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None

    def _start(self, warm: bool = False) -> subprocess.Popen:
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        return subprocess.Popen([sys.executable, "-m", "tasks.runtime.offload", *(["--warm"] if warm else [])],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT,
                                env=env)

    def prestart(self) -> None:
        """Start the process now, importing statsforecast and running its first-use code before its
        first call arrives."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start(warm=True)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in the worker: its value, or the exception it raised (raised here). Raises
        WorkerGone when the worker cannot start or ends before answering (nothing is retried)."""
        with self._lock:
            try:
                if self._proc is None or self._proc.poll() is not None:
                    self._proc = self._start()
                _send(self._proc.stdin, (fn.__module__, fn.__qualname__, args))
                ok, value = _receive(self._proc.stdout)
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                self._proc = None
                raise WorkerGone(f"the statistical worker ended ({type(exc).__name__}: {exc})") from exc
        if ok:
            return value
        raise value

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs, else None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def stop(self) -> None:
        """End the worker at once (at this process's exit: no call is in flight then, and it holds
        nothing but fits in memory, so nobody waits for its interpreter's teardown)."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        proc.kill()
        proc.wait()


class Pool:
    """Up to `size` workers. A call names a key (a model's name); the key's first call takes an idle
    worker, starting one only when every started worker is busy, and each later call of that key
    goes to the same worker, whose kept fits it may reuse. So a run whose models are asked one at a
    time starts one worker, and two statistical members asked at once (AutoETS and AutoTheta on a panel) fit side by side
    instead of the second one's task holding a runner thread while it waits."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.workers: list[Worker] = []
        self._home: dict[str, Worker] = {}
        self._busy: dict[Worker, int] = {}
        self._lock = threading.Lock()

    def _worker_for(self, key: str) -> Worker:
        with self._lock:
            w = self._home.get(key)
            if w is None:
                idle = [x for x in self.workers if not self._busy.get(x)]
                if idle:
                    w = idle[0]
                elif len(self.workers) < self.size:
                    w = Worker()
                    self.workers.append(w)
                else:
                    w = min(self.workers, key=lambda x: self._busy.get(x, 0))
                self._home[key] = w
            self._busy[w] = self._busy.get(w, 0) + 1
            return w

    def call(self, key: str, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in the worker of `key` (Worker.call)."""
        w = self._worker_for(key)
        try:
            return w.call(fn, *args)
        finally:
            with self._lock:
                self._busy[w] -= 1

    def prestart(self) -> None:
        """Start the first worker now, if none runs (Worker.prestart)."""
        with self._lock:
            if not self.workers:
                self.workers.append(Worker())
            w = self.workers[0]
        w.prestart()

    def widen(self, size: int) -> None:
        """Allow up to `size` workers from now on (never fewer than now)."""
        with self._lock:
            self.size = max(self.size, size)

    def stop(self) -> None:
        """Stop every worker (Worker.stop)."""
        for w in list(self.workers):
            w.stop()


_pool = Pool(size=1)  # a second worker costs a second import of statsforecast: only where widen() says
atexit.register(_pool.stop)
_installed = 0
_install_lock = threading.Lock()
_fell_back = threading.Event()


def run(fn: Callable[..., Any], *args: Any, key: str = "") -> Any:
    """fn(*args) in the worker of `key` (Pool.call); here when the worker is gone (logged once a
    process). While an interrupt stops this process (its children first, then os._exit), a call
    neither starts a worker nor fits here: it waits for the process to leave, quietly."""
    from tasks.runtime import interrupt

    try:
        if interrupt.stopping():
            raise WorkerGone("the run is stopping")
        return _pool.call(key, fn, *args)
    except WorkerGone as exc:
        if interrupt.stopping():
            threading.Event().wait()
        if not _fell_back.is_set():
            _fell_back.set()
            log.warning("%s; statistical fits run in this process instead", exc)
        from tasks.runtime.runners import warm_up_statistics

        warm_up_statistics()
        return fn(*args)


def install() -> None:
    """Send references.py's statistical work to the worker until the matching uninstall()."""
    global _installed
    from tasks.components import references

    with _install_lock:
        _installed += 1
        references.offload = run


def uninstall() -> None:
    """Undo one install(); the last one makes references.py compute in this process again (the
    worker stays, idle, for the next run of this process)."""
    global _installed
    from tasks.components import references

    with _install_lock:
        _installed = max(0, _installed - 1)
        if not _installed:
            references.offload = None


def serve(stdin=None, stdout=None) -> None:
    """The worker's loop: answer each call frame until the input ends."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must never land in the protocol's stream
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops this one
    while True:
        try:
            module, name, args = _receive(stdin)
        except EOFError:
            return
        try:
            fn = importlib.import_module(module)
            for part in name.split("."):
                fn = getattr(fn, part)
            reply = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 (every failure goes back to the caller)
            reply = (False, exc)
        try:
            _send(stdout, reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an exception that does not pickle
            _send(stdout, (False, RuntimeError(f"{type(reply[1]).__name__}: {reply[1]} ({exc})")))


def prestart() -> None:
    """Start a statistical worker now (Pool.prestart)."""
    _pool.prestart()


def widen(size: int) -> None:
    """Allow up to `size` workers from now on (a search whose fits take long enough to be worth a
    second import of statsforecast: flows/search.py SECOND_WORKER_FROM; Pool.widen)."""
    _pool.widen(size)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # from the start: a Ctrl-C during --warm is the parent's too
    if "--warm" in sys.argv[1:]:
        from tasks.runtime.runners import warm_up_statistics

        warm_up_statistics()
    serve()
