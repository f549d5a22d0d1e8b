"""Command line of flows/rnn_flow.py: argv -> one Invocation, parsed and validated once, then run.

    python flows/rnn_flow.py [options]            run the pipeline once (the subcommand `run`)
    python flows/rnn_flow.py SUBCOMMAND [...]     one of SUBCOMMANDS (listed by --help)

Options map onto PipelineConfig fields; their help texts are the fields' descriptions. Bad input
is one `error:` line naming the option and the value, exit status 2, before Prefect is imported.
A subcommand is one row of SUBCOMMANDS: its parser, how its arguments become an Invocation, and
the function that carries it out.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import re
import sys
import tempfile
import textwrap
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from flows.server import ServerError
from tasks.config import STAGES, PipelineConfig, PromoteSettings, WindowConfig, for_sweep, members_of, with_overrides
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
    "--dayfirst": ("data", "dayfirst"),
    "--seq-length": ("window", "seq_length"),
    "--horizon": ("window", "horizon"),
    "--train-fraction": ("window", "train_fraction"),
    "--val-fraction": ("window", "val_fraction"),
    "--normalize": ("window", "normalize"),
    "--calibration": ("window", "calibration"),
    "--cell": ("model", "cell"),
    "--hidden-size": ("model", "hidden_size"),
    "--layers": ("model", "num_layers"),
    "--dropout": ("model", "dropout"),
    "--strategy": ("model", "strategy"),
    "--skip": ("model", "skip"),
    "--recurrent-steps": ("model", "recurrent_steps"),
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
    "--val-windows": ("train", "val_windows"),
    "--season-length": ("eval", "season_length"),
    "--refit-every": ("eval", "refit_every"),
    "--levels": ("eval", "levels"),
    "--references": ("eval", "references"),
    "--gate-baseline": ("eval", "gate_baseline"),
    "--refit-full": ("forecast", "refit_full"),
    "--search": ("search", "mode"),
    "--search-seeds": ("search", "seeds"),
    "--top-k": ("search", "top_k"),
    "--combine": ("search", "combine"),
    "--statistical-members": ("search", "statistical"),
    "--time-limit": ("search", "time_limit"),
    "--runner": ("runner", "kind"),
    "--dask-address": ("runner", "address"),
    "--workers": ("runner", "workers"),
    "--fig-width": ("figures", "width"),
    "--fig-height": ("figures", "height"),
    "--fig-dpi": ("figures", "dpi"),
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
    "registry": "model registry",  # a registry.json that cannot be read
    "output_dir": "--output-dir",  # rollback's
    "action": "server action",
}
# --help groups the options by stage: config section -> group
GROUP_OF = {"data": "data", "window": "window", "model": "model", "train": "train", "eval": "eval",
            "forecast": "eval", "search": "search", "figures": "output", "runner": "runner", "output": "output"}
GROUP_TITLES = {
    "data": "data (generate stage): the tutorial's sine, or your own CSV/Parquet file",
    "window": "window stage: input windows and the train/validation/test split",
    "model": "model: the recurrent network",
    "train": "train stage: optimisation, early stopping, device",
    "eval": "eval (evaluate and forecast stages): backtest, baselines, intervals, the future",
    "search": "search: several candidate models and seeds, ranked on validation, the best combined",
    "runner": "runner: where the per-bucket and per-member tasks run (threads here, or Dask)",
    "output": "output (figures stage and files): figures and where files go",
}
# a larger source (or a directory) is checked here by its columns only, and row by row in the ingest
# stage, bucket by bucket: reading 10M rows whole before the run would take ~1.5 GB
FULL_CHECK_BYTES = 32 * 2**20  # CSV
FULL_CHECK_ROWS = 1_000_000  # Parquet, a file or a dataset (its footers give the count)


@dataclass(frozen=True)
class Invocation:
    """One command line, parsed and validated: what to do and with which settings."""

    command: str  # a key of SUBCOMMANDS
    config: PipelineConfig | None = None
    controls: dict[str, Any] = field(default_factory=dict)  # the flow's other parameters
    options: dict[str, Any] = field(default_factory=dict)  # the subcommand's own (serve: cron, interval, name)
    debug: bool = False
    verbose: bool = False  # every stage's and member's log lines on the console, not the progress display


class UsageError(Exception):
    """A malformed command line (argparse's complaint, or an unknown option or subcommand)."""

    def __init__(self, message: str, command: str = "run") -> None:
        super().__init__(message)
        self.command = command


# --------------------------------------------------------------------------- parsers


class Parser(argparse.ArgumentParser):
    """argparse, but a complaint raises UsageError (one line) instead of printing the usage block."""

    def __init__(self, command: str = "run", description: str | None = None, **kw: Any) -> None:
        prog = PROG if command == "run" else f"{PROG} {command}"
        if description:  # wrap its prose; a paragraph with line breaks (the subcommand table) stays as it is
            description = "\n\n".join(p if "\n" in p else textwrap.fill(p, 100) for p in description.split("\n\n"))
        super().__init__(prog=prog, allow_abbrev=False, formatter_class=HelpFormatter, description=description, **kw)
        self.command = command

    def error(self, message: str) -> typing.NoReturn:
        if message.startswith("argument "):  # "argument --epochs: expected one argument"
            message = message[len("argument "):]
        raise UsageError(message, self.command)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=min(110, max(80, _terminal_width())))


def _terminal_width() -> int:
    try:
        return os.get_terminal_size().columns
    except OSError:
        return 100


def _field(section: str, name: str):
    return type(getattr(PipelineConfig(), section)).model_fields[name]


def _shown(default: Any) -> str:
    if default is None:
        return "none"
    if isinstance(default, tuple):
        return ",".join(map(str, default))
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


def _help(section: str, name: str) -> str:
    info = _field(section, name)
    default = info.default if info.default is not PydanticUndefined else None
    return f"{info.description} (default: {_shown(default)})"


def choices_of(section: str, name: str) -> tuple[tuple[str, ...], bool]:
    """(the words a field accepts, whether it accepts nothing else): ("auto",) for an int-or-"auto" field,
    (("none", "standard", ...), True) for a pure choice."""
    words, pure = [], True
    annotation = _field(section, name).annotation
    for arg in (annotation,) if typing.get_origin(annotation) is typing.Literal else typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Literal:
            words += [a for a in typing.get_args(arg) if isinstance(a, str)]
        elif arg is not type(None):
            pure = False
    return tuple(words), pure and bool(words)


