"""What the Prefect UI shows: progress, tables and the markdown report (keys are lowercase-dash),
and how they reach the server without ever failing or holding up a stage.

Every function here is a no-op outside a Prefect run, so stage code stays callable from a REPL
or a unit test without a server. Inside one, each call to the API is queued (`record`) and made
by one background thread of the process, in the caller's context (its flow and task run): a
stage goes on at once. A call that fails because the server does not answer is tried again,
with exponential backoff (BACKOFF_S), while it is younger than RECORD_WINDOW_S (the Prefect
client retries each attempt on its own as well); a call that fails otherwise, or too late, is
given up and named in `missed()`. A run ends with `flush`, bounded by FLUSH_S, then says in one
line what the server did not record (`outage_line`). Progress updates of one artifact that
queue up while the server is away are merged into the newest.
"""

from __future__ import annotations

import base64
import contextvars
import datetime as dt
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

METRICS_KEY = "rnn-metrics"
REPORT_KEY = "rnn-report"
STAGES_KEY = "rnn-stages"
PROGRESS_KEY = "rnn-training-progress"
FORECAST_KEY = "rnn-forecast"
LEADERBOARD_KEY = "rnn-leaderboard"
FORECAST_ROWS = 1000  # rows of the rnn-forecast table artifact (the parquet file has them all)

RECORD_WINDOW_S = 120.0  # a call the server could not take is tried again for this long after it was asked for
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # waits between probes of a server that does not answer
FLUSH_S = 20.0  # the end of a run waits at most this long for the calls still queued
PROBE_S = 1.0  # timeout of one health probe


def in_prefect_run() -> bool:
    """True inside a Prefect flow or task run."""
    from prefect.context import FlowRunContext, TaskRunContext

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


# --------------------------------------------------------------------------- the recorder


def unreachable(exc: BaseException) -> bool:
    """Does `exc` say the Prefect server did not answer (connection refused, reset, timed out:
    httpx's transport errors, which Prefect's client raises after its own retries), as opposed to
    a request it refused?"""
    import httpx

    return isinstance(exc, httpx.TransportError)


class _Call:
    """One queued API call: what it records (for `missed`), the call, the caller's context."""

    def __init__(self, what: str, call: Callable[[], Any], merge_key: Any = None) -> None:
        self.what, self.call, self.merge_key = what, call, merge_key
        self.context = contextvars.copy_context()
        self.asked = time.monotonic()


class Recorder:
    """The process's queue of API calls and the daemon thread that makes them (module docstring)."""

    def __init__(self) -> None:
        self.queue: queue.Queue[_Call] = queue.Queue()
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.waiting: list[_Call] = []  # queued or being made
        self.merged: dict[Any, _Call] = {}  # merge key -> the queued call not yet started
        self.missing: list[str] = []
        self.down = False  # the server did not answer the last call or probe
        self.outage: float | None = None  # wall time the server was first found not answering
        self.undelivered = 0  # delivery failures Prefect's own workers logged (_Undelivered)
        self.thread: threading.Thread | None = None

    def record(self, what: str, call: Callable[[], Any], merge_key: Any = None) -> None:
        """Queue `call` (made later, in this caller's context); `merge_key`: a newer call with the
        same key replaces this one while it waits."""
        item = _Call(what, call, merge_key)
        with self.lock:
            if merge_key is not None and merge_key in self.merged:
                old = self.merged[merge_key]
                old.call, old.context = item.call, item.context  # the newest value; its age is kept
                return
            if merge_key is not None:
                self.merged[merge_key] = item
            self.waiting.append(item)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._work, name="rnnflow-api-recorder", daemon=True)
                self.thread.start()
        self.queue.put(item)

    def flush(self, timeout: float = FLUSH_S) -> bool:
        """Wait until every queued call is made or given up, at most `timeout` s; True if none is
        left. The calls left are named in `missed()` (they may still be made later)."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.waiting and (left := deadline - time.monotonic()) > 0:
                self.idle.wait(left)
            self.missing.extend(c.what for c in self.waiting)
            return not self.waiting

    def missed(self) -> list[str]:
        """What the server did not record, each named once, in order."""
        with self.lock:
            return list(dict.fromkeys(self.missing))

    def note_down(self, at: float | None = None) -> None:
        """The server did not answer a call made at `at` (wall time; default now)."""
        with self.lock:
            self.down = True
            self.outage = self.outage or at or time.time()

    def _work(self) -> None:
        while True:
            item = self.queue.get()
            with self.lock:
                if item.merge_key is not None and self.merged.get(item.merge_key) is item:
                    del self.merged[item.merge_key]
            try:
                self._make(item)
            except BaseException as exc:  # never let the thread die with calls queued
                log.debug("not recorded: %s (%s)", item.what, exc)
                self._give_up(item)
            finally:
                with self.lock:
                    self.waiting.remove(item)
                    self.idle.notify_all()

    def _make(self, item: _Call) -> None:
        waits = iter(BACKOFF_S)
        while True:
            young = time.monotonic() - item.asked <= RECORD_WINDOW_S
            if self.down and not item.context.run(_answers):
                if not young:
                    self._give_up(item)
                    return
                time.sleep(next(waits, BACKOFF_S[-1]))
                continue
            attempt = time.time()
            try:
                item.context.run(item.call)
            except Exception as exc:
                if unreachable(exc):
                    self.note_down(attempt)
                    if young:
                        continue
                log.debug("not recorded: %s (%s: %s)", item.what, type(exc).__name__, exc)
                self._give_up(item)
                return
            self.down = False
            return

    def _give_up(self, item: _Call) -> None:
        with self.lock:
            self.missing.append(item.what)


def _answers() -> bool:
    """Does the API of the current settings answer its health check now?"""
    import urllib.request

    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        return False
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"{url.rstrip('/')}/health", timeout=PROBE_S) as resp:
            return resp.status == 200
    except (OSError, ValueError):
        return False


RECORDER = Recorder()


def record(what: str, call: Callable[[], Any], merge_key: Any = None) -> None:
    """Queue one API call of this run (no-op outside a Prefect run): see the module docstring."""
    if in_prefect_run():
        RECORDER.record(what, call, merge_key)


def flush(timeout: float = FLUSH_S) -> bool:
    """Wait, at most `timeout` s, until every queued API call is made or given up."""
    return RECORDER.flush(timeout)


def missed() -> list[str]:
    """What this process asked the server to record and it did not (each named once)."""
    return RECORDER.missed()


def note_outage() -> None:
    """Remember that the server did not answer (a delivery error that Prefect's own log and event
    workers reported)."""
    RECORDER.note_down()


class _Undelivered(logging.Filter):
    """Drops, and counts, what Prefect's own background workers log when the server does not take
    the events (task run states) or logs they send: one line at the end says it instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        with RECORDER.lock:
            RECORDER.undelivered += 1
        return False


