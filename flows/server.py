"""Find a running Prefect server before Prefect is imported (standard library only, no prefect).

Prefect reads PREFECT_API_URL once, at import: a run started with it unset gets a temporary
server that lives only as long as the process. When a server already answers on the default
local address, runs should land there instead, where the UI shows them and schedules live.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import MutableMapping
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: profiles are not read
    tomllib = None  # type: ignore[assignment]

LOCAL_API = "http://127.0.0.1:4200/api"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # local checks skip any proxy


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


def profile_api_url(environ: MutableMapping[str, str] = os.environ) -> str | None:
    """PREFECT_API_URL of the active Prefect profile (profiles.toml), if it sets one."""
    home = Path(environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    path = Path(environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text()) if tomllib else {}
    except (OSError, ValueError):
        return None
    active = environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")


def use_running_server(
    environ: MutableMapping[str, str] = os.environ, url: str = LOCAL_API, timeout: float = 0.3
) -> str | None:
    """Point Prefect at the server answering at `url` when no API URL is configured; return it."""
    if environ.get("PREFECT_API_URL") or profile_api_url(environ) or not server_answers(url, timeout):
        return None
    environ["PREFECT_API_URL"] = url
    print(f"prefect: using the server running at {url} (PREFECT_API_URL was unset)", file=sys.stderr)
    return url
