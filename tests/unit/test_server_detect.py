"""flows/server.py: which Prefect server a command uses when no API URL is configured (environment or profile)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flows.server import STATE_FILE, port_free, server_answers, server_reachable
from tests.helpers.server import HealthStandIn

ROOT = Path(__file__).resolve().parents[2]
# In a fresh process (Prefect reads its settings and profiles when imported): which API URL
# prefect_api() chooses (never a temporary server here), and what Prefect then sees.
CHOOSE = (
    "import json, sys\n"
    "from prefect.settings import get_current_settings\n"
    "from flows.server import prefect_api\n"
    "with prefect_api(temporary=False) as chosen:\n"
    "    print(json.dumps([chosen, get_current_settings().api.url]))\n"
)


@pytest.fixture
def fake_api():
    """A stand-in that answers GET /api/health like a Prefect server; yields its port."""
    with HealthStandIn() as stand_in:
        yield stand_in.port


@pytest.fixture
def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def choose(home: Path, local_port: int, **env: str) -> tuple[list, str]:
    """(prefect_api's choice and Prefect's API URL inside it, stderr) in a fresh process whose
    Prefect local address is 127.0.0.1:`local_port`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env = {**base, "PREFECT_HOME": str(home), "PREFECT_SERVER_API_HOST": "127.0.0.1",
           "PREFECT_SERVER_API_PORT": str(local_port), **env}
    proc = subprocess.run([sys.executable, "-c", CHOOSE], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_a_server_at_prefects_local_address_is_used_when_no_url_is_set(fake_api, tmp_path):
    (chosen, seen), err = choose(tmp_path, fake_api)
    assert chosen == seen == f"http://127.0.0.1:{fake_api}/api"
    assert err.count("\n") == 1 and "using the server at" in err  # one line says so


def test_the_session_server_is_found_by_its_state_file(fake_api, closed_port, tmp_path):
    url = f"http://127.0.0.1:{fake_api}/api"
    (tmp_path / STATE_FILE).write_text(json.dumps({"url": url, "pid": 0, "log": ""}))
    (chosen, seen), _ = choose(tmp_path, closed_port)  # nothing at the local address: the state file says where
    assert chosen == seen == url


def test_a_configured_url_wins(fake_api, tmp_path):
    (chosen, seen), _ = choose(tmp_path, fake_api, PREFECT_API_URL="http://elsewhere:4200/api")
    assert chosen == seen == "http://elsewhere:4200/api"
    (tmp_path / "profiles.toml").write_text(
        'active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "http://profile:4200/api"\n')
    (chosen, seen), _ = choose(tmp_path, fake_api)
    assert chosen == seen == "http://profile:4200/api"


def test_no_server_and_no_temporary_one_means_none(closed_port, tmp_path):
    (chosen, seen), err = choose(tmp_path, closed_port)
    assert chosen is None and seen is None and "using the server" not in err
    url = f"http://127.0.0.1:{closed_port}/api"
    assert not server_answers(url) and not server_reachable(url, timeout=1)


def test_reachable_counts_any_http_answer(fake_api):
    url = f"http://127.0.0.1:{fake_api}/api"
    assert server_answers(url) and server_reachable(url)
    assert server_reachable(url + "/nothing-here")  # a 404 still means a server is there


def test_a_port_held_only_by_a_dead_servers_closing_sockets_is_free():
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn's listener does
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the server's end closes first, so it waits in TIME_WAIT, as a crashed server's do
    client.close()
    listener.close()
    with socket.socket() as plain, pytest.raises(OSError):  # what refused `server` for ~45 s after a crash
        plain.bind(("127.0.0.1", port))
    assert port_free("127.0.0.1", port)


def test_server_restarts_on_the_crashed_servers_port_and_names_another_program_there(closed_port, tmp_path):
    with socket.socket() as squatter:  # this test's process listens where the crashed server was
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        (tmp_path / STATE_FILE).write_text(json.dumps({"url": f"http://127.0.0.1:{port}/api", "pid": 0, "log": ""}))
        base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env = {**base, "PREFECT_HOME": str(tmp_path), "PREFECT_SERVER_API_PORT": str(closed_port)}
        proc = subprocess.run([sys.executable, "flows/rnn_flow.py", "server"], cwd=ROOT, capture_output=True,
                              text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is in use by another program (pid {os.getpid()}, "
        f"{psutil_name()}); choose another with `python flows/rnn_flow.py server --port N`"]


def psutil_name() -> str:
    import psutil

    return psutil.Process().name()


def test_port_0_asks_for_a_free_port_not_prefects_default(closed_port, tmp_path, monkeypatch):
    """`server --port 0` once started on 4200, where another user's server may be."""
    from flows import server as servers

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    monkeypatch.setenv("PREFECT_SERVER_API_PORT", str(closed_port))  # the default, were 0 taken for "none"
    monkeypatch.setattr(servers, "free_port", lambda host="127.0.0.1": closed_port + 1)
    started = []
    monkeypatch.setattr(servers, "spawn_server", lambda host, port, log, ui=True, tied=False:
                        started.append(port) or servers.Server(servers.api_url(host, port), 0, str(log)))
    monkeypatch.setattr(servers, "wait_until_healthy", lambda server, what: None)
    monkeypatch.setattr(servers, "port_free", lambda host, port: True)
    monkeypatch.setattr(servers, "server_answers", lambda url, *a, **k: False)
    server, fresh = servers.start_session_server(0)
    assert fresh and started == [closed_port + 1] and server.url.endswith(f":{closed_port + 1}/api")


# What a flow run started from the command line sees of flow-run heartbeats (flows/commands.py
# no_heartbeats): Prefect's flow engine reads this setting when the run starts.
HEARTBEATS = (
    "from prefect.settings import get_current_settings\n"
    "from flows.commands import no_heartbeats\n"
    "with no_heartbeats():\n"
    "    print(get_current_settings().flows.heartbeat_frequency)\n"
    "print(get_current_settings().flows.heartbeat_frequency)\n"
)


def heartbeats(home: Path, **env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.run([sys.executable, "-c", HEARTBEATS], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "PREFECT_HOME": str(home), **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.split()


def test_a_command_line_run_sends_no_heartbeats_unless_the_user_set_them(tmp_path):
    assert heartbeats(tmp_path) == ["None", "180"]  # off within the run only; Prefect's default outside
    assert heartbeats(tmp_path, PREFECT_FLOWS_HEARTBEAT_FREQUENCY="60") == ["60", "60"]
    assert heartbeats(tmp_path, PREFECT_FLOWS_HEARTBEAT_FREQUENCY="180") == ["180", "180"]  # set, if to the default
    (tmp_path / "profiles.toml").write_text('active = "mine"\n[profiles.mine]\nPREFECT_FLOWS_HEARTBEAT_FREQUENCY = 90\n')
    assert heartbeats(tmp_path) == ["90", "90"]
