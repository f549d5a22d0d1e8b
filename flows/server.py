"""Which Prefect server a command talks to, and the local server this project starts and stops.

    python flows/rnn_flow.py server            start a local server + UI for the session (detached)
    python flows/rnn_flow.py server status     is it running, where
    python flows/rnn_flow.py server stop       stop it

A run (or `serve`) uses, in this order:

  1. the API URL Prefect is configured with (PREFECT_API_URL, or the active profile);
  2. a server answering on this machine: the one `server` started (its URL is kept in
     <PREFECT_HOME>/rnnflow-server.json), else one at Prefect's local address (the settings
     server.api.host and server.api.port, 127.0.0.1:4200 unless changed), e.g. `prefect server start`;
  3. a temporary server started for this run and stopped after it (`serve` refuses instead: a
     schedule dies with its server).

Both kinds of server are `prefect server start` in a process of their own, waited on for as long
as the process lives and has not used up `STARTUP_LIMIT_S`: the first start on a new Prefect home
creates the database, which takes 20 s or more on a busy machine (Prefect's own temporary server
gives up after `server.ephemeral.startup_timeout_seconds`, 20 s by default). A server that cannot
start raises ServerError, which the command line prints as one line.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "rnnflow-server.json"  # the session server, under PREFECT_HOME
STARTUP_LIMIT_S = 900.0  # fits a first start (database migrations) on a loaded 2-core machine, with room to spare
NOTICE_AFTER_S = 3.0  # say what is happening when a start takes longer than this
STOP_WAIT_S = 10.0
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # local checks skip any proxy
HINT = ("start one with `python flows/rnn_flow.py server` (or `prefect server start`), "
        "or point PREFECT_API_URL at a running one")


TIP = "; `python flows/rnn_flow.py server` keeps one running between runs"


class ServerError(Exception):
    """No Prefect server to talk to: one line saying why and what to do."""


# --------------------------------------------------------------------------- probes


def server_answers(api_url: str, timeout: float = 0.3) -> bool:
    """True if a Prefect API at `api_url` says it is healthy (GET <api_url>/health -> 200)."""
    try:
        with _DIRECT.open(f"{api_url.rstrip('/')}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (OSError, ValueError):
        return False


def server_reachable(api_url: str, timeout: float = 3.0) -> bool:
    """True if anything answers HTTP at `api_url` (an auth error from Prefect Cloud counts)."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_free(host: str, port: int) -> bool:
    """Can a server listen on host:port now? Bound with SO_REUSEADDR, as uvicorn binds: the
    TIME_WAIT sockets a crashed server leaves for a minute do not count, a listener does."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def listener_of(port: int) -> str | None:
    """The program listening on TCP `port` ("pid 812, nginx"), when the system says (psutil;
    None when it does not, e.g. another user's process without the right to look)."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            try:
                return f"pid {c.pid}, {psutil.Process(c.pid).name()}"
            except psutil.Error:
                return f"pid {c.pid}"
    return None


# --------------------------------------------------------------------------- settings


def prefect_home() -> Path:
    from prefect.settings import get_current_settings

    return Path(get_current_settings().home).expanduser()


def local_address() -> tuple[str, int]:
    """Prefect's local server address from its settings (server.api.host, server.api.port)."""
    from prefect.settings import get_current_settings

    api = get_current_settings().server.api
    host = api.host if api.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    return host, int(api.port)


def api_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/api"


def host_port(url: str) -> tuple[str, int] | None:
    """(host, port) of an http URL with an explicit port, else None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return (parts.hostname, parts.port) if parts.hostname and parts.port else None
    except ValueError:
        return None


# --------------------------------------------------------------------------- starting and stopping


@dataclass
class Server:
    """A `prefect server start` process this project started: where it answers and its log."""

    url: str  # the API URL
    pid: int
    log: str
    process: subprocess.Popen | None = None  # only in the process that started it

    @property
    def ui(self) -> str:
        return self.url.removesuffix("/api")


def spawn_server(host: str, port: int, log: Path, ui: bool = True, tied: bool = False) -> Server:
    """Start `prefect server start` on host:port in a session of its own, output to `log`.

    tied: the server is this process's alone (a temporary one): on Linux it gets SIGTERM when
    this process dies, however it dies (SIGKILL, the OOM killer), instead of living on with
    parent 1. (A SIGINT or SIGTERM of the run stops it through tasks/runtime/interrupt.py, a
    normal exit through atexit.)
    """
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port),
           "--ui" if ui else "--no-ui"]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with(os.getpid()) if tied else None)
    return Server(api_url(host, port), proc.pid, str(log), proc)


def _die_with(parent: int) -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when `parent` dies (prctl PR_SET_PDEATHSIG);
    None where there is no prctl. A parent already gone before the request ends the child."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def request() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return request


def wait_until_healthy(server: Server, what: str, limit_s: float = STARTUP_LIMIT_S) -> None:
    """Wait while the server's process lives and `limit_s` has not passed; ServerError otherwise.

    After NOTICE_AFTER_S one line on stderr says what is being waited for.
    """
    started, noticed = time.monotonic(), False
    while not server_answers(server.url, timeout=2.0):
        waited = time.monotonic() - started
        code = server.process.poll() if server.process else None
        if code is not None:
            raise ServerError(f"the {what} Prefect server exited with status {code} while starting "
                              f"(its log: {server.log}); {HINT}")
        if waited > limit_s:
            stop_process(server.pid)
            raise ServerError(f"the {what} Prefect server did not answer within {limit_s:.0f} s "
                              f"(its log: {server.log}); {HINT}")
        if not noticed and waited > NOTICE_AFTER_S:
            print(f"prefect: starting a {what} server (a first start creates its database, which can take a "
                  f"minute on a busy machine){TIP if what == 'temporary' else ''}", file=sys.stderr)
            noticed = True
        time.sleep(0.25)


def stop_process(pid: int, wait_s: float = STOP_WAIT_S) -> bool:
    """SIGTERM the process group of `pid`, SIGKILL it after `wait_s`; True if it was running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    return True


def process_alive(pid: int) -> bool:
    """Is `pid` a live process? An exited child of ours is reaped first; a zombie counts as gone
    (tasks.runtime.store.process_alive)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    from tasks.runtime.store import process_alive as alive

    return alive(pid)


def runs_prefect_server(pid: int) -> bool:
    """Does `pid` still run `prefect server start` (not a process that got its number since)?"""
    if pid <= 0:  # a state file without a process (0 would name this process group)
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return process_alive(pid)  # no /proc: trust the state file
    return b"prefect" in args and b"server" in args


# --------------------------------------------------------------------------- the session server


def session_state(home: Path | None = None) -> Server | None:
    """The server `server` started (from its state file), if the file is there."""
    path = (home or prefect_home()) / STATE_FILE
    try:
        data = json.loads(path.read_text())
        return Server(data["url"], int(data["pid"]), data["log"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_session_server(port: int | None = None) -> tuple[Server, bool]:
    """Start the session server (with the UI) unless one answers already: (server, started now).

    Without `port`, a server that `server` started and that died (its state file is left) is
    started again on its own port, so the runs and browsers pointed at it find it again. A port
    held by a crashed server's closing sockets (TIME_WAIT) is free (`port_free`); one another
    program listens on is refused, naming the program when the system says.
    """
    home = prefect_home()
    known = session_state(home)
    if known and server_answers(known.url):
        return known, False
    host, default_port = local_address()
    if port is None and known is not None and (address := host_port(known.url)) is not None:
        host, port = address  # restart where it was
    port = free_port(host) if port == 0 else port or default_port  # 0: any free port, as sockets mean it
    if server_answers(api_url(host, port)):
        return Server(api_url(host, port), 0, ""), False
    if not port_free(host, port):
        if known and host_port(known.url) == (host, port) and runs_prefect_server(known.pid):
            raise ServerError(f"the Prefect server `server` started (pid {known.pid}) holds port {port} on {host} "
                              f"but does not answer (starting or stopping; its log: {known.log}); wait a moment, or "
                              "stop it with `python flows/rnn_flow.py server stop`")
        who = listener_of(port)
        raise ServerError(f"port {port} on {host} is in use by another program ({who or 'not a Prefect server'}); "
                          f"choose another with `python flows/rnn_flow.py server --port N`")
    server = spawn_server(host, port, home / "rnnflow-server.log", ui=True)
    wait_until_healthy(server, "session")
    (home / STATE_FILE).write_text(json.dumps({"url": server.url, "pid": server.pid, "log": server.log}) + "\n")
    return server, True


def stop_session_server() -> Server | None:
    """Stop the session server; the one stopped (None when none was running)."""
    home = prefect_home()
    known = session_state(home)
    (home / STATE_FILE).unlink(missing_ok=True)
    if known and runs_prefect_server(known.pid) and stop_process(known.pid):
        return known
    return None


# --------------------------------------------------------------------------- choosing the API


def running_local_server() -> str | None:
    """The API URL of the session server or of a server at Prefect's local address, if one answers."""
    known = session_state()
    if known and server_answers(known.url):
        return known.url
    local = api_url(*local_address())
    return local if server_answers(local) else None


@contextlib.contextmanager
def prefect_api(temporary: bool = True, meanwhile: Callable[[], None] | None = None) -> Iterator[str | None]:
    """Within: Prefect talks to the server chosen as the module docstring says; yields its API URL.

    temporary=False: yield None instead of starting a temporary server. `meanwhile` is called
    while a temporary server starts (or at once when there is a server already). With
    temporary=True (a run), a configured URL nobody answers at is a ServerError, one line, rather
    than Prefect's retries and traceback.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL, get_current_settings, temporary_settings

    configured = get_current_settings().api.url
    if configured and temporary and not server_reachable(configured):
        raise ServerError(f"no server answers at PREFECT_API_URL={configured}; {HINT}")
    url = configured or running_local_server()
    updates = {PREFECT_API_URL: url}
    if url and not configured:
        print(f"prefect: using the server at {url.removesuffix('/api')} (PREFECT_API_URL is unset)", file=sys.stderr)
    if url is None and temporary:
        url = updates[PREFECT_API_URL] = start_temporary_server(meanwhile).url
        updates[PREFECT_UI_URL] = ""  # it has no UI, and is gone after the run: no "View at" link to it
    elif meanwhile:
        meanwhile()
    if url is None or configured:
        yield url
        return
    with temporary_settings(updates=updates):
        yield url


def start_temporary_server(meanwhile: Callable[[], None] | None = None) -> Server:
    """A server for this process only (no UI), stopped when the process exits; `meanwhile` runs
    while it starts.

    Its stop is registered with atexit before the run starts, so it runs after Prefect's own exit
    handlers (registered later; atexit runs them in reverse) have sent the last logs and events.
    """
    from tasks.runtime import interrupt

    log = Path(tempfile.gettempdir()) / f"rnnflow-prefect-server-{os.getpid()}.log"
    server = spawn_server("127.0.0.1", free_port(), log, ui=False, tied=True)
    atexit.register(_stop_temporary, server)
    interrupt.remove_on_exit(log)  # a signal's exit is os._exit, past atexit
    try:
        if meanwhile:
            meanwhile()
        wait_until_healthy(server, "temporary")
    except ServerError:
        atexit.unregister(_stop_temporary)
        interrupt.keep_on_exit(log)
        stop_process(server.pid)  # its log stays, for the user to read
        raise
    return server


def _stop_temporary(server: Server) -> None:
    stop_process(server.pid)
    with contextlib.suppress(OSError):
        Path(server.log).unlink()
