"""Scheduled retraining (`serve`) and `rollback`.

`serve` registers the deployment on a running Prefect server (flows/server.py finds it) and runs
its flow runs in this process; its inputs are validated exactly as a one-shot run's before that.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pydantic import ValidationError

from flows.server import HINT, ServerError, prefect_api, server_reachable
from tasks.config import PipelineConfig, with_overrides
from tasks.errors import InputError
from tasks.runtime import confine


def absolute_paths(cfg: PipelineConfig) -> PipelineConfig:
    """The config with its directories and data file absolute (runs may start elsewhere)."""
    out = {"output": {"root": str(Path(cfg.output.root).expanduser().resolve()),
                      "data_dir": str(Path(cfg.output.data_dir).expanduser().resolve())}}
    if cfg.data.data_path:
        out["data"] = {"data_path": str(Path(cfg.data.data_path).expanduser().resolve())}
    if cfg.search.mode not in ("auto", "on", "off"):  # a members file
        out["search"] = {"mode": str(Path(cfg.search.mode).expanduser().resolve())}
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


def require_server(url: str | None) -> str:
    """The API URL of a reachable Prefect server; ServerError if there is none."""
    need = "a schedule needs a running Prefect server (a temporary one would die with this process)"
    if not url:
        raise ServerError(f"PREFECT_API_URL is not set and no local server answers; {need}: {HINT}")
    if not server_reachable(url):
        raise ServerError(f"no server answers at PREFECT_API_URL={url}; {need}: {HINT}")
    return url


def serve(inv) -> int:
    """`serve`: register the deployment with its schedule and run its flow runs until stopped.

    inv: a flows.options.Invocation of command "serve", checked as a one-shot run's (flows.commands.main).
    Its output root, data dir and data locations (the data file's folder, --allow-data) are fixed
    now for every flow run it runs, whatever parameters a run is given (tasks/runtime/confine.py).
    """
    schedule = inv.options
    check_schedule(schedule["cron"], schedule["interval"])
    cfg = absolute_paths(inv.config)
    confinement = confine.fix(cfg, schedule.get("allow_data") or ())  # what its flow runs may write and read
    os.environ[confine.VARIABLE] = confinement.to_env()  # its flow runs inherit it; no parameter changes it
    params = {"config": cfg.model_dump(mode="json"), **inv.controls}
    with prefect_api(temporary=False) as url:
        url = require_server(url)
        from flows.rnn_flow import rnn_pipeline

        print(f"serving {rnn_pipeline.name}/{schedule['name']} on {url}; stop with Ctrl-C; a run now: "
              f"PREFECT_API_URL={url} prefect deployment run '{rnn_pipeline.name}/{schedule['name']}'",
              file=sys.stderr)
        print(f"its runs write under {confinement.root} (data: {confinement.data_dir}) and read data files from "
              f"{', '.join(confinement.data) or 'no folder (the generated series only)'}", file=sys.stderr)
        rnn_pipeline.serve(name=schedule["name"], cron=schedule["cron"], interval=schedule["interval"],
                           parameters=params, global_limit=1, limit=1, tags=["rnnflow", "retrain"],
                           print_starting_message=False)  # the lines above say it, in the project's words
    return 0


def rollback(output_dir: str) -> int:
    """`rollback`: make the previous champion the champion again (InputError when there is none)."""
    from tasks.runtime import registry

    reg = registry.rollback(Path(output_dir).expanduser().resolve())
    ch, retired = reg["champion"], reg["history"][-1]["from"]
    print(f"rolled back: champion is {ch['model_sha256'][:16]} (run {ch['run']}) again; "
          f"{retired['model_sha256'][:16]} (run {retired['run']}) retired")
    return 0
