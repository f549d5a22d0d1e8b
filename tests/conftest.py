"""Every fixture of the test suite (one Prefect test harness and one real server per session, a tiny
config, a split), and the marks each folder gives its tests:

    tests/unit   milliseconds to seconds, no flow run: the quick tier (`-m "not slow"`)
    tests/flow   end to end: slow; a test there runs its flows in this process against the
                 session's server (prefect_harness) unless it is marked `server` (it drives
                 processes that talk to a real server: prefect_server, or one of its own)

A test that uses the session's real server (prefect_server, dask_cluster) is marked `server` too.
"""

from __future__ import annotations

import os

from flows.environment import apply_defaults

apply_defaults()  # the project's environment defaults (flows/environment.py), before Prefect is imported
# Unit tests call stage code outside any flow run: its log lines are not for the API.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tasks.components.split import Split  # noqa: E402
from tasks.components.synthetic import sine_values  # noqa: E402
from tasks.config import PipelineConfig  # noqa: E402
from tests.helpers import split_for, tiny_config  # noqa: E402

from tests.helpers.server import (  # noqa: E402
    DaskCluster,
    PrefectServer,
    start_dask_cluster,
    start_server,
    stop,
    stop_dask_cluster,
)

torch.set_num_threads(1)

TESTS = Path(__file__).resolve().parent
FOLDER_MARKS = {"flow": (pytest.mark.slow,)}  # tests/<folder> -> the marks of every test in it
SERVER_FIXTURES = {"prefect_server", "dask_cluster"}  # a test that uses one is marked `server`


def folder_of(item: pytest.Item) -> str:
    """The folder under tests/ that holds `item`'s file ("unit", "flow")."""
    return Path(item.fspath).resolve().relative_to(TESTS).parts[0]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by mark
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its folder (FOLDER_MARKS) and by the servers it uses (SERVER_FIXTURES)."""
    for item in items:
        for mark in FOLDER_MARKS.get(folder_of(item), ()):
            item.add_marker(mark)
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("server"):
            item.add_marker(pytest.mark.server)


@pytest.fixture(autouse=True)
def flow_runs_report_to_the_session_server(request: pytest.FixtureRequest) -> None:
    """A test under tests/flow that is not marked `server` runs its flows in this process, against
    the session's real server (prefect_harness); a `server` test drives processes of its own."""
    if folder_of(request.node) == "flow" and request.node.get_closest_marker("server") is None:
        request.getfixturevalue("prefect_harness")


@pytest.fixture
def tiny_cfg(tmp_path: Path) -> PipelineConfig:
    """The tiny config (tests.helpers.tiny_config): trains in well under a second, writes under tmp_path."""
    return tiny_config(tmp_path)


@pytest.fixture
def sine_split() -> tuple[np.ndarray, Split]:
    """The tutorial's sine (240 points, no noise) and the Split the window stage makes of it."""
    values = sine_values(n_points=240, seed=3)
    return values, split_for(values)


@pytest.fixture(scope="session")
def prefect_harness(prefect_server: PrefectServer):
    """In-process flow tests talk to the session's real server (`prefect_server`): one server per
    test process instead of two (prefect_test_harness started one of its own, 25-45 s on a busy
    2-core machine, beside the real one the command-line tests need)."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.utilities.asyncutils import run_coro_as_sync

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.api_url}):
        yield

        async def drain() -> None:  # the last logs and events reach the server before it stops (as the harness does)
            for flush in (lambda: APILogWorker.instance().drain(), EventsWorker.drain_all):
                try:
                    done = flush()
                    if inspect.isawaitable(done):
                        await done
                except RuntimeError:  # never started
                    pass

        run_coro_as_sync(drain())


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One real `prefect server start` for the session, for tests that run the CLI in processes."""
    server = start_server(tmp_path_factory.mktemp("prefect-home"))
    try:
        yield server
    finally:
        for child in server.children:
            stop(child)
        stop(server.process)


@pytest.fixture(scope="module")
def dask_cluster(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """One LocalCluster (2 worker processes x 1 thread, as --runner dask starts) for a module's runs,
    which reach it with --dask-address: its workers start and import once, not once per run."""
    cluster = start_dask_cluster(prefect_server, tmp_path_factory.mktemp("dask") / "cluster.log")
    try:
        yield cluster
    finally:
        stop_dask_cluster(cluster)
