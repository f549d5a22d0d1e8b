"""flows/server.py: use a running local Prefect server when none is configured (no Prefect needed)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from flows.server import profile_api_url, server_answers, server_reachable, use_running_server


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        ok = self.path == "/api/health"
        self.send_response(200 if ok else 404)
        self.end_headers()
        self.wfile.write(b"true" if ok else b"")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def fake_api():
    """A stand-in that answers GET /api/health like a Prefect server."""
    httpd = HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def closed_url():
    httpd = HTTPServer(("127.0.0.1", 0), _Health)
    url = f"http://127.0.0.1:{httpd.server_address[1]}/api"
    httpd.server_close()
    return url


def test_a_running_server_is_used_when_no_url_is_set(fake_api, tmp_path, capsys):
    env = {"PREFECT_HOME": str(tmp_path)}
    assert use_running_server(env, url=fake_api) == fake_api
    assert env["PREFECT_API_URL"] == fake_api
    assert capsys.readouterr().err.count("\n") == 1  # one line says so


def test_a_configured_url_wins(fake_api, tmp_path):
    env = {"PREFECT_HOME": str(tmp_path), "PREFECT_API_URL": "http://elsewhere:4200/api"}
    assert use_running_server(env, url=fake_api) is None and env["PREFECT_API_URL"] == "http://elsewhere:4200/api"
    (tmp_path / "profiles.toml").write_text(
        'active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "http://profile:4200/api"\n')
    env = {"PREFECT_HOME": str(tmp_path)}
    assert profile_api_url(env) == "http://profile:4200/api"
    assert use_running_server(env, url=fake_api) is None and "PREFECT_API_URL" not in env


def test_no_server_means_the_temporary_one(closed_url, tmp_path):
    env = {"PREFECT_HOME": str(tmp_path)}
    assert use_running_server(env, url=closed_url) is None and "PREFECT_API_URL" not in env
    assert not server_answers(closed_url) and not server_reachable(closed_url, timeout=1)


def test_reachable_counts_any_http_answer(fake_api):
    assert server_answers(fake_api) and server_reachable(fake_api)
    assert server_reachable(fake_api + "/nothing-here")  # a 404 still means a server is there
