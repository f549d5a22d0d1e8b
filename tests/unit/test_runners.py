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



EXIT = """
import atexit, sys
from tasks.runtime.nanny import QuickExit
plugin = QuickExit()
if sys.argv[1] == "worker":
    plugin.maker = -1  # as made by the run's process and set up in a worker's
plugin.setup(None)
atexit.register(lambda: open(sys.argv[2] + "/drained", "w").write("yes"))  # later, as Prefect's: runs first

import os

class Torn:  # the names it needs are bound now: by the teardown, the builtins are gone
    def __del__(self, path=sys.argv[2] + "/teardown", os_open=os.open, flags=os.O_CREAT | os.O_WRONLY):
        os_open(path, flags)

sys.modules["torn"] = Torn()  # deleted only by the interpreter's teardown of modules
print("bye", end="")
"""


def test_a_worker_leaves_after_its_exit_handlers_without_the_modules_teardown(tmp_path):
    import subprocess
    import sys

    for role in ("worker", "driver"):
        out = tmp_path / role
        out.mkdir()
        proc = subprocess.run([sys.executable, "-c", EXIT, role, str(out)], cwd=runners.__file__.rsplit("/tasks/", 1)[0],
                              capture_output=True, text=True, timeout=60)
        assert (proc.returncode, proc.stdout) == (0, "bye"), proc.stderr  # printed output is flushed
        assert (out / "drained").read_text() == "yes"  # the handlers registered after it ran
        assert (out / "teardown").exists() is (role == "driver")  # the teardown: skipped in a worker only


def test_the_local_dask_cluster_sets_its_workers_up_to_exit_quickly(monkeypatch):
    monkeypatch.setattr(runners, "require_real_api", lambda: "http://127.0.0.1:4200/api")
    (plugin,) = task_runner(RunnerConfig(kind="dask")).cluster_kwargs["plugins"]
    assert isinstance(plugin, nanny.QuickExit)
