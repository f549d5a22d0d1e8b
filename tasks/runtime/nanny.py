"""The Nanny of the LocalCluster a `--runner dask` run starts (tasks/runtime/runners.py).

Closing a LocalCluster asks each worker process to stop and kills it after 0.8 x 5 s, with a
warning ("Worker process still alive after 4.0 seconds, killing"). A worker that has run this
pipeline's stages takes about that long to end on a busy 2-core machine: Python's own teardown
of the modules it imported (torch, torch._dynamo, statsforecast, Prefect, pandas) took 2.7 s for
a bare process that imported them and nothing else. So every run ended with two such warnings and
killed workers. This Nanny waits up to 0.8 x CLOSE_TIMEOUT instead: the close takes as long as the
workers really need, and a worker that hangs is still killed.
"""

from __future__ import annotations

from distributed import Nanny as _DaskNanny

CLOSE_TIMEOUT = 15.0  # seconds; Dask's default is 5


class Nanny(_DaskNanny):
    """distributed.Nanny, closing with CLOSE_TIMEOUT unless told otherwise."""

    async def close(self, timeout: float = CLOSE_TIMEOUT, reason: str = "nanny-close") -> str:  # type: ignore[override]
        return await super().close(timeout=timeout, reason=reason)
