"""The Prefect UI in headless Chromium: a finished run's page shows the run and its artifacts."""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.cli import finished
from tests.helpers.server import PrefectServer, api_post, run_flow

pytestmark = pytest.mark.browser  # needs headless Chromium (skipped without it); slow and server by folder and fixture

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000", "--virtual-time-budget=20000",
]
KEYS = ("rnn-metrics", "rnn-report", "rnn-stages", "rnn-promotion")


def chromium() -> str | None:
    """A headless-capable Chromium or Chrome binary, if one is installed."""
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def browse(url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The DOM of `url` after the page's scripts ran (and a screenshot if asked)."""
    binary = chromium()
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
    if screenshot:
        subprocess.run([binary, *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    return subprocess.run([binary, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout


def has_page(server: PrefectServer, path: str) -> bool:
    try:
        with urllib.request.urlopen(f"{server.url}{path}", timeout=5) as resp:
            return resp.status == 200
    except urllib.error.URLError:
        return False


def test_run_page_shows_the_run_and_its_artifacts(prefect_server, tmp_path):
    if chromium() is None:
        pytest.skip("no chromium binary (apt-get install chromium)")
    res = run_flow(prefect_server, tmp_path, "--promote")
    assert finished(res.returncode, res.stdout), res.stderr[-3000:]
    name = re.search(r"^outputs: .*/runs/(\S+)$", res.stdout, re.M).group(1)
    (run,) = api_post(prefect_server, "flow_runs/filter", {"flow_runs": {"name": {"any_": [name]}}})

    page = f"/runs/flow-run/{run['id']}?tab=Artifacts"
    dom = browse(prefect_server.url + page, tmp_path / "chromium")
    assert name in dom and "Completed" in dom
    # The classic UI resets ?tab= to Logs while the run is still loading (its Artifacts tab is
    # hidden until then), so the artifact cards are checked on the V2 UI's page of the same run.
    if not has_page(prefect_server, "/v2/"):
        pytest.skip("this Prefect server has no V2 UI")
    shot = tmp_path / "run.png"
    dom = browse(f"{prefect_server.url}/v2{page}", tmp_path / "chromium", shot)
    assert name in dom and all(key in dom for key in KEYS), dom[-2000:]
    assert shot.stat().st_size > 10_000