def _case_insensitive(words: tuple[str, ...]) -> Callable[[str], str]:
    """An argparse type: a choice in any case becomes the lower-case word (the rest is left to pydantic)."""
    lower = {w.lower(): w for w in words}
    return lambda text: lower.get(text.lower(), text)


def run_parser(command: str = "run") -> Parser:
    """Every pipeline option, grouped by stage, plus the rerun and promotion controls."""
    p = Parser(command, usage=f"{PROG} [SUBCOMMAND] [options]",
               description="Train and evaluate an RNN/GRU/LSTM forecaster as a Prefect flow; unchanged stages are "
                           "reused.\n\n" + subcommand_table())
    add_pipeline_options(p)
    add_run_controls(p)
    return p


def add_pipeline_options(p: Parser) -> None:
    """The options of PipelineConfig, one group per stage (GROUP_TITLES)."""
    groups = {}
    for opt, (section, name) in OPTIONS.items():
        group = GROUP_OF[section]
        if group not in groups:
            groups[group] = p.add_argument_group(GROUP_TITLES[group])
        dest, help_ = f"{section}.{name}", _help(section, name)
        words, pure = choices_of(section, name)
        if opt in SWITCHES:
            help_ = help_ if SWITCHES[opt] else f"Turn off: {help_[0].lower()}{help_[1:]}"
            groups[group].add_argument(opt, dest=dest, action="store_const", const=SWITCHES[opt], help=help_)
        else:
            metavar = "|".join(words) if pure else opt[2:].upper().replace("-", "_")
            if _field(section, name).annotation == (bool | None):  # on or off; left out: the data decide
                metavar = "on|off"
            groups[group].add_argument(opt, dest=dest, metavar=metavar, help=help_,
                                       type=_case_insensitive(words) if words else None)


def add_run_controls(p: Parser, promote: bool = False) -> None:
    g = p.add_argument_group("run controls")
    stages = "|".join(STAGES)
    g.add_argument("--config", metavar="FILE", help="a JSON file with a full or partial config; options given "
                                                    "here override it (default: none)")
    g.add_argument("--refresh", metavar=stages, type=str.lower,
                   help="recompute this stage and every one after it (default: none)")
    g.add_argument("--until", metavar=stages, type=str.lower, default="figures",
                   help="stop after this stage; forecast also forecasts past the end of every series "
                        "(default: figures)")
    g.add_argument("--no-cache", action="store_true", help="recompute every stage (default: off)")
    g.add_argument("--promote", action=argparse.BooleanOptionalAction, default=promote,
                   help="judge this run's model against the champion and keep the better one "
                        f"(default: {_shown(promote)})")
    g.add_argument("--promote-metric", default="mase", type=str.lower, metavar="mse|rmse|mae|smape|mase",
                   help="the deciding metric, lower is better (default: mase)")
    g.add_argument("--promote-margin", type=float, default=0.0, metavar="FRACTION",
                   help="relative improvement a challenger needs, 0.05: 5%% lower (default: 0)")
    g.add_argument("--verbose", "-v", action="store_true",
                   help="print every stage's and member's log lines (epochs, validation scores, task states: what "
                        "the run's Prefect logs hold) instead of the live progress display (default: off)")
    g.add_argument("--debug", action="store_true", help="show tracebacks (default: off)")


def serve_parser() -> Parser:
    """The schedule, then the run options; promotion on by default (a retraining schedule keeps the better model)."""
    p = Parser("serve", usage="%(prog)s (--cron CRON | --interval SECONDS) [options]",
               description=f"Serve rnn_pipeline as the deployment '{DEPLOYMENT}' on a running Prefect server "
                           "(PREFECT_API_URL, else the local one that `server` started or one at Prefect's local "
                           "address); runs never overlap. The options are checked as a one-shot run's before "
                           "anything is registered. One schedule is required: serving replaces the deployment's "
                           "schedules with it.")
    s = p.add_argument_group("schedule (one of them)")
    g = s.add_mutually_exclusive_group()  # one is required (serve_invocation), after unknown options are named
    g.add_argument("--cron", help='a cron schedule in UTC, e.g. "0 3 * * *" (03:00 every day)')
    g.add_argument("--interval", type=float, metavar="SECONDS", help="run every SECONDS")
    s.add_argument("--name", default=DEPLOYMENT, help=f"deployment name (default: {DEPLOYMENT})")
    s.add_argument("--allow-data", action="append", metavar="DIR",
                   help="a folder its runs may read data files from, besides --data-path's (repeatable; runs "
                        "given other files or another --output-dir are refused) (default: none)")
    add_pipeline_options(p)
    add_run_controls(p, promote=True)
    return p


def sweep_parser() -> Parser:
    """The run options plus the grid of members."""
    p = Parser("sweep", usage="%(prog)s (--grid KEY=V1,V2 ... | --grid-file FILE) [options]",
               description="Train one model per member of a grid (on the runner), rank the members on the validation "
                           "range, then evaluate the winner on the test range as a run does.")
    g = p.add_argument_group("grid")
    g.add_argument("--grid", nargs="+", metavar="KEY=V1,V2", help="settings to cross, e.g. cell=rnn,gru,lstm "
                   "hidden_size=32,64 seq_length=12,24 (any option's field name, or section.field) (default: none)")
    g.add_argument("--grid-file", metavar="FILE", help="a JSON grid: {key: [values]} or a list of {key: value} "
                   "(default: none)")
    add_pipeline_options(p)
    add_run_controls(p)
    return p


def rollback_parser() -> Parser:
    p = Parser("rollback", description="Restore the previous champion model of <output-dir>/models/registry.json.")
    p.add_argument("--output-dir", default=PipelineConfig().output.root,
                   help=f"the output root (default: {PipelineConfig().output.root})")
    p.add_argument("--debug", action="store_true", help="show tracebacks (default: off)")
    return p


SERVER_ACTIONS = ("start", "stop", "status")