class _Unproposed(logging.Filter):
    """Drops the flow engine's error record of a state the server could not take (its exception is
    one of httpx's transport errors): the run's last line names the flow run's final state instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (record.levelno >= logging.ERROR and exc is not None and unreachable(exc))


# Prefect's loggers of its background delivery: the events client (task run states go as events)
# and the services that send events and logs (each failed batch logs an error there)
DELIVERY_LOGGERS = ("prefect.events.clients", "prefect._internal.concurrency")


def hush_delivery_errors() -> None:
    """For a command-line run: Prefect's delivery complaints are counted, not printed
    (`outage_line` reports them), so is the flow engine's error of a final state the server did
    not take, and the standard library's '--- Error logging to API ---' tracebacks of a log
    handler that cannot send are off (logging.raiseExceptions)."""
    logging.raiseExceptions = False
    for name in DELIVERY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Undelivered) for f in logger.filters):
            logger.addFilter(_Undelivered())
    flow_runs = logging.getLogger("prefect.flow_runs")
    if not any(isinstance(f, _Unproposed) for f in flow_runs.filters):
        flow_runs.addFilter(_Unproposed())


def outage_since() -> float | None:
    """When (wall time) the server was first found not answering in this process, if it was."""
    return RECORDER.outage


def outage_line(url: str | None, final_state: bool = True) -> str | None:
    """The one line a run ends with when the server did not record all of it; None when it did.

    final_state: whether the flow run's final state reached the server.
    """
    missing = ([] if final_state else ["the flow run's final state"]) + missed()
    since, undelivered = outage_since(), RECORDER.undelivered
    if not missing and since is None and not undelivered:
        return None
    when = f" from {dt.datetime.fromtimestamp(since):%H:%M:%S}" if since is not None else ""
    what = f"not recorded: {', '.join(missing)}" if missing else "every artifact was recorded"
    lost = (f"; {undelivered} deliveries of task run states or logs failed" if undelivered else
            "; logs and task run states sent meanwhile may be missing" if since is not None else "")
    head = f"the server at {url or 'PREFECT_API_URL'} did not answer{when}" if since is not None or not final_state \
        else f"the server at {url or 'PREFECT_API_URL'} did not record all of this run"
    return f"prefect: {head}; {what}{lost}; the outputs on disk are complete"


# --------------------------------------------------------------------------- artifacts


class ProgressArtifact:
    """A Prefect progress artifact, updated at most every 5 percentage points (through `record`)."""

    def __init__(self, key: str, description: str) -> None:
        self.id = None
        self.shown = -100.0
        self.key, self.description = key, description
        self.live = in_prefect_run()
        if self.live:
            record(f"progress artifact {key}", self._create)

    def _create(self, progress: float = 0.0) -> None:
        from prefect.artifacts import create_progress_artifact

        self.id = create_progress_artifact(progress=progress, key=self.key, description=self.description)

    def update(self, percent: float) -> None:
        if not self.live or (percent - self.shown < 5.0 and percent < 100.0):
            return
        self.shown = percent

        def send() -> None:
            if self.id is None:  # its creation was given up: create it with the progress now
                self._create(percent)
                return
            from prefect.artifacts import update_progress_artifact

            update_progress_artifact(artifact_id=self.id, progress=percent)

        RECORDER.record(f"progress artifact {self.key}", send, merge_key=("progress", id(self)))


class TrainingProgress:
    """The run's one training-progress artifact (PROGRESS_KEY), following the train stage's
    progress (tasks.runtime.progress.follow): created when the run first trains a network (not
    when every model is reused), then kept at the stage's share done: its models finished plus
    the epochs of those in flight in this process. A sweep's or a search's members share it."""

    def __init__(self, stage: str = "train") -> None:
        self.stage = stage
        self.bar: ProgressArtifact | None = None

    def changed(self, stage: str, st) -> None:
        if stage != self.stage:
            return
        if st is None:  # the stage ended: every model is done
            if self.bar is not None:
                self.bar.update(100.0)
            return
        if self.bar is None and st.building:
            what = (f"{st.total} models, {st.total - st.building} of them reused" if st.building < st.total
                    else f"{st.total} model{'s' if st.total > 1 else ''}")
            self.bar = ProgressArtifact(PROGRESS_KEY, f"Training {what} (models done, and epochs of those in "
                                                      "flight, as a share of all)")
        if self.bar is not None:
            self.bar.update(100.0 * st.fraction())


def metrics_rows(metrics: dict[str, dict[str, float]], extra: dict[str, dict] | None = None) -> list[dict]:
    """One table row per forecaster: name, each metric, then the `extra` columns (None where a row has none)."""
    extra = extra or {}
    columns = list(dict.fromkeys(k for cols in extra.values() for k in cols))
    return [{"forecaster": name, **{k: _cell(v) for k, v in m.items()},
             **{c: _cell(extra.get(name, {}).get(c)) for c in columns}} for name, m in metrics.items()]


def _cell(v: object) -> object:
    """A float to 6 significant digits (None when not finite: JSON has no NaN); anything else as it is."""
    if isinstance(v, float):
        return float(f"{v:.6g}") if math.isfinite(v) else None
    return v


def table_rows(frame, limit: int = FORECAST_ROWS) -> list[dict]:
    """The first `limit` rows of a DataFrame as JSON-able dicts (times as ISO text, floats rounded,
    <NA> as None)."""
    import pandas as pd

    out = []
    for row in frame.head(limit).to_dict(orient="records"):
        out.append({k: (None if v is pd.NA else v.isoformat() if hasattr(v, "isoformat") else _cell(v)
                        if isinstance(v, float) else v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    return out


def publish_table(key: str, rows: list[dict], description: str) -> None:
    """A table artifact (no-op outside a run; queued: `record`)."""
    def send() -> None:
        from prefect.artifacts import create_table_artifact

        create_table_artifact(table=rows, key=key, description=description)

    record(f"artifact {key}", send)


def png_data_url(path: str | Path) -> str:
    """A PNG file as a data: URL that the Prefect UI renders inline."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~$])")  # each line starts "- " or "| ": no heading or list markup


