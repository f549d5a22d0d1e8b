"""flows/serve.py: use a running local Prefect server when no API URL is configured (environment or profile)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from flows.serve import server_answers, server_reachable

ROOT = Path(__file__).resolve().parents[2]
# In a fresh process (Prefect reads its settings and profiles when imported): which API URL
# prefect_api() chooses for a candidate local server at argv[1], and what Prefect then sees.
CHOOSE = (
    "import json, sys\n"
    "from prefect.settings import get_current_settings\n"
    "from flows.serve import prefect_api\n"
    "with prefect_api(sys.argv[1]) as chosen:\n"
    "    print(json.dumps([chosen, get_current_settings().api.url]))\n"
)


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


def choose(candidate: str, home: Path, **env: str) -> tuple[list, str]:
    """(prefect_api's choice and Prefect's API URL inside it, stderr) in a fresh process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    proc = subprocess.run([sys.executable, "-c", CHOOSE, candidate], cwd=ROOT, capture_output=True, text=True,
                          env={**base, "PREFECT_HOME": str(home), **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_a_running_server_is_used_when_no_url_is_set(fake_api, tmp_path):
    (chosen, seen), err = choose(fake_api, tmp_path)
    assert chosen == seen == fake_api
    assert err.count("\n") == 1 and "using the server running at" in err  # one line says so


def test_a_configured_url_wins(fake_api, tmp_path):
    (chosen, seen), _ = choose(fake_api, tmp_path, PREFECT_API_URL="http://elsewhere:4200/api")
    assert chosen == seen == "http://elsewhere:4200/api"
    (tmp_path / "profiles.toml").write_text(
        'active = "mine"\n[profiles.mine]\nPREFECT_API_URL = "http://profile:4200/api"\n')
    (chosen, seen), _ = choose(fake_api, tmp_path)
    assert chosen == seen == "http://profile:4200/api"


def test_no_server_means_the_temporary_one(closed_url, tmp_path):
    (chosen, seen), err = choose(closed_url, tmp_path)
    assert chosen is None and seen is None and "using the server" not in err
    assert not server_answers(closed_url) and not server_reachable(closed_url, timeout=1)


def test_reachable_counts_any_http_answer(fake_api):
    assert server_answers(fake_api) and server_reachable(fake_api)
    assert server_reachable(fake_api + "/nothing-here")  # a 404 still means a server is there
