"""What a run tells the Prefect API never fails or holds up a stage (tasks/runtime/publish.py):
calls are queued, retried with backoff while the server is away, merged, given up after a bounded
time, and named in one line at the end."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.runtime import publish
from tests.helpers.server import HealthStandIn


@pytest.fixture
def recorder(monkeypatch):
    """A fresh recorder with short waits (the module's one is the process's)."""
    monkeypatch.setattr(publish, "BACKOFF_S", (0.05, 0.1, 0.2))
    monkeypatch.setattr(publish, "PROBE_S", 0.5)
    return publish.Recorder()


def refused() -> None:
    raise httpx.ConnectError("[Errno 111] Connection refused")


def test_a_call_made_while_the_server_is_away_is_made_when_it_answers_again(recorder):
    with HealthStandIn() as server, temporary_settings({PREFECT_API_URL: server.api_url}):
        made = []
        answers = iter([refused, refused])  # the server is away for the first two attempts

        def call() -> None:
            next(answers, lambda: None)()
            made.append(time.monotonic())

        server.up = False
        asked = time.monotonic()
        recorder.record("artifact rnn-metrics", call)
        assert time.monotonic() - asked < 0.1  # the caller (a stage) goes on at once
        time.sleep(0.5)
        assert not made  # still away: waited for, not given up
        server.up = True
        assert recorder.flush(timeout=10)
    assert len(made) == 1 and recorder.missed() == [] and recorder.outage is not None


def test_a_call_the_server_never_takes_is_given_up_after_its_window_and_named(recorder, monkeypatch):
    monkeypatch.setattr(publish, "RECORD_WINDOW_S", 0.5)
    with HealthStandIn() as server, temporary_settings({PREFECT_API_URL: server.api_url}):
        server.up = False
        recorder.record("artifact rnn-report", refused)
        recorder.record("artifact rnn-stages", lambda: None)  # queued behind it, the server still away
        started = time.monotonic()
        assert recorder.flush(timeout=20)
    assert time.monotonic() - started < 10
    assert recorder.missed() == ["artifact rnn-report", "artifact rnn-stages"]


def test_a_refused_request_is_given_up_at_once_and_is_no_outage(recorder):
    def bad_request() -> None:
        raise ValueError("422 Unprocessable Entity")

    recorder.record("artifact rnn-forecast", bad_request)
    assert recorder.flush(timeout=10)
    assert recorder.missed() == ["artifact rnn-forecast"] and recorder.outage is None


def test_flush_is_bounded_and_names_what_is_still_queued(recorder):
    release = threading.Event()
    recorder.record("artifact rnn-metrics", lambda: release.wait(10))
    recorder.record("artifact rnn-report", lambda: None)
    started = time.monotonic()
    assert not recorder.flush(timeout=0.3)
    assert time.monotonic() - started < 2
    assert recorder.missed() == ["artifact rnn-metrics", "artifact rnn-report"]
    release.set()


def test_progress_updates_that_queue_up_are_merged_into_the_newest(recorder):
    release, sent = threading.Event(), []
    recorder.record("artifact rnn-stages", lambda: release.wait(10))  # the thread is busy meanwhile
    for percent in range(0, 101, 5):
        recorder.record("progress artifact", lambda p=percent: sent.append(p), merge_key=("progress", 1))
    release.set()
    assert recorder.flush(timeout=10)
    assert sent == [100]


def test_the_outage_line_names_what_was_not_recorded(monkeypatch):
    r = publish.Recorder()
    monkeypatch.setattr(publish, "RECORDER", r)
    assert publish.outage_line("http://127.0.0.1:4200/api") is None
    r.missing += ["artifact rnn-metrics", "artifact rnn-metrics", "artifact rnn-report"]
    r.note_down(at=time.mktime((2026, 1, 2, 3, 4, 5, 0, 0, -1)))
    line = publish.outage_line("http://127.0.0.1:4200/api", final_state=False)
    assert line == ("prefect: the server at http://127.0.0.1:4200/api did not answer from 03:04:05; not recorded: "
                    "the flow run's final state, artifact rnn-metrics, artifact rnn-report; logs and task run states "
                    "sent meanwhile may be missing; the outputs on disk are complete")


def test_prefects_delivery_complaints_are_counted_not_printed(monkeypatch, capsys):
    r = publish.Recorder()
    monkeypatch.setattr(publish, "RECORDER", r)
    monkeypatch.setattr(logging, "raiseExceptions", logging.raiseExceptions)
    loggers = [logging.getLogger(name) for name in publish.DELIVERY_LOGGERS]
    flow_runs = logging.getLogger("prefect.flow_runs")
    for logger in (*loggers, flow_runs):
        monkeypatch.setattr(logger, "filters", list(logger.filters))
    publish.hush_delivery_errors()
    assert logging.raiseExceptions is False  # no '--- Error logging to API ---' tracebacks
    for logger in loggers:
        logger.error("Unable to connect to %r", "ws://127.0.0.1:4200/api/events/in")
    assert r.undelivered == len(loggers)
    kept = []
    monkeypatch.setattr(flow_runs, "callHandlers", kept.append)  # what passed the filters
    for exc in (httpx.ConnectError("refused"), ValueError("a real failure")):
        try:
            raise exc
        except Exception:
            flow_runs.exception("Encountered exception during execution: %r", exc)
    assert [type(k.exc_info[1]) for k in kept] == [ValueError]  # a failure of the run itself still shows
    assert "Unable to connect" not in capsys.readouterr().err
    assert "2 deliveries of task run states or logs failed" in publish.outage_line("http://x/api")


def test_the_report_shows_labels_from_the_users_data_as_written_never_as_markup():
    """A series id, column or path in the summary or the settings is escaped: no math, emphasis,
    link, HTML or extra table cell (issue 22: labels from user data are never interpreted)."""
    from tasks.runtime.publish import markdown_text, report_markdown

    label = r"$\invalidmathcmd$ *top* [x](y) a|b <b>my_file</b>"
    text = report_markdown("GRU forecast report", [f"forecast warning: series {label} left its range"],
                           {"model": {"mase": 0.5}}, {}, config={"data": {"id_column": label}})
    escaped = markdown_text(label)
    assert f"- forecast warning: series {escaped} left its range" in text
    assert f"| data.id_column | {escaped} |" in text
    assert "$\\invalidmathcmd$" not in text and "*top*" not in text and "a|b" not in text and "<b>" not in text
    unescaped = escaped.replace("\\", "")  # what a Markdown renderer shows: the label itself
    assert unescaped == label.replace("\\", "")