def server_parser() -> Parser:
    p = Parser("server", usage="%(prog)s [start|stop|status] [--port PORT]",
               description="Keep a local Prefect server and its UI running for this session: every later run "
                           "(in any terminal, with PREFECT_API_URL unset) uses it instead of starting a temporary "
                           "server, so a rerun takes seconds; the UI shows every run.")
    p.add_argument("action", nargs="?", default="start", metavar="start|stop|status",
                   help="start it (default), stop it, or say whether it runs")
    p.add_argument("--port", type=int, help="port to listen on (default: Prefect's server.api.port, 4200)")
    p.add_argument("--debug", action="store_true", help="show tracebacks (default: off)")
    return p


def clean_parser() -> Parser:
    out = PipelineConfig().output
    p = Parser("clean", description="Drop old run folders and the cache entries that neither the last N runs nor "
                                    "the champion model use; say what was freed. Champion model files "
                                    "(<output-dir>/models) are never touched.")
    p.add_argument("--keep", type=int, default=10, metavar="N", help="run folders to keep, newest first (default: 10)")
    p.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing (default: off)")
    p.add_argument("--output-dir", default=out.root, help=f"the output root (default: {out.root})")
    p.add_argument("--data-dir", default=out.data_dir, help=f"the data dir (default: {out.data_dir})")
    p.add_argument("--debug", action="store_true", help="show tracebacks (default: off)")
    return p


def check_parser() -> Parser:
    p = Parser("check", usage="%(prog)s [options] | %(prog)s --deployment NAME [--prefect-yaml FILE]",
               description="Check the options exactly as a run would (settings, data file, directories, device) "
                           "and run nothing; with --deployment, check that deployment's parameters in prefect.yaml "
                           "(its build step does, before `prefect deploy` registers anything).")
    add_pipeline_options(p)
    add_run_controls(p)
    g = p.add_argument_group("deployment")
    g.add_argument("--deployment", metavar="NAME", help="check this deployment's parameters instead (default: none)")
    g.add_argument("--prefect-yaml", metavar="FILE", help="the file that declares it (default: prefect.yaml)")
    return p


# --------------------------------------------------------------------------- argv -> Invocation


def parse(argv: list[str]) -> Invocation:
    """The Invocation of `argv`; UsageError for a malformed command line, pydantic's ValidationError
    and InputError for a setting that is wrong."""
    command, rest = "run", argv
    if argv and not argv[0].startswith("-"):
        command, rest = argv[0], argv[1:]
        if command not in SUBCOMMANDS:
            raise UsageError(unknown_subcommand(command, rest))
    sub = SUBCOMMANDS[command]
    parser = sub.parser()
    args, unknown = parser.parse_known_args(rest)
    if unknown:
        raise UsageError(unknown_message(parser, unknown, command), command)
    return sub.invocation(args)