def markdown_text(text: object) -> str:
    """`text` as literal Markdown: every character Markdown (or the UI's math) could read as markup
    is backslash-escaped, so a series id, column or path from the user's data shows as written
    (`$\\invalidmathcmd$`, `*a*`, `a|b`), never as formatting, a link, HTML or a broken table."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", str(text))


def report_markdown(title: str, summary: list[str], metrics: dict, figures: dict[str, Path],
                    config: dict | None = None, auto: set[str] = frozenset()) -> str:
    """The run report: summary lines, the metrics table, the figures inline (by heading), then the
    settings that ran (`config`, resolved; those in `auto`, "section.field", marked as chosen by auto)."""
    names = list(next(iter(metrics.values())).keys())
    lines = [f"# {title}", "", *[f"- {markdown_text(s)}" for s in summary], "", "## Metrics on the test range", ""]
    lines += ["| forecaster | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {f} | " + " | ".join("n/a" if m.get(n) is None else f"{m[n]:.4g}" for n in names) + " |"
              for f, m in metrics.items()]
    for heading, path in figures.items():
        lines += ["", f"## {heading}", "", f"![{heading}]({png_data_url(path)})"]
    if config:
        lines += ["", "## Settings that ran", "", "| setting | value |", "|---|---|"]
        for section, fields in config.items():
            for name, value in fields.items():
                shown = markdown_text(",".join(map(str, value)) if isinstance(value, (list, tuple)) else _cell(value))
                lines.append(f"| {section}.{name} | {shown}{' (auto)' if f'{section}.{name}' in auto else ''} |")
    return "\n".join(lines) + "\n"


def publish_markdown(key: str, markdown: str, description: str) -> None:
    """A markdown artifact (no-op outside a run; queued: `record`)."""
    def send() -> None:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=markdown, key=key, description=description)

    record(f"artifact {key}", send)
