"""How the workers of the LocalCluster a `--runner dask` run starts (tasks/runtime/runners.py)
end, quietly.

Closing a LocalCluster asks each worker process to stop and kills it after 0.8 x the close
timeout, with a warning ("Worker process still alive after 4.0 seconds, killing"). A worker that
has run this pipeline's stages was slow to end: not its work (every entry is on disk by then)
but Python's own teardown of what it imported (torch, torch._dynamo, statsforecast, Prefect,
pandas): 2.7 s for a bare process that imported them, 8.1 s for two such workers on this 2-core
machine at load 5, and more than 12 s on a busier one, so runs still ended with those warnings.

Two things end that:
- QuickExit, a worker plugin: once the worker process has done everything at exit that matters
  (Prefect drains its log and event queues to the API from `threading`'s exit hooks and its own
  atexit handlers, which all run first), it leaves with os._exit, skipping the teardown of
  modules. Measured side by side: the cluster closed in 0.43 s instead of 8.1 s.
- Nanny waits up to 0.8 x CLOSE_TIMEOUT rather than Dask's 4 s before it kills a worker that still
  hangs.
"""

from __future__ import annotations

import atexit
import os
import sys

from distributed import Nanny as _DaskNanny
from distributed import WorkerPlugin

CLOSE_TIMEOUT = 15.0  # seconds; Dask's default is 5


class Nanny(_DaskNanny):
    """distributed.Nanny, closing with CLOSE_TIMEOUT unless told otherwise."""

    async def close(self, timeout: float = CLOSE_TIMEOUT, reason: str = "nanny-close") -> str:  # type: ignore[override]
        return await super().close(timeout=timeout, reason=reason)


class QuickExit(WorkerPlugin):
    """In a worker process, skip the interpreter's teardown of modules at exit (see the module
    docstring). Its atexit handler is registered when the worker starts, before the tasks import
    Prefect, so it runs after every handler they register (atexit runs the last registered
    first); it flushes stdout and stderr, then calls os._exit. Never in the process that made the
    plugin (the run's own, for a cluster in-process): there, nothing is skipped."""

    def __init__(self) -> None:
        self.maker = os.getpid()

    def setup(self, worker) -> None:  # noqa: ARG002 (the worker: nothing of it is needed)
        if os.getpid() != self.maker:
            atexit.register(_leave)


def _leave() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)