def unknown_subcommand(word: str, rest: list[str]) -> str:
    """What `word` in a subcommand's place most likely meant: a stage (a run does every stage up
    to --until: `forecast` -> the same command with --until forecast), else the closest subcommand."""
    if word.lower() in STAGES:
        stage = word.lower()
        does = ("forecasts past the end of every series" if stage == "forecast"
                else f"stops after the {stage} stage")
        command = " ".join([PROG, "--until", stage, *(rest or ["[options]"])])
        return (f"{word!r} is a stage, not a subcommand: a run does every stage up to --until (default figures), "
                f"and --until {stage} {does}: {command}")
    close = difflib.get_close_matches(word, SUBCOMMANDS, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"unknown subcommand {word!r}; {hint}(subcommands: {', '.join(SUBCOMMANDS)})"


def options_of(parser: argparse.ArgumentParser) -> list[str]:
    """The long options `parser` takes, sorted (argparse keeps them in its actions, which it does not document)."""
    return sorted({o for action in parser._actions for o in action.option_strings if o.startswith("--")})


def unknown_message(parser: argparse.ArgumentParser, unknown: list[str], command: str = "run") -> str:
    """What was not understood: the subcommands that take an option `command` does not, else the
    closest option when there is one."""
    word = next((u for u in unknown if u.startswith("-")), unknown[0])
    if not word.startswith("-"):
        return f"unexpected argument {word!r}"
    name = word.split("=", 1)[0]
    elsewhere = [other for other, sub in SUBCOMMANDS.items() if other != command and name in options_of(sub.parser())]
    if elsewhere:
        listed = " and ".join([", ".join(elsewhere[:-1]), elsewhere[-1]] if len(elsewhere) > 1 else elsewhere)
        return f"{name} is an option of {listed}, not of {command}"
    close = difflib.get_close_matches(name, options_of(parser), n=1, cutoff=0.6)
    return f"unknown option {name}" + (f"; did you mean {close[0]}?" if close else "")


def run_invocation(a: argparse.Namespace, command: str = "run") -> Invocation:
    promote = PromoteSettings(metric=a.promote_metric, margin=a.promote_margin)
    controls = {"refresh": choice("--refresh", a.refresh, STAGES), "until": choice("--until", a.until, STAGES),
                "no_cache": a.no_cache, "promote": bool(a.promote), "promote_metric": promote.metric,
                "promote_margin": promote.margin}
    return Invocation(command, config_from_args(a), controls, debug=a.debug, verbose=a.verbose)


def sweep_invocation(a: argparse.Namespace) -> Invocation:
    inv = run_invocation(a, "sweep")
    for_sweep(inv.config)  # refuses --search on before anything starts
    grid = grid_members(inv.config, a.grid or [], a.grid_file)
    given = {dest for dest, value in vars(a).items() if "." in dest and value is not None}  # set on the command line
    if both := sorted(given & {key for member in grid for key in member}):
        section, name = both[0].split(".")
        where = f"--grid-file={a.grid_file}" if a.grid_file else f"--grid {' '.join(a.grid)}"
        raise InputError(both[0], getattr(getattr(inv.config, section), name),
                         f"the grid ({where}) sets it for every member; give it in one place")
    return Invocation("sweep", inv.config, {**inv.controls, "grid": grid}, debug=a.debug, verbose=a.verbose)


def serve_invocation(a: argparse.Namespace) -> Invocation:
    if a.cron is None and a.interval is None:  # Prefect's serve would clear the deployment's schedules
        raise UsageError("serve needs a schedule: --cron CRON or --interval SECONDS (it replaces the deployment's "
                         "schedules)", "serve")
    inv = run_invocation(a, "serve")
    return Invocation("serve", inv.config, inv.controls, {"cron": a.cron, "interval": a.interval, "name": a.name,
                                                         "allow_data": tuple(a.allow_data or ())}, a.debug)


def check_invocation(a: argparse.Namespace) -> Invocation:
    if a.deployment is None:
        if a.prefect_yaml is not None:  # checking a file's deployment needs its name
            raise InputError("--prefect-yaml", a.prefect_yaml, "says where a deployment is declared: add --deployment "
                             "NAME to check one")
        return run_invocation(a, "check")
    return deployment_invocation(Path(a.prefect_yaml or "prefect.yaml"), a.deployment, a.debug)


def at_least(option: str, value: int, low: int) -> int:
    if value < low:
        raise InputError(option, value, f"must be {low} or more")
    return value


def choice(option: str, value: str | None, words: tuple[str, ...]) -> str | None:
    if value is not None and value not in words:
        raise InputError(option, value, f"expected one of {', '.join(words)}")
    return value


def grid_members(config: PipelineConfig, specs: list[str], grid_file: str | None) -> list[dict[str, Any]]:
    """The members of a sweep, each {"section.field": value}: the product of `specs`
    ("cell=rnn,gru" ...), or a JSON file holding such a mapping of lists or a list of members.
    Each member is validated on top of `config` (InputError naming --grid or --grid-file)."""
    if grid_file:
        try:
            raw = json.loads(Path(grid_file).read_text())
        except (OSError, ValueError) as exc:
            raise InputError("grid_file", grid_file, f"cannot read a JSON grid ({exc})") from None
        return members_of(config, raw, "grid_file", grid_file)
    raw = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not values:
            raise InputError("grid", spec, "expected KEY=V1,V2 (e.g. cell=rnn,gru)")
        raw[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    if not raw:
        raise InputError("grid", " ".join(specs), "no members (give --grid KEY=V1,V2 ... or --grid-file FILE)")
    return members_of(config, raw, "grid", " ".join(specs))


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


FLOW_PARAMETERS = ("config", "refresh", "until", "no_cache", "promote", "promote_metric", "promote_margin")


def deployment_invocation(path: Path, name: str, debug: bool = False) -> Invocation:
    """The Invocation a worker's run of deployment `name` of prefect.yaml `path` would get."""
    import yaml

    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InputError("--prefect-yaml", str(path), f"cannot read it ({' '.join(str(exc).split())[:160]})") from None
    found = [d for d in spec.get("deployments") or [] if d.get("name") == name]
    if not found:
        names = ", ".join(str(d.get("name")) for d in spec.get("deployments") or []) or "none"
        raise InputError("--deployment", name, f"not a deployment of {path} (deployments: {names})")
    params = dict(found[0].get("parameters") or {})
    entrypoint = str(found[0].get("entrypoint") or "flows/rnn_flow.py:rnn_pipeline")
    flow = entrypoint.rpartition(":")[2]
    if flow not in ("rnn_pipeline", "rnn_sweep"):
        raise InputError("--deployment", name, f"its entrypoint {entrypoint!r} is not rnnflow's "
                                               "(flows/rnn_flow.py:rnn_pipeline or flows/rnn_flow.py:rnn_sweep)")
    allowed = (*FLOW_PARAMETERS, "grid") if flow == "rnn_sweep" else FLOW_PARAMETERS
    if extra := sorted(set(params) - set(allowed)):
        raise InputError("--deployment", name, f"parameter {extra[0]!r} is not one of {flow}'s ({', '.join(allowed)})")
    cfg = PipelineConfig.model_validate(params.pop("config", None) or {})
    grid = []
    if flow == "rnn_sweep":  # as the sweep validates its members: each on top of the config
        for_sweep(cfg)
        grid = members_of(cfg, params.get("grid") or [], "grid", json.dumps(params.get("grid") or []))
    promote = PromoteSettings(metric=params.get("promote_metric", "mase"), margin=params.get("promote_margin", 0.0))
    controls = {"refresh": choice("refresh", params.get("refresh"), STAGES),
                "until": choice("until", params.get("until", "figures"), STAGES),
                "no_cache": bool(params.get("no_cache", False)), "promote": bool(params.get("promote", False)),
                "promote_metric": promote.metric, "promote_margin": promote.margin, **({"grid": grid} if grid else {})}
    return Invocation("check", cfg, controls, {"deployment": name}, debug)


# --------------------------------------------------------------------------- validation


def validate(cfg: PipelineConfig) -> dict:
    """Check what pydantic cannot before any training: device, data file, output dirs (InputError).

    Returns what was learnt about the data file (ingest's summary), {} for generated data.
    """
    if cfg.train.device != "auto":
        from tasks.components.network import resolve_device

        resolve_device(cfg.train.device)
    info: dict = {}
    check_runner(cfg)
    if cfg.data.data_path is None:
        check_generated(cfg)
    else:
        if not str(cfg.data.data_path).strip():
            raise InputError("data_path", cfg.data.data_path, "is empty: give the path of a CSV or Parquet file")
        check_unused(cfg.data, GENERATOR_ONLY, "data", "sets the generated sine, and --data-path replaces it with "
                                                     "your file: leave it out")
        check_data_path(cfg.data.data_path)
        check_named_columns(cfg)
        from tasks.components import ingest, scan
        from tasks.components.calendar import check_forecast_range

        kind = scan.source_kind(cfg.data.data_path)
        path = Path(cfg.data.data_path)
        source = scan.open_source(path)
        # the columns in every file (a dataset's footers), before any row is read
        scan.check_columns(source, time_column=cfg.data.time_column, value_column=cfg.data.value_column,
                           id_column=cfg.data.id_column, group_column=cfg.data.group_column)
        # a source too big to read here has every row checked in the ingest stage (bucket by bucket)
        if (kind == "csv" and path.stat().st_size <= FULL_CHECK_BYTES) or (
                kind == "parquet" and sum(source.rows) <= FULL_CHECK_ROWS):
            try:
                _, info = ingest.prepare_series(
                    ingest.read_table(path), time_column=cfg.data.time_column,
                    value_column=cfg.data.value_column, id_column=cfg.data.id_column, fill=cfg.data.fill,
                    fill_missing_dates=cfg.data.fill_missing_dates, time_zone=cfg.data.time_zone,
                    holidays=cfg.data.holidays, dayfirst=cfg.data.dayfirst,
                )
            except InputError as exc:
                if exc.field != "series_length":
                    raise
                raise InputError("data_path", cfg.data.data_path, exc.message) from None  # name the option
            check_forecast_range(info["end"], info["frequency"], cfg.window.horizon, cfg.data.data_path)
            search = search_windows(cfg, info)
            check_series_length(info["lengths"], cfg.window, cfg.data.data_path, search and search.ranks)
            check_search_windows(cfg, info, search)
            check_validation_origins(cfg, info, search)
    check_search(cfg)
    check_writable(cfg.output.root, "output.root")
    check_writable(cfg.output.data_dir, "output.data_dir")
    return info


DATA_SUFFIXES = (".csv", ".txt", ".parquet", ".pq")


def check_data_path(path: str) -> None:
    """A --data-path that does not exist: InputError naming it as typed, the absolute path it was
    looked for at (relative paths are read from the current directory) and the closest file or
    directory beside it ("did you mean 'sales.csv'?"), or the directory that is missing."""
    typed = Path(path).expanduser()
    if typed.exists():
        return
    where = typed.absolute()
    if not where.parent.is_dir():
        raise InputError("data_path", path, f"file not found: no directory {where.parent}")
    names = [q.name for q in where.parent.iterdir() if q.is_dir() or q.suffix.lower() in DATA_SUFFIXES]
    close = difflib.get_close_matches(where.name, names, n=1, cutoff=0.6)
    hint = f"; did you mean {str(typed.parent / close[0]) if typed.parent != Path('.') else close[0]!r}?" if close else ""
    raise InputError("data_path", path, f"file not found (looked for {where}){hint}")


COLUMN_FIELDS = ("time_column", "value_column", "id_column", "group_column")


def check_named_columns(cfg: PipelineConfig) -> None:
    """Every column option that names no column of the file, in one InputError (the first named by
    its option, the others after "also"), each with the column it most likely means and the file's
    columns once. A single missing column is left to the ingest's own check (the same words)."""
    from tasks.components import ingest, scan

    columns = scan.source_columns(cfg.data.data_path)
    named = {f: getattr(cfg.data, f) for f in COLUMN_FIELDS if getattr(cfg.data, f) is not None}
    missing = [(f, name) for f, name in named.items() if name not in columns]
    if len(missing) < 2:
        return
    try:
        head = next(scan.scan(cfg.data.data_path, columns, batch_rows=20))
    except InputError:  # no rows: the suggestions go by names alone
        head = pd_frame(columns)

    def worded(field: str, name: str) -> str:
        close = ingest.suggest_column(head, field, name)
        return "no such column" + (f" (did you mean {close!r}?)" if close else "")

    (field, name), *others = missing
    also = "".join(f"; {FLAG_OF_FIELD.get(f, f)}={n!r}: {worded(f, n)}" for f, n in others)
    shown = ", ".join(c if c.isprintable() else repr(c) for c in columns)
    raise InputError(field, name, f"{worded(field, name)}{also}; the file's columns: {shown}")


def pd_frame(columns: list[str]):
    """An empty DataFrame with `columns` (what suggestions read when the file has no rows)."""
    import pandas as pd

    return pd.DataFrame(columns=columns)


FILE_ONLY = ("time_column", "value_column", "id_column", "group_column", "fill", "fill_missing_dates", "time_zone",
             "holidays", "dayfirst")  # DataConfig fields that describe a data file


GENERATOR_ONLY = ("n_points", "n_series", "x_max", "amplitude", "period", "noise", "trend", "components",
                  "seed")  # DataConfig fields of the generated sine
DASK_ONLY = ("address", "threads_per_worker")  # RunnerConfig fields that only --runner dask reads


def check_generated(cfg: PipelineConfig) -> None:
    """Without a data file, a setting that describes one (its columns, repairs, zone, holidays) is
    refused rather than ignored: InputError naming the first such setting that differs from its
    default (the run would generate the tutorial's sine and never read it)."""
    check_unused(cfg.data, FILE_ONLY, "data", "describes a data file, and none is given: add --data-path (without "
                                              "it the run generates the tutorial's sine)")


def check_runner(cfg: PipelineConfig) -> None:
    """A Dask setting (--dask-address, --threads-per-worker) with the local runner is refused
    rather than ignored (InputError)."""
    if cfg.runner.kind != "dask":
        check_unused(cfg.runner, DASK_ONLY, "runner", "applies to --runner dask only: add --runner dask")


def check_unused(section, names: tuple[str, ...], prefix: str, reason: str) -> None:
    """InputError(`prefix`.name, value, reason) for the first of `names` that `section` sets to
    something other than its default: a setting this run would never read."""
    defaults = type(section)()
    for name in names:
        value = getattr(section, name)
        if value != getattr(defaults, name):
            raise InputError(f"{prefix}.{name}", value, reason)


def check_search(cfg: PipelineConfig) -> None:
    """A search's members file must hold valid members; a search is one ensemble for all series,
    so it does not go with per-group models."""
    mode = cfg.search.mode
    if mode in ("on", "off", "auto"):
        if mode == "on" and cfg.data.group_column:
            raise InputError("search.mode", mode, "a search trains one ensemble for all series; per-group models "
                             "(--group-column) need --search off (auto turns it off for them)")
        return
    try:
        raw = json.loads(Path(mode).read_text())
    except (OSError, ValueError) as exc:
        raise InputError("search.mode", mode, f"cannot read a JSON file of members ({exc})") from None
    members_of(cfg, raw, "search.mode", mode)
    if cfg.data.group_column:
        raise InputError("search.mode", mode, "a search trains one ensemble for all series; per-group models "
                         "(--group-column) need --search off")


def check_series_length(lengths: dict[str, int], w: WindowConfig, path: str,
                        ranks: Callable[[int], bool] | None = None) -> None:
    """Refuse a series too short for the windows and the split, naming the options to lower and by how much.

    ranks: for a built-in search (SearchWindows.ranks), whether a horizon leaves its longest window
    validation origins: a horizon suggested must pass it too."""
    from tasks.components.split import min_series_length

    def need(seq_length: int, horizon: int) -> int:
        return min_series_length(seq_length, horizon, w.train_fraction, w.val_fraction)

    sid, n = min(lengths.items(), key=lambda kv: kv[1])
    L, H = w.seq_length, w.horizon
    if n >= need(L, H):
        return
    who = f"the series in {path}" if len(lengths) == 1 else f"series {sid!r} in {path}"
    option, value = ("window.horizon", H) if H > 1 else ("window.seq_length", L)
    problem = (f"{who} has {n} points, but --seq-length {L} and --horizon {H} need at least {need(L, H)} "
               "(the windows plus the train/validation/test split)")
    if n < need(1, 1):
        raise InputError(option, value, f"{problem}; it is too short for any window")
    fits = []
    if H > 1 and (ok := [h for h in range(1, H) if need(L, h) <= n and (ranks is None or ranks(h))]):
        fits.append(f"--horizon {max(ok)} fits with --seq-length {L}")
    if (most_l := n - need(1, H) + 1) >= 1:
        fits.append(f"--seq-length {most_l} fits with --horizon {H}")
    lower = "--horizon or --seq-length" if H > 1 else "--seq-length"
    raise InputError(option, value, f"{problem}; lower {lower} ({'; '.join(fits)})")


@dataclass(frozen=True)
class SearchWindows:
    """The built-in search's windows on a file (--search on, or auto for a file, --seq-length left
    to the search): one and two seasons and 20 points (tasks.components.search.window_lengths) of
    its shortest series, `series_id` with `points` points; its members are ranked on the
    validation origins of the longest. window: the resolved window settings."""

    series_id: str
    points: int
    season: int | None
    window: WindowConfig
    longer: int | None = None  # a second season of the calendar (sub-daily data's week)

    def longest(self, horizon: int) -> int:
        """The longest window the search reads for `horizon`."""
        from tasks.components.search import window_lengths

        return max(window_lengths(self.season, self.points, horizon, longer=self.longer))

    def ranks(self, horizon: int) -> bool:
        """Whether the longest window's split holds validation origins at `horizon`."""
        from tasks.components.split import build_split

        w = self.window
        try:
            return build_split([self.points], [self.series_id], self.longest(horizon), horizon, w.train_fraction,
                               w.val_fraction, calibration=w.calibration).count("val") > 0
        except ValueError:
            return False


def search_windows(cfg: PipelineConfig, info: dict) -> SearchWindows | None:
    """The built-in search's windows on the file of `info` (lengths, frequency); None without a
    built-in search (off, a members file, per-group models, or every member reading --seq-length)."""
    from tasks.components.calendar import seasons_for
    from tasks.config import resolve

    resolved = resolve(cfg, device="cpu")  # what "auto" means for a file (the device plays no part here)
    w = resolved.window
    if resolved.search.mode != "on" or cfg.data.group_column or w.seq_length != WindowConfig().seq_length:
        return None
    sid, n = min(info["lengths"].items(), key=lambda kv: kv[1])
    seasons = seasons_for(info.get("frequency"), n)
    return SearchWindows(sid, n, seasons[0] if seasons else None, w, seasons[1] if len(seasons) > 1 else None)


def check_search_windows(cfg: PipelineConfig, info: dict, search: SearchWindows | None) -> None:
    """The built-in search (`search`: search_windows) ranks its members on the validation origins
    of its longest window: refuse a horizon that leaves the shortest series none there, as the
    run would, naming what fits."""
    h = cfg.window.horizon
    if search is None or search.ranks(h):
        return
    who = "the series" if len(info["lengths"]) == 1 else f"series {search.series_id!r}"
    fits = [k for k in range(1, h) if search.ranks(k)]
    ways = ([f"--horizon {max(fits)} fits"] if fits else []) + ["or --search off"]
    raise InputError("window.horizon", h, f"{who} in {cfg.data.data_path} ({search.points} points) leaves the search "
                                          f"no validation origins to rank its members by with its longest window "
                                          f"({search.longest(h)} points): {'; '.join(ways)}")


def check_validation_origins(cfg: PipelineConfig, info: dict, search: SearchWindows | None) -> None:
    """Refuse windows that leave the file's series no validation origin (unless --val-fraction 0),
    as the window stage would (tasks.windowing.no_validation_error), naming the --seq-length that
    fits. The built-in search's own windows (`search`) are check_search_windows's."""
    from tasks.config import resolve
    from tasks.windowing import no_validation_error, validation_origins

    w = resolve(cfg, device="cpu").window  # the calibration origins "auto" means for a file
    if not w.val_fraction or search is not None:
        return
    lengths = list(info["lengths"].values())
    calibration = 0 if w.calibration == "auto" else w.calibration
    try:
        found = validation_origins(lengths, w, calibration, w.seq_length)
    except ValueError:
        return  # too short altogether: check_series_length's to say
    if not found:
        raise no_validation_error(lengths, w, calibration, where=f" in {cfg.data.data_path}")


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


def describe_validation_error(exc: ValidationError, deployment: str | None = None) -> str:
    """The first pydantic error as one line naming the option (or the deployment's parameter) and the value."""
    err = exc.errors()[0]
    loc = tuple(str(x) for x in err["loc"])
    msg = str(err["ctx"]["error"]) if err["type"] == "value_error" and "error" in err.get("ctx", {}) else err["msg"]
    if err["type"] == "literal_error" and isinstance(err["loc"][-1], int):  # an item of a list setting
        msg += " (a comma-separated list of them, or none alone)"
    if exc.title == "PromoteSettings" and loc:
        name = f"promote_{loc[0]}" if deployment else f"--promote-{loc[0]}"
    elif deployment:
        name = "config." + ".".join(loc)
    else:
        name = FLAG_OF.get(loc[:2], ".".join(loc)) if len(loc) >= 2 else ".".join(loc) or "config"
    return f"{deployment or ''}{name}={shown(err.get('input'))}: {msg}"


def shown(value: object) -> str:
    """A value as an error line shows it: a number typed on the command line as the number (0, not
    '0'), anything else as Python's repr (quoted strings, lists)."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", value.strip()):
        return value.strip()
    return repr(value)


def describe_input_error(exc: InputError, deployment: str | None = None) -> str:
    """An InputError as one line, naming the command-line option (or the deployment's parameter) where there is one."""
    if deployment and exc.field in ("--deployment", "--prefect-yaml"):  # the prefix already names them
        return f"{deployment}{exc.message}"
    if deployment:
        name = FLAG_OF_FIELD.get(exc.field, exc.field)
        name = f"config.{'.'.join(OPTIONS[name])}" if name in OPTIONS else exc.field
        return f"{deployment}{name}={exc.value!r}: {exc.message}"
    flag = FLAG_OF_FIELD.get(exc.field, exc.field)
    if flag in SWITCHES and exc.value is SWITCHES[flag]:  # a switch was given: name it, not its value
        return f"{flag}: {exc.message}"
    return f"{flag}={exc.value!r}: {exc.message}"


def deployment_named(argv: list[str]) -> str | None:
    """"prefect.yaml, deployment 'NAME': " when `argv` checks a deployment (its errors name parameters)."""
    if argv[:1] != ["check"] or "--deployment" not in argv[:-1]:
        return None
    name = argv[argv.index("--deployment") + 1]
    path = argv[argv.index("--prefect-yaml") + 1] if "--prefect-yaml" in argv[:-1] else "prefect.yaml"
    return f"{path}, deployment {name!r}: "


# --------------------------------------------------------------------------- running


def main(argv: list[str]) -> int:
    """Entry point: parse and validate once, then carry the subcommand out; bad input -> exit 2."""
    debug, deployment = "--debug" in argv, deployment_named(argv)
    try:
        inv = parse(argv)
        if inv.command in ("run", "sweep"):  # SIGINT/SIGTERM: one line, exit 130/143, nothing left running
            from tasks.runtime import interrupt

            interrupt.arm()
        info = validate(inv.config) if inv.config is not None else {}  # before any Prefect start-up or training
        if inv.controls.get("promote"):  # a registry of the wrong shape: one line now, not a TypeError at the end
            from tasks.runtime import registry

            registry.load(Path(inv.config.output.root).expanduser())
        if inv.config is not None and inv.config.runner.kind == "dask" and not inv.options.get("deployment"):
            require_dask_server()  # `check` too: it says what the run would
        return SUBCOMMANDS[inv.command].handler(inv, info)
    except UsageError as exc:
        where = PROG if exc.command == "run" else f"{PROG} {exc.command}"
        return fail(f"{exc} (see: {where} --help)", exc, debug)
    except ValidationError as exc:
        return fail(describe_validation_error(exc, deployment), exc, debug)
    except InputError as exc:
        return fail(describe_input_error(exc, deployment), exc, debug)
    except ServerError as exc:
        return fail(str(exc), exc, debug)
    except KeyboardInterrupt as exc:  # Ctrl-C in a command that is not a run (server, check, clean, ...)
        return fail("interrupted", exc, debug, status=130)


def run(inv: Invocation, info: dict) -> int:
    """Run the flow (or the sweep) once, on the server flows/server.py chooses, and print the summary.

    The server going away does not fail a run that finished its stages: the summary is printed,
    then one line says what the server did not record (tasks/runtime/publish.py), and the
    process leaves at once rather than wait on Prefect's deliveries to a server that is gone.
    """
    from flows.server import prefect_api
    from tasks.errors import NumericalError
    from tasks.runtime import publish

    dask = inv.config.runner.kind == "dask"
    final_state = True
    with prefect_api(temporary=not dask, meanwhile=_import_flow) as url:  # Dask: a running server
        from flows.report import FINISHED, quiet_console
        from flows.rnn_flow import rnn_pipeline, rnn_sweep
        from tasks.runtime import progress

        # every failure ends in one line (--debug: tracebacks); member-level lines only at --verbose
        publish.hush_delivery_errors()
        FINISHED.clear()
        try:
            with quiet_console(inv.debug, (Exception,), inv.verbose), \
                    (contextlib.nullcontext() if inv.verbose else progress.display()):
                flow = rnn_sweep if inv.command == "sweep" else rnn_pipeline
                summary = flow(config=inv.config, **inv.controls)
        except NumericalError as exc:
            return _leave(fail(str(exc), exc, inv.debug), url)
        except InputError:
            raise
        except Exception as exc:  # anything else (a failed sweep member, ...): still one line, and the way on
            if isinstance(exc, OSError) and exc.filename:  # a full disk, a read-only folder, ...
                return _leave(fail(f"{exc.filename}: {exc.strerror or exc}; finished stages are kept, run the same "
                                   "command to resume once that is fixed", exc, inv.debug, status=1), url)
            if not (publish.unreachable(exc) and "summary" in FINISHED):
                return _leave(fail(f"the run failed: {type(exc).__name__}: {exc}; finished entries are kept, run "
                                   "again to resume (--debug shows the traceback)", exc, inv.debug, status=1), url)
            summary, final_state = FINISHED["summary"], False  # every output is on disk; the server is gone
    print_summary(summary)
    _fast_exit()
    return _leave(exit_status(summary), url, final_state)


def _leave(status: int, url: str | None, final_state: bool = True) -> int:
    """The exit status, after the one line saying what the Prefect server did not record (if
    anything). When it still does not answer, leave now (os._exit): Prefect's exit handlers would
    retry their deliveries to it for minutes. Child processes are stopped first (atexit, which
    stops a temporary server, does not run then)."""
    from flows.server import server_answers
    from tasks.runtime import interrupt, publish

    line = publish.outage_line(url, final_state)
    if line is None:
        return status
    print(line, file=sys.stderr)
    if url and server_answers(url, timeout=2.0):
        return status
    interrupt.stop_children()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def exit_status(summary: dict) -> int:
    """A finished run's exit status: 0, or GATE_FAILED_STATUS (3) when its model did not pass the
    baseline gate (decided before the test range: tasks.components.backtest.decide_gate): the
    outputs are complete and the forecast is the model's, but it did not beat the best baseline,
    so a script (or `set -e`) stops there, as promotion does. A run that stopped before the
    evaluate stage (--until) has no gate: 0."""
    from tasks.components.backtest import GATE_FAILED_STATUS

    return GATE_FAILED_STATUS if summary.get("gate_passed") is False else 0


def require_dask_server() -> None:
    """--runner dask: its workers report to a running Prefect server (a temporary one lives and dies
    with this process, out of their reach). InputError naming --runner when PREFECT_API_URL names
    a server nobody answers at, or, unset, when no local server answers (flows/server.py)."""
    from prefect.settings import get_current_settings

    from flows.server import HINT, running_local_server, server_reachable

    need = "Dask workers need a running Prefect server to report to"
    if configured := get_current_settings().api.url:
        if not server_reachable(configured):
            raise InputError("runner.kind", "dask", f"{need}, and none answers at PREFECT_API_URL={configured}; {HINT}")
    elif running_local_server() is None:
        raise InputError("runner.kind", "dask", f"{need}, not a temporary one of this process; {HINT}")


def _import_flow() -> None:
    """Import the flow (torch, pandas, Prefect's engine: seconds) while a temporary server starts."""
    import flows.rnn_flow  # noqa: F401


def _fast_exit() -> None:
    """Spare the interpreter's final garbage collection of every object torch, pandas and Prefect made
    at import (about 1.5 s): nothing at exit needs collecting. gc.freeze moves them out of its reach."""
    import gc

    gc.freeze()


def serve(inv: Invocation, info: dict) -> int:
    from flows.serve import serve as serve_flow

    return serve_flow(inv)


def rollback(inv: Invocation, info: dict) -> int:
    from flows.serve import rollback as rollback_champion

    return rollback_champion(inv.options["output_dir"])


def server(inv: Invocation, info: dict) -> int:
    """`server start|stop|status`: the session's local Prefect server."""
    from flows import server as srv

    action = inv.options["action"]
    if action == "stop":
        stopped = srv.stop_session_server()
        print(f"stopped the Prefect server at {stopped.ui} (pid {stopped.pid})" if stopped
              else "no server started by `python flows/rnn_flow.py server` is running")
        return 0
    if action == "status":
        url = srv.running_local_server()
        print(f"a Prefect server answers at {url.removesuffix('/api')}; runs use it" if url
              else "no local Prefect server is running; runs start a temporary one "
                   "(`python flows/rnn_flow.py server` keeps one running)")
        return 0
    running, started = srv.start_session_server(inv.options["port"])
    if started:
        print(f"Prefect server and UI running at {running.ui} (pid {running.pid}, log {running.log}).\n"
              f"Every run with PREFECT_API_URL unset now uses it. Stop it: {PROG} server stop")
    else:
        print(f"a Prefect server is already running at {running.ui}; runs use it")
    return 0


def clean(inv: Invocation, info: dict) -> int:
    from tasks.runtime.prune import describe, prune

    o = inv.options
    report = prune(Path(o["output_dir"]), Path(o["data_dir"]), keep=o["keep"], dry_run=o["dry_run"])
    print(describe(report, o["keep"], dry_run=o["dry_run"]))
    return 1 if report.failed else 0  # something could not be removed (the line says what and why)


def report_check(inv: Invocation, info: dict) -> int:
    """`check`: say that the options are valid, and what the data file holds."""
    deployment = inv.options.get("deployment")
    what = f"the parameters of deployment {deployment!r}" if deployment else "the options"
    data = "the generated sine"
    if inv.config.data.data_path is not None and not info:
        data = f"{inv.config.data.data_path}: its columns; its rows are checked by the ingest stage, bucket by bucket"
    if info:
        sizes = sorted(info["lengths"].values())
        data = (f"{inv.config.data.data_path}: {info['n_series']} series of {sizes[0]}"
                + (f"-{sizes[-1]}" if sizes[-1] != sizes[0] else "") + f" points, frequency {info['frequency']}")
    if grid := inv.controls.get("grid"):
        data += f"; {len(grid)} sweep members"
    print(f"ok: {what} are valid ({data})")
    return 0


def fail(message: str, exc: BaseException, debug: bool, status: int = 2) -> int:
    """Print one `error:` line (the traceback too with --debug); the exit status (2: bad input)."""
    if debug:
        import traceback

        traceback.print_exception(exc)
    print(f"error: {' '.join(message.split())[:1000]}", file=sys.stderr)
    return status


def print_summary(summary: dict) -> None:
    """The one summary block of a run: stages, settings, verdict, promotion, where the outputs are."""
    from flows.report import summary_lines

    print()
    print("\n".join(summary_lines(summary, FLAG_OF_FIELD)))


# --------------------------------------------------------------------------- the subcommands


@dataclass(frozen=True)
class Subcommand:
    """One subcommand: a line for --help, its parser, args -> Invocation, and what carries it out
    (given the Invocation, validated, and what validation learnt about the data file)."""

    summary: str
    parser: Callable[[], Parser]
    invocation: Callable[[argparse.Namespace], Invocation]
    handler: Callable[[Invocation, dict], int]


SUBCOMMANDS: dict[str, Subcommand] = {
    "run": Subcommand("run the pipeline once (the default: `python flows/rnn_flow.py [options]`)",
                      run_parser, run_invocation, run),
    "sweep": Subcommand("train one model per member of a grid (--grid or --grid-file), rank them on the "
                        "validation range, evaluate the winner", sweep_parser, sweep_invocation, run),
    "server": Subcommand("keep a local Prefect server + UI running for the session; later runs use it "
                         "(start|stop|status)", server_parser,
                         lambda a: Invocation("server", options={"action": choice("action", a.action, SERVER_ACTIONS),
                                                                 "port": a.port}, debug=a.debug), server),
    "check": Subcommand("check options (or a prefect.yaml deployment's parameters) as a run would; run nothing",
                        check_parser, check_invocation, report_check),
    "serve": Subcommand("scheduled retraining (--cron or --interval) on a running Prefect server",
                        serve_parser, serve_invocation, serve),
    "rollback": Subcommand("make the previous champion model the champion again", rollback_parser,
                           lambda a: Invocation("rollback", options={"output_dir": a.output_dir}, debug=a.debug),
                           rollback),
    "clean": Subcommand("drop old run folders and cache entries not used by the last N runs or the champion",
                        clean_parser,
                        lambda a: Invocation("clean", options={"keep": at_least("--keep", a.keep, 0),
                                                               "dry_run": a.dry_run,
                                                               "output_dir": a.output_dir, "data_dir": a.data_dir},
                                             debug=a.debug), clean),
}


def subcommand_table() -> str:
    """The subcommands as --help lists them."""
    width = max(map(len, SUBCOMMANDS))
    rows = [f"  {name:<{width}}  {sub.summary}" for name, sub in SUBCOMMANDS.items()]
    return f"subcommands ({PROG} SUBCOMMAND --help shows each one's options):\n" + "\n".join(rows)
