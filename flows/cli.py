"""Command line of flows/rnn_flow.py: argv -> one Invocation, parsed and validated once, then run.

    python flows/rnn_flow.py [options]            run the pipeline once
    python flows/rnn_flow.py serve [options]      scheduled retraining on a running Prefect server
    python flows/rnn_flow.py rollback             the previous champion model again

Options map onto PipelineConfig fields; their help texts are the fields' descriptions. Bad input
is one `error:` line naming the option and the value, exit status 2, before Prefect is imported.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from tasks.config import STAGES, PipelineConfig, PromoteSettings, with_overrides
from tasks.errors import InputError

PROG = "python flows/rnn_flow.py"
DEPLOYMENT = "rnn-retrain"

# option -> (config section, field); the help text and the type come from the pydantic field.
OPTIONS: dict[str, tuple[str, str]] = {
    "--n-points": ("data", "n_points"),
    "--n-series": ("data", "n_series"),
    "--noise": ("data", "noise"),
    "--trend": ("data", "trend"),
    "--data-seed": ("data", "seed"),
    "--data-path": ("data", "data_path"),
    "--time-column": ("data", "time_column"),
    "--value-column": ("data", "value_column"),
    "--id-column": ("data", "id_column"),
    "--group-column": ("data", "group_column"),
    "--fill": ("data", "fill"),
    "--series-per-bucket": ("data", "series_per_bucket"),
    "--fill-missing-dates": ("data", "fill_missing_dates"),
    "--time-zone": ("data", "time_zone"),
    "--holidays": ("data", "holidays"),
    "--seq-length": ("window", "seq_length"),
    "--horizon": ("window", "horizon"),
    "--train-fraction": ("window", "train_fraction"),
    "--val-fraction": ("window", "val_fraction"),
    "--normalize": ("window", "normalize"),
    "--cell": ("model", "cell"),
    "--hidden-size": ("model", "hidden_size"),
    "--layers": ("model", "num_layers"),
    "--dropout": ("model", "dropout"),
    "--strategy": ("model", "strategy"),
    "--skip": ("model", "skip"),
    "--epochs": ("train", "epochs"),
    "--batch-size": ("train", "batch_size"),
    "--lr": ("train", "lr"),
    "--seed": ("train", "seed"),
    "--device": ("train", "device"),
    "--patience": ("train", "patience"),
    "--min-delta": ("train", "min_delta"),
    "--ema-decay": ("train", "ema_decay"),
    "--threads": ("train", "threads"),
    "--no-cuda-graphs": ("train", "cuda_graphs"),
    "--checkpoint-every": ("train", "checkpoint_every"),
    "--steps-per-epoch": ("train", "steps_per_epoch"),
    "--season-length": ("eval", "season_length"),
    "--refit-every": ("eval", "refit_every"),
    "--levels": ("eval", "levels"),
    "--references": ("eval", "references"),
    "--gate-baseline": ("eval", "gate_baseline"),
    "--refit-full": ("forecast", "refit_full"),
    "--fig-width": ("figures", "width"),
    "--fig-height": ("figures", "height"),
    "--fig-dpi": ("figures", "dpi"),
    "--runner": ("runner", "kind"),
    "--dask-address": ("runner", "address"),
    "--workers": ("runner", "workers"),
    "--output-dir": ("output", "root"),
    "--data-dir": ("output", "data_dir"),
}
SWITCHES = {"--no-cuda-graphs": False, "--refit-full": True, "--fill-missing-dates": True}  # flags that set a boolean field
FLAG_OF = {(s, f): opt for opt, (s, f) in OPTIONS.items()}
# InputError field ("value_column", "output.root", ...) -> the option that sets it
_FIELDS = [f for _, f in OPTIONS.values()]
FLAG_OF_FIELD = {
    **{f: opt for opt, (_, f) in OPTIONS.items() if _FIELDS.count(f) == 1},
    **{f"{s}.{f}": opt for opt, (s, f) in OPTIONS.items()},
    "config": "--config",
    "grid": "--grid",
    "grid_file": "--grid-file",
    "runner.kind": "--runner",
}


@dataclass(frozen=True)
class Invocation:
    """One command line, parsed and validated: what to do and with which settings."""

    command: str  # "run" | "serve" | "rollback"
    config: PipelineConfig | None = None
    controls: dict[str, Any] = field(default_factory=dict)  # the flow's other parameters
    schedule: dict[str, Any] = field(default_factory=dict)  # serve: cron, interval, name
    output_dir: str | None = None  # rollback
    debug: bool = False


# --------------------------------------------------------------------------- parsers


def _help(section: str, name: str) -> str:
    info = type(getattr(PipelineConfig(), section)).model_fields[name]
    default = info.default if info.default is not PydanticUndefined else None
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return f"{info.description} (default: {shown})"


def run_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """Every pipeline option, grouped by config section, plus the rerun and promotion controls."""
    p = argparse.ArgumentParser(
        prog=prog, usage="%(prog)s [options]", epilog=f"subcommands: {PROG} serve --help | {PROG} rollback --help",
        description="Train and evaluate an RNN/GRU/LSTM forecaster as a Prefect flow; unchanged stages are reused.",
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for opt, (section, name) in OPTIONS.items():
        if section not in groups:
            doc = (type(getattr(PipelineConfig(), section)).__doc__ or section).strip().splitlines()[0]
            groups[section] = p.add_argument_group(f"{section}: {doc.rstrip('.')}")
        if opt in SWITCHES:
            groups[section].add_argument(opt, dest=f"{section}.{name}", action="store_const", const=SWITCHES[opt],
                                         help=_help(section, name))
        else:
            groups[section].add_argument(opt, dest=f"{section}.{name}", metavar=name.upper(), help=_help(section, name))
    g = p.add_argument_group("run controls")
    g.add_argument("--config", metavar="FILE", help="a JSON file with a full or partial config")
    g.add_argument("--refresh", choices=STAGES, help="recompute this stage and every one after it")
    g.add_argument("--until", choices=STAGES, default="figures",
                   help="stop after this stage (forecast: also forecast past the end of every series)")
    g.add_argument("--no-cache", action="store_true", help="recompute every stage")
    g.add_argument("--debug", action="store_true", help="show tracebacks")
    g.add_argument("--promote", action=argparse.BooleanOptionalAction, default=False,
                   help="judge this run's model against the champion and keep the better one")
    g.add_argument("--promote-metric", default="mase", help="the deciding metric: mse, rmse, mae, smape or mase")
    g.add_argument("--promote-margin", type=float, default=0.0, metavar="FRACTION",
                   help="relative improvement a challenger needs (0.05: 5%% lower)")
    return p


def serve_parser() -> argparse.ArgumentParser:
    """The run options plus the schedule; promotion on by default."""
    p = run_parser(f"{PROG} serve")
    p.description = (f"Serve rnn_pipeline as the deployment '{DEPLOYMENT}' on a running Prefect server "
                     "(PREFECT_API_URL, else one at 127.0.0.1:4200); runs never overlap.")
    p.epilog = None
    s = p.add_argument_group("schedule")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--cron", help='a cron schedule in UTC, e.g. "0 3 * * *" (03:00 every day)')
    g.add_argument("--interval", type=float, metavar="SECONDS", help="run every SECONDS")
    s.add_argument("--name", default=DEPLOYMENT, help=f"deployment name ({DEPLOYMENT})")
    p.set_defaults(promote=True)  # a retraining schedule keeps the better model
    return p


def sweep_parser() -> argparse.ArgumentParser:
    """The run options plus the grid of members."""
    p = run_parser(f"{PROG} sweep")
    p.description = ("Train one model per member of a grid (on the runner), rank the members on the validation "
                     "range, then evaluate the winner on the test range as a run does.")
    p.epilog = None
    g = p.add_argument_group("grid")
    g.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="settings to cross, e.g. cell=rnn,gru,lstm "
                   "hidden_size=32,64 seq_length=12,24 (any option's field name, or section.field)")
    g.add_argument("--grid-file", metavar="FILE", help="a JSON grid: {key: [values]} or a list of {key: value}")
    return p


def rollback_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"{PROG} rollback",
                                description="Restore the previous champion model of <output-dir>/models/registry.json.")
    p.add_argument("--output-dir", default=PipelineConfig().output.root, help="the output root (artifacts)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


# --------------------------------------------------------------------------- argv -> Invocation


def parse(argv: list[str]) -> Invocation:
    """The Invocation of `argv` (argparse exits on a malformed command line; pydantic and
    InputError say which setting is wrong)."""
    command = argv[0] if argv[:1] in (["serve"], ["rollback"], ["sweep"]) else "run"
    rest = argv[1:] if command != "run" else argv
    if command == "rollback":
        a = rollback_parser().parse_args(rest)
        return Invocation("rollback", output_dir=a.output_dir, debug=a.debug)
    a = {"serve": serve_parser, "sweep": sweep_parser}.get(command, run_parser)().parse_args(rest)
    promote = PromoteSettings(metric=a.promote_metric, margin=a.promote_margin)
    controls = {"refresh": a.refresh, "until": a.until, "no_cache": a.no_cache, "promote": bool(a.promote),
                "promote_metric": promote.metric, "promote_margin": promote.margin}
    schedule = {"cron": a.cron, "interval": a.interval, "name": a.name} if command == "serve" else {}
    config = config_from_args(a)
    if command == "sweep":
        controls["grid"] = grid_members(config, a.grid or [], a.grid_file)
    return Invocation(command, config, controls, schedule, debug=a.debug)


def grid_members(config: PipelineConfig, specs: list[str], grid_file: str | None) -> list[dict[str, Any]]:
    """The members of a sweep, each {"section.field": value}: the product of `specs`
    ("cell=rnn,gru" ...), or a JSON file holding such a mapping of lists or a list of members.
    Each member is validated on top of `config` (InputError naming --grid)."""
    import itertools

    if grid_file:
        try:
            raw = json.loads(Path(grid_file).read_text())
        except (OSError, ValueError) as exc:
            raise InputError("grid_file", grid_file, f"cannot read a JSON grid ({exc})") from None
    else:
        raw = {}
        for spec in specs:
            key, sep, values = spec.partition("=")
            if not sep or not values:
                raise InputError("grid", spec, "expected KEY=V1,V2 (e.g. cell=rnn,gru)")
            raw[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    if isinstance(raw, dict):
        keys = [grid_key(k) for k in raw]
        members = [dict(zip(keys, combo)) for combo in itertools.product(*[list(v) for v in raw.values()])]
    elif isinstance(raw, list) and all(isinstance(m, dict) for m in raw):
        members = [{grid_key(k): v for k, v in m.items()} for m in raw]
    else:
        raise InputError("grid_file", grid_file, "expected {key: [values]} or a list of {key: value} members")
    if not members:
        raise InputError("grid", " ".join(specs), "no members (give --grid KEY=V1,V2 ... or --grid-file FILE)")
    for m in members:
        overrides: dict[str, dict] = {}
        for dotted, value in m.items():
            section, name = dotted.split(".")
            overrides.setdefault(section, {})[name] = value
        try:
            with_overrides(config, overrides)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(x) for x in err["loc"])
            raise InputError("grid", f"{where}={err.get('input')}", err["msg"]) from None
    return members


def grid_key(key: str) -> str:
    """A grid key as "section.field": "seq_length" -> "window.seq_length" (or given dotted)."""
    sections = {name: type(getattr(PipelineConfig(), name)) for name in PipelineConfig.model_fields}
    if "." in key:
        section, name = key.split(".", 1)
        if section in sections and name in sections[section].model_fields:
            return key
    found = [s for s, cls in sections.items() if key in cls.model_fields and s not in ("output", "runner")]
    if len(found) != 1:
        raise InputError("grid", key, "not a setting (e.g. cell, hidden_size, seq_length, lr, or model.cell)"
                         if not found else f"ambiguous: name it as one of {', '.join(f'{s}.{key}' for s in found)}")
    return f"{found[0]}.{key}"


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """Build the config: defaults, then --config FILE, then single options (validated by pydantic)."""
    cfg = PipelineConfig()
    if args.config:
        try:
            cfg = PipelineConfig.model_validate(json.loads(Path(args.config).read_text()))
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise InputError("config", args.config, f"cannot read a JSON config ({exc})") from None
    overrides: dict[str, dict] = {}
    for dest, value in vars(args).items():
        if "." in dest and value is not None:
            section, name = dest.split(".")
            overrides.setdefault(section, {})[name] = value
    return with_overrides(cfg, overrides)


def validate(cfg: PipelineConfig) -> None:
    """Check what pydantic cannot before any training: device, data file, output dirs (InputError)."""
    if cfg.train.device != "auto":
        from tasks.components.network import resolve_device

        resolve_device(cfg.train.device)
    if cfg.data.data_path is not None:
        from tasks.components import ingest
        from tasks.components.split import min_series_length

        w = cfg.window
        ingest.prepare_series(
            ingest.read_table(cfg.data.data_path), time_column=cfg.data.time_column,
            value_column=cfg.data.value_column, id_column=cfg.data.id_column, fill=cfg.data.fill,
            min_length=min_series_length(w.seq_length, w.horizon, w.train_fraction, w.val_fraction),
            fill_missing_dates=cfg.data.fill_missing_dates, time_zone=cfg.data.time_zone, holidays=cfg.data.holidays,
        )
    check_writable(cfg.output.root, "output.root")
    check_writable(cfg.output.data_dir, "output.data_dir")


def check_writable(path: str | Path, field: str) -> None:
    """Require `path` to be a writable directory, or creatable as one, without creating anything.

    Probes with a temporary directory in the nearest existing ancestor, removed at once.
    """
    p = Path(path).expanduser().absolute()
    existing = next(a for a in (p, *p.parents) if a.exists())
    if not existing.is_dir():
        where = "" if existing == p else f": {existing} is not a directory"
        raise InputError(field, str(path), f"not a directory{where}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".rnnflow-write-test-", dir=existing))
    except OSError as exc:
        why = exc.strerror or str(exc)
        msg = (f"not a writable directory ({why})" if existing == p
               else f"cannot be created: {existing} is not writable ({why})")
        raise InputError(field, str(path), msg) from None


def describe_validation_error(exc: ValidationError) -> str:
    """The first pydantic error as one line naming the option and the value."""
    err = exc.errors()[0]
    loc = tuple(str(x) for x in err["loc"])
    if exc.title == "PromoteSettings" and loc:
        return f"--promote-{loc[0]}={err.get('input')!r}: {err['msg']}"
    name = FLAG_OF.get(loc[:2], ".".join(loc)) if len(loc) >= 2 else ".".join(loc) or "config"
    return f"{name}={err.get('input')!r}: {err['msg']}"


def describe_input_error(exc: InputError) -> str:
    """An InputError as one line, naming the command-line option where there is one."""
    return f"{FLAG_OF_FIELD.get(exc.field, exc.field)}={exc.value!r}: {exc.message}"


# --------------------------------------------------------------------------- running


def main(argv: list[str]) -> int:
    """Entry point: parse and validate once, then run, serve or roll back; bad input -> exit 2."""
    debug = "--debug" in argv
    try:
        inv = parse(argv)
        if inv.config is not None:
            validate(inv.config)  # fail before any Prefect start-up or training
        if inv.command == "rollback":
            from flows.serve import rollback

            return rollback(inv.output_dir)
        if inv.command == "serve":
            from flows.serve import NoServer, serve

            try:
                return serve(inv)
            except NoServer as exc:
                return fail(str(exc), exc, debug)
        return run(inv)
    except ValidationError as exc:
        return fail(describe_validation_error(exc), exc, debug)
    except InputError as exc:
        return fail(describe_input_error(exc), exc, debug)


def run(inv: Invocation) -> int:
    """Run the flow once (on a running local server when there is one) and print the summary."""
    from flows.serve import prefect_api
    from tasks.errors import NumericalError

    with prefect_api():
        if inv.config.runner.kind == "dask":
            from tasks.runtime.runners import require_real_api

            require_real_api()  # workers must reach a real API: refuse before anything starts
        from flows.rnn_flow import rnn_pipeline, rnn_sweep

        _quiet_known_failures(inv.debug, (Exception,))  # every failure ends in one line (--debug: tracebacks)
        try:
            flow = rnn_sweep if inv.command == "sweep" else rnn_pipeline
            summary = flow(config=inv.config, **inv.controls)
        except NumericalError as exc:
            return fail(str(exc), exc, inv.debug)
        except InputError:
            raise
        except Exception as exc:  # anything else (a failed sweep member, ...): still one line, and the way on
            return fail(f"the run failed: {type(exc).__name__}: {exc}; finished entries are kept, run again to "
                        "resume (--debug shows the traceback)", exc, inv.debug, status=1)
    print_summary(summary)
    return 0


def fail(message: str, exc: BaseException, debug: bool, status: int = 2) -> int:
    """Print one `error:` line (the traceback too with --debug); the exit status (2: bad input)."""
    if debug:
        import traceback

        traceback.print_exception(exc)
    print(f"error: {' '.join(message.split())[:1000]}", file=sys.stderr)
    return status


class _NoTraceback(logging.Filter):
    """Keep Prefect's line about a failure the CLI reports itself, without the traceback."""

    def __init__(self, known: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.known = known

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], self.known):
            record.exc_info, record.exc_text = None, None
        return True


def _quiet_known_failures(debug: bool, known: tuple[type[BaseException], ...]) -> None:
    if debug:
        return
    f = _NoTraceback(known)
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        for h in logging.getLogger(name).handlers:
            h.addFilter(f)


def print_summary(summary: dict) -> None:
    """A short, useful end of run: stages, verdict, where the outputs are."""
    print("\nstages:")
    for row in summary["stages"]:
        print(f"  {row['stage']:<9} {row['action']:<10} {row['reason']}")
    if "verdict" in summary:
        print(f"result: {summary['verdict']}")
    if "gate" in summary:
        print(summary["gate"])
    if "forecast" in summary:
        print(f"forecast: {summary['forecast']['rows']} rows from {summary['forecast']['first']}")
    if "leaderboard" in summary:
        lb = summary["leaderboard"]
        print(f"sweep: {lb['members']} members; winner {lb['winner']} (validation MASE {lb['val_mase']:.4g})")
    print(f"outputs: {summary['run_dir']}")
