"""The command line's options, read off the config: argv words <-> PipelineConfig fields.

Every pipeline option maps onto one PipelineConfig field (OPTIONS); its help text is the field's
description and its choices the field's annotation. Also what a parsed command line becomes (an
Invocation), the argparse parser that complains in one line (UsageError), and how a bad setting is
worded: one line naming the option and the value (describe_input_error, describe_validation_error).
The subcommands that use these options are flows/subcommands.py's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import textwrap
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from tasks.config import STAGES, PipelineConfig, members_of, with_overrides
from tasks.errors import InputError

PROG = "python flows/rnn_flow.py"

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


@dataclass(frozen=True)
class Invocation:
    """One command line, parsed and validated: what to do and with which settings."""

    command: str  # a key of flows.subcommands.SUBCOMMANDS
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



# --------------------------------------------------------------------------- a bad setting, in one line


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
