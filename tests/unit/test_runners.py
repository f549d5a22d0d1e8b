"""The task runner a run's settings build (tasks/runtime/runners.py)."""

from __future__ import annotations

import inspect

from distributed.utils import import_term

from tasks.config import RunnerConfig
from tasks.runtime import nanny, runners
from tasks.runtime.runners import task_runner


def test_a_local_dask_cluster_has_no_dashboard_port_and_gives_its_workers_time_to_exit(monkeypatch):
    # the API check reads Prefect's current settings (a test harness may hold its own): not tested here
    monkeypatch.setattr(runners, "require_real_api", lambda: "http://127.0.0.1:4200/api")
    kwargs = task_runner(RunnerConfig(kind="dask", workers=3)).cluster_kwargs
    assert kwargs["n_workers"] == 3 and kwargs["processes"] is True
    assert kwargs["dashboard_address"] is None and kwargs["scheduler_kwargs"] == {"dashboard_address": ":0"}
    worker = import_term(kwargs["worker_class"])  # how distributed's SpecCluster reads it
    assert worker is nanny.Nanny
    timeout = inspect.signature(worker.close).parameters["timeout"].default
    assert timeout == nanny.CLOSE_TIMEOUT > inspect.signature(nanny._DaskNanny.close).parameters["timeout"].default

