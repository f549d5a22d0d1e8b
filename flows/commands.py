"""The commands of flows/rnn_flow.py: `main(argv)` parses and checks once, then carries one out.

Bad input is one `error:` line naming the option and the value, exit status 2, before Prefect is
imported (flows/options.py words it, flows/preflight.py checks what pydantic cannot). The flow
module is imported only by `run`, once the command line is known to be good: flows/rnn_flow.py's
`__main__` calls `main`, and nothing here imports the flow at module level (no import circle).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from flows.deployment import deployment_named
from flows.options import (
    FLAG_OF_FIELD, PROG, Invocation, UsageError, describe_input_error, describe_validation_error,
)
from flows.preflight import preflight
from flows.server import ServerError
from flows.subcommands import SUBCOMMANDS, parse
from tasks.errors import InputError

# --------------------------------------------------------------------------- running


BROKEN_PIPE_STATUS = 128 + 13  # as a shell reports a command killed by SIGPIPE (`yes | head`)


def main(argv: list[str]) -> int:
    """Entry point: parse and check once, then carry the subcommand out; bad input -> exit 2."""
    debug, deployment = "--debug" in argv, deployment_named(argv)
    try:
        inv = parse(argv)
        if inv.command in ("run", "sweep"):  # SIGINT/TERM/HUP: one line, exit 130/143/129, nothing left running
            from tasks.runtime import interrupt

            interrupt.arm()
        info = preflight(inv.config) if inv.config is not None else {}  # before any Prefect start-up or training
        if inv.controls.get("promote"):  # a registry of the wrong shape: one line now, not a TypeError at the end
            from tasks.runtime import registry

            registry.load(Path(inv.config.output.root).expanduser())
        if inv.config is not None and inv.config.runner.kind == "dask" and not inv.options.get("deployment"):
            require_dask_server()  # `check` too: it says what the run would
        return HANDLERS[inv.command](inv, info)
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
    except BrokenPipeError:  # the output's reader stopped reading (`... | head`): what was done stays done
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # or Python's exit flush fails again
        return BROKEN_PIPE_STATUS


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
            with quiet_console(inv.debug, (Exception,), inv.verbose), no_heartbeats(), \
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


HEARTBEAT_SETTINGS = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


def no_heartbeats() -> contextlib.AbstractContextManager:
    """Within: a flow run started from the command line sends no flow-run heartbeats, unless the
    user set their frequency (HEARTBEAT_SETTINGS, in the environment or the Prefect profile).

    Heartbeats let an automation mark a deployment's run Crashed when its infrastructure dies
    without a word (Prefect's "detect zombie flows" guide: "flow runs triggered by deployments").
    A run started here reports Crashed itself on SIGINT, SIGTERM and SIGHUP
    (tasks/runtime/interrupt.py), and the person who started it sees it end; meanwhile the
    flow's end waits for the heartbeat thread, which sleeps in 1 s steps: 0.5 s a run on average
    (1.0 s in a profiled AirPassengers run of 12 s). Runs of deployments (`serve`, workers) never
    come through here and keep them.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings
    from prefect.settings.models.flows import FlowsSettings

    default = FlowsSettings.model_fields["heartbeat_frequency"].default
    if any(name in os.environ for name in HEARTBEAT_SETTINGS) or \
            get_current_settings().flows.heartbeat_frequency != default:
        return contextlib.nullcontext()
    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


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
    interrupt.leave_now(status)


def exit_status(summary: dict) -> int:
    """A finished run's exit status: 0, or GATE_FAILED_STATUS (3) when its model did not pass the
    baseline gate (decided before the test range: tasks.components.gate.decide_gate): the
    outputs are complete and the forecast is the model's, but it did not beat the best baseline,
    so a script (or `set -e`) stops there, as promotion does. A run that stopped before the
    evaluate stage (--until) has no gate: 0."""
    from tasks.components.gate import GATE_FAILED_STATUS

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



# --------------------------------------------------------------------------- the handlers


HANDLERS: dict[str, Callable[[Invocation, dict], int]] = {  # what carries each of SUBCOMMANDS out
    "run": run, "sweep": run, "server": server, "check": report_check, "serve": serve, "rollback": rollback,
    "clean": clean,
}
assert set(HANDLERS) == set(SUBCOMMANDS), "every subcommand has its handler"
