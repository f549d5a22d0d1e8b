"""A real Prefect server for tests marked `server`: `prefect server start` on a free port.

The session fixture `prefect_server` (tests/conftest.py) starts one with `start_server`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from flows.environment import DEFAULTS

REPO = Path(__file__).resolve().parents[2]
FLOW_SCRIPT = REPO / "flows" / "rnn_flow.py"


@dataclass
class PrefectServer:
    """A running server: its port, home directory, process and log file."""

    port: int
    home: Path
    process: subprocess.Popen
    log: Path
    children: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a process that talks to this server (and only to it)."""
        return server_env(self.port, self.home) | extra


def server_env(port: int, home: Path) -> dict[str, str]:
    """os.environ plus the settings that point Prefect (API and UI) at 127.0.0.1:`port`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    return env | {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
        **DEFAULTS,  # the project's environment defaults (flows/environment.py)
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HealthStandIn:
    """A stand-in for a Prefect server's health check on a free port: GET /api/health answers 200
    while `up`, 503 otherwise (404 elsewhere). A context manager; `api_url` is its API URL."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, HTTPServer

        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                ok = self.path == "/api/health"
                self.send_response((200 if stand_in.up else 503) if ok else 404)
                self.end_headers()
                self.wfile.write(b"true" if ok and stand_in.up else b"")

            def log_message(self, *args) -> None:
                pass

        self.up = True
        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __enter__(self) -> "HealthStandIn":
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def healthy(api_url: str, timeout: float = 1.0) -> bool:
    """True if GET <api_url>/health answers 200."""
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def spawn(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> subprocess.Popen:
    """Start `cmd` in its own process group, output to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process group of `proc`, then SIGKILL it if it is still there after `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (a run's subprocess)
    except (ProcessLookupError, PermissionError):
        pass


def start_server(home: Path, timeout: float = 120.0) -> PrefectServer:
    """`prefect server start` on a free port with its own PREFECT_HOME; wait until it is healthy."""
    home.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), home / "server.log"
    prefect = [sys.executable, "-m", "prefect"]
    proc = spawn([*prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)], server_env(port, home), log)
    server = PrefectServer(port, home, proc, log)
    deadline = time.monotonic() + timeout
    while not healthy(server.api_url):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"Prefect server did not start on port {port}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return server


def home_like(server: PrefectServer, home: Path) -> Path:
    """A Prefect home holding a copy of `server`'s database (sqlite's online backup): a server started
    on it needs no migrations, so it answers in seconds, and never touches the session server's."""
    import sqlite3

    home.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(server.home / "prefect.db"), sqlite3.connect(home / "prefect.db")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return home


def temporary_server_env(server: PrefectServer, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a run that starts a temporary server of its own (no PREFECT_API_URL, and
    nothing at Prefect's local address), on a copy of `server`'s database (`home_like`)."""
    env = {k: v for k, v in server_env(server.port, home_like(server, home)).items()
           if k not in ("PREFECT_API_URL", "PREFECT_UI_API_URL")}
    return env | {"PREFECT_SERVER_API_PORT": str(free_port())} | extra


def run_flow(server: PrefectServer, tmp: Path, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """`python flows/rnn_flow.py ARGS` against `server` (a tiny config unless ARGS say otherwise)."""
    tiny = ["--epochs", "2", "--n-points", "240", "--hidden-size", "8", "--fig-dpi", "40",
            "--device", "cpu", "--output-dir", str(tmp / "artifacts"), "--data-dir", str(tmp / "data")]
    return subprocess.run([sys.executable, str(FLOW_SCRIPT), *tiny, *args], env=server.env(), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def api_post(server: PrefectServer, path: str, body: dict | None = None, timeout: float = 10.0):
    """POST JSON to the server's REST API (e.g. "flow_runs/filter"); the decoded answer."""
    import json

    req = urllib.request.Request(f"{server.api_url}/{path}", data=json.dumps(body or {}).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


# A LocalCluster as `--runner dask` starts one (tasks/runtime/runners.py), in a process of its own
# that lives until its stdin is closed: several runs share it with --dask-address.
CLUSTER = """
import sys
from distributed import LocalCluster
from tasks.runtime.nanny import QuickExit

with LocalCluster(n_workers=int(sys.argv[1]), threads_per_worker=1, processes=True, dashboard_address=None,
                  scheduler_kwargs={"dashboard_address": ":0"}, worker_class="tasks.runtime.nanny.Nanny",
                  plugins={QuickExit()}) as cluster:
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()
"""


@dataclass
class DaskCluster:
    """A running Dask cluster whose workers report to a PrefectServer: its scheduler's address and
    the process that holds it (the workers are that process's children)."""

    address: str
    process: subprocess.Popen


def start_dask_cluster(server: PrefectServer, log: Path, workers: int = 2, timeout: float = 180.0) -> DaskCluster:
    """A LocalCluster of `workers` processes (one thread each) whose workers talk to `server`."""
    import select

    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", CLUSTER, str(workers)], cwd=REPO, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True,
                                env=server.env())  # DEFAULTS: Dask logs from WARNING up
    deadline = time.monotonic() + timeout
    while not select.select([proc.stdout], [], [], 1.0)[0]:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"the Dask cluster did not start:\n{log.read_text()[-3000:]}")
    return DaskCluster(proc.stdout.readline().strip(), proc)


def stop_dask_cluster(cluster: DaskCluster) -> None:
    """Close the cluster (its stdin), then make sure its process group is gone."""
    try:
        cluster.process.stdin.close()
        cluster.process.wait(timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass
    stop(cluster.process)
