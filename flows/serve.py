"""Scheduled retraining (`serve`), `rollback`, and finding a running Prefect server.

A run started with no Prefect API configured would get a temporary server that lives only as
long as the process. When a server already answers on the default local address, runs use it
instead, where the UI shows them and schedules live.
"""

from __future__ import annotations

import contextlib
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from tasks.config import PipelineConfig, with_overrides
from tasks.errors import InputError

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


@contextlib.contextmanager
def prefect_api(url: str = LOCAL_API, timeout: float = 0.3) -> Iterator[str | None]:
    """Within: Prefect talks to the server answering at `url` when no API URL is configured
    (environment or profile); yields the API URL in use (None: Prefect's temporary server)."""
    from prefect.settings import (
        PREFECT_API_URL,
        get_current_settings,
        temporary_settings,
    )

    configured = get_current_settings().api.url
    if configured or not server_answers(url, timeout):
        yield configured
        return
    print(f"prefect: using the server running at {url} (PREFECT_API_URL was unset)", file=sys.stderr)
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url


def absolute_paths(cfg: PipelineConfig) -> PipelineConfig:
    """The config with its directories and data file absolute (runs may start elsewhere)."""
    out = {"output": {"root": str(Path(cfg.output.root).expanduser().resolve()),
                      "data_dir": str(Path(cfg.output.data_dir).expanduser().resolve())}}
    if cfg.data.data_path:
        out["data"] = {"data_path": str(Path(cfg.data.data_path).expanduser().resolve())}
    return with_overrides(cfg, out)


def check_schedule(cron: str | None, interval: float | None) -> None:
    """Refuse a bad cron string or a non-positive interval before anything starts."""
    if interval is not None and not interval > 0:
        raise InputError("--interval", interval, "must be a positive number of seconds")
    if cron is not None:
        from prefect.client.schemas.schedules import CronSchedule

        try:
            CronSchedule(cron=cron)
        except ValidationError:
            raise InputError("--cron", cron, "not a valid cron expression (e.g. \"0 3 * * *\")") from None


class NoServer(Exception):
    """No Prefect server to register a schedule with (a temporary one dies with the process)."""


def require_server(url: str | None) -> str:
    """The API URL of a reachable Prefect server; NoServer if there is none."""
    hint = "a schedule needs a running Prefect server (start one: prefect server start)"
    if not url:
        raise NoServer(f"PREFECT_API_URL is not set and no server answers at {LOCAL_API}; {hint}")
    if not server_reachable(url):
        raise NoServer(f"no server answers at PREFECT_API_URL={url}; {hint}")
    return url


def serve(inv) -> int:
    """`serve`: register the deployment with its schedule and run its flow runs until stopped.

    inv: a flows.cli.Invocation of command "serve" (config validated).
    """
    check_schedule(inv.schedule["cron"], inv.schedule["interval"])
    params = {"config": absolute_paths(inv.config).model_dump(mode="json"), **inv.controls}
    with prefect_api() as url:
        url = require_server(url)
        from flows.rnn_flow import rnn_pipeline

        print(f"serving {rnn_pipeline.name}/{inv.schedule['name']} on {url}; stop with Ctrl-C", file=sys.stderr)
        rnn_pipeline.serve(name=inv.schedule["name"], cron=inv.schedule["cron"], interval=inv.schedule["interval"],
                           parameters=params, global_limit=1, limit=1, tags=["rnnflow", "retrain"])
    return 0


def rollback(output_dir: str) -> int:
    """`rollback`: make the previous champion the champion again (InputError when there is none)."""
    from tasks.runtime import registry

    reg = registry.rollback(Path(output_dir).expanduser().resolve())
    ch, retired = reg["champion"], reg["history"][-1]["from"]
    print(f"rolled back: champion is {ch['model_sha256'][:16]} (run {ch['run']}) again; "
          f"{retired['model_sha256'][:16]} (run {retired['run']}) retired")
    return 0
