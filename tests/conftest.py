"""Every fixture of the test suite: one Prefect test harness and one real server per session."""

from __future__ import annotations

import os

from flows.environment import apply_defaults

apply_defaults()  # the project's environment defaults (flows/environment.py), before Prefect is imported
# Unit tests call stage code outside any flow run: its log lines are not for the API.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.helpers.server import (  # noqa: E402
    DaskCluster,
    PrefectServer,
    start_dask_cluster,
    start_server,
    stop,
    stop_dask_cluster,
)

torch.set_num_threads(1)


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
