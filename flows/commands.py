"""Subcommands of flows/rnn_flow.py: `serve` (a scheduled retraining deployment), `rollback`
(restore the previous champion), and the `--promote` options of a plain run."""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from pydantic import ValidationError

from flows.cli import build_parser, config_from_args, describe_validation_error, promote_params
from flows.server import LOCAL_API, server_reachable
from tasks.config import PipelineConfig, with_overrides
from tasks.errors import InputError

DEPLOYMENT = "rnn-retrain"
def serve_parser() -> argparse.ArgumentParser:
    """The run options plus the schedule and the promotion settings."""
    p = build_parser()
    p.prog = "python flows/rnn_flow.py serve"
    p.description = (f"Serve rnn_pipeline as the deployment '{DEPLOYMENT}' on a running Prefect server "
                     "(PREFECT_API_URL, else one at 127.0.0.1:4200); runs never overlap.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--cron", help='a cron schedule in UTC, e.g. "0 3 * * *" (03:00 every day)')
    g.add_argument("--interval", type=float, metavar="SECONDS", help="run every SECONDS")
    p.add_argument("--name", default=DEPLOYMENT, help=f"deployment name ({DEPLOYMENT})")
    p.set_defaults(promote=True)  # a retraining schedule keeps the better model
    return p


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


def require_server() -> str:
    """The API URL of a reachable Prefect server; NoServer if there is none."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    hint = "a schedule needs a running Prefect server (start one: prefect server start)"
    if not url:
        raise NoServer(f"PREFECT_API_URL is not set and no server answers at {LOCAL_API}; {hint}")
    if not server_reachable(url):
        raise NoServer(f"no server answers at PREFECT_API_URL={url}; {hint}")
    return url


def serve(argv: list[str], pipeline) -> int:
    """`serve`: register the deployment with its schedule and run its flow runs until stopped."""
    args = serve_parser().parse_args(argv)
    try:
        cfg = absolute_paths(config_from_args(args))
        params = {"config": cfg.model_dump(mode="json"), **promote_params(args),
                  "refresh": args.refresh, "until": args.until, "no_cache": args.no_cache}
        check_schedule(args.cron, args.interval)
        url = require_server()
    except ValidationError as exc:
        return _fail(describe_validation_error(exc))
    except (InputError, NoServer) as exc:
        return _fail(str(exc))
    # Each run of a served flow gets the flow function pickled by value, without the module
    # globals that its string annotations (`from __future__ import annotations`) name, so
    # PipelineConfig would not resolve there: hand it the resolved annotations instead.
    pipeline.fn.__annotations__ = typing.get_type_hints(pipeline.fn, include_extras=True)
    print(f"serving {pipeline.name}/{args.name} on {url}; stop with Ctrl-C", file=sys.stderr)
    pipeline.serve(name=args.name, cron=args.cron, interval=args.interval, parameters=params,
                   global_limit=1, limit=1, tags=["rnnflow", "retrain"])
    return 0


def rollback(argv: list[str]) -> int:
    """`rollback`: make the previous champion the champion again."""
    p = argparse.ArgumentParser(prog="python flows/rnn_flow.py rollback",
                                description="Restore the previous champion model of <output-dir>/models/registry.json.")
    p.add_argument("--output-dir", default=PipelineConfig().output.root, help="the output root (artifacts)")
    args = p.parse_args(argv)
    from tasks import registry

    try:
        reg = registry.rollback(Path(args.output_dir).expanduser().resolve())
    except InputError as exc:
        return _fail(str(exc))
    ch, retired = reg["champion"], reg["history"][-1]["from"]
    print(f"rolled back: champion is {ch['model_sha256'][:16]} (run {ch['run']}) again; "
          f"{retired['model_sha256'][:16]} (run {retired['run']}) retired")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
