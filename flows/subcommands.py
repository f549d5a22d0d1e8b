"""The subcommands of flows/rnn_flow.py: argv -> one Invocation, parsed once.

    python flows/rnn_flow.py [options]            run the pipeline once (the subcommand `run`)
    python flows/rnn_flow.py SUBCOMMAND [...]     one of SUBCOMMANDS (listed by --help)

A subcommand is one row of SUBCOMMANDS: a line for --help, its parser and how its arguments
become an Invocation; what carries it out is flows/commands.py's (HANDLERS). Bad input raises
UsageError, InputError or pydantic's ValidationError; flows/commands.py words it in one line.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flows.deployment import DEPLOYMENT, deployment_invocation
from flows.options import (
    PROG, Invocation, Parser, UsageError, add_pipeline_options, add_run_controls, at_least, choice,
    config_from_args, grid_members,
)
from tasks.config import STAGES, PipelineConfig, PromoteSettings, for_sweep
from tasks.errors import InputError


def run_parser(command: str = "run") -> Parser:
    """Every pipeline option, grouped by stage, plus the rerun and promotion controls."""
    p = Parser(command, usage=f"{PROG} [SUBCOMMAND] [options]",
               description="Train and evaluate an RNN/GRU/LSTM forecaster as a Prefect flow; unchanged stages are "
                           "reused.\n\n" + subcommand_table())
    add_pipeline_options(p)
    add_run_controls(p)
    return p



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
    p.add_argument("--port", type=int, help="port to listen on (default: Prefect's server.api.port, 4200; 0: a free one)")
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



# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Subcommand:
    """One subcommand: a line for --help, its parser, and args -> Invocation (what carries it out
    is flows.commands.HANDLERS[name])."""

    summary: str
    parser: Callable[[], Parser]
    invocation: Callable[[argparse.Namespace], Invocation]


SUBCOMMANDS: dict[str, Subcommand] = {
    "run": Subcommand("run the pipeline once (the default: `python flows/rnn_flow.py [options]`)",
                      run_parser, run_invocation),
    "sweep": Subcommand("train one model per member of a grid (--grid or --grid-file), rank them on the "
                        "validation range, evaluate the winner", sweep_parser, sweep_invocation),
    "server": Subcommand("keep a local Prefect server + UI running for the session; later runs use it "
                         "(start|stop|status)", server_parser,
                         lambda a: Invocation("server", options={"action": choice("action", a.action, SERVER_ACTIONS),
                                                                 "port": a.port}, debug=a.debug)),
    "check": Subcommand("check options (or a prefect.yaml deployment's parameters) as a run would; run nothing",
                        check_parser, check_invocation),
    "serve": Subcommand("scheduled retraining (--cron or --interval) on a running Prefect server",
                        serve_parser, serve_invocation),
    "rollback": Subcommand("make the previous champion model the champion again", rollback_parser,
                           lambda a: Invocation("rollback", options={"output_dir": a.output_dir}, debug=a.debug)),
    "clean": Subcommand("drop old run folders and cache entries not used by the last N runs or the champion",
                        clean_parser,
                        lambda a: Invocation("clean", options={"keep": at_least("--keep", a.keep, 0),
                                                               "dry_run": a.dry_run,
                                                               "output_dir": a.output_dir, "data_dir": a.data_dir},
                                             debug=a.debug)),
}


def subcommand_table() -> str:
    """The subcommands as --help lists them."""
    width = max(map(len, SUBCOMMANDS))
    rows = [f"  {name:<{width}}  {sub.summary}" for name, sub in SUBCOMMANDS.items()]
    return f"subcommands ({PROG} SUBCOMMAND --help shows each one's options):\n" + "\n".join(rows)
