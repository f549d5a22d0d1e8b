"""The Prefect task runner that per-bucket and per-member tasks are submitted to.

    local  ThreadPoolTaskRunner(max_workers=workers): threads of the flow's own process
    dask   prefect_dask.DaskTaskRunner: on a running cluster (address=tcp://...), else on a
           distributed.LocalCluster it starts (processes, `workers` x `threads_per_worker`,
           no dashboard, tasks.runtime.nanny.Nanny)

The runner is built from settings (cluster_class/cluster_kwargs), never from a live cluster
object: Prefect duplicates task runners and a duplicate would drop it. Dask workers report task
runs to the Prefect API named in the driver's settings, so they need a real server: a run on
Prefect's temporary per-process server is refused before anything starts (`require_real_api`).
"""

from __future__ import annotations

import functools
from typing import Any

from tasks.errors import InputError


def task_runner(cfg: Any) -> Any:
    """A (not yet entered) Prefect task runner for RunnerConfig `cfg`."""
    if cfg.kind == "local":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=cfg.workers)
    require_real_api()
    from prefect_dask import DaskTaskRunner

    from tasks.runtime.nanny import QuickExit

    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": cfg.workers, "threads_per_worker": cfg.threads_per_worker, "processes": True,
                        # no dashboard, and the scheduler's HTTP endpoint on a free port: two runs at
                        # once would otherwise both ask for 8787 and the second warn that it is taken
                        "dashboard_address": None, "scheduler_kwargs": {"dashboard_address": ":0"},
                        # workers exit at once when closed, and get time before they are killed: a
                        # run ends without "Worker process still alive" warnings (tasks/runtime/nanny.py)
                        "worker_class": "tasks.runtime.nanny.Nanny", "plugins": {QuickExit()}},
    )


@functools.cache
def warm_up_torch() -> None:
    """Run, once a process and in this thread, the first-use code of torch.optim.Adam that builds
    Python ASTs (inspect.signature of builtins, torch._dynamo's first import): see warm_up. Only
    training off the CPU uses it (tasks.components.steps.make_optimizer)."""
    import torch

    w = torch.zeros(1, requires_grad=True)
    optimiser = torch.optim.Adam([w])
    (w * w).sum().backward()
    optimiser.step()


@functools.cache
def warm_up_statistics() -> None:
    """Run, once a process and in this thread, the first-use code of statsforecast's models that
    builds Python ASTs: see warm_up."""
    import numpy as np
    from statsforecast.models import AutoETS, AutoTheta

    y = np.arange(1.0, 13.0)
    AutoETS(season_length=1).fit(y).predict(1)
    AutoTheta(season_length=1).fit(y).predict(1)


def warm_up(device: str = "cpu") -> None:
    """Run, once in this thread, the first-use code of torch's optimiser (where training on
    `device` uses torch.optim: off the CPU) and of statsforecast's models that builds Python ASTs.

    CPython 3.11 keeps one AST-constructor recursion counter for all threads: two threads building
    ASTs at once can fail with "SystemError: AST constructor recursion depth mismatch" (CPython
    gh-106905). A search's wave trains networks and fits statistical members side by side in the
    thread runner's workers, each reaching that first-use code; done here first, before any task
    is submitted, none is left for them (measured: 69 parses here, 0 in a GRU's training step and
    AutoETS/AutoTheta fits after it). Draws nothing from torch's or numpy's random generators.
    Once a process (a run that reuses every entry never calls it: Run.map_together calls it only
    before a wave with more than one task to compute). While the statistical worker serves this
    process (tasks.runtime.offload), statsforecast never runs here: only torch's part is done, and
    statsforecast is not even imported (about 2 s of a short run). On the CPU the optimiser is
    tasks.components.steps.FusedAdam, whose first step builds no AST and imports no
    torch._dynamo (tests/unit/test_warm_up.py), so nothing of torch is warmed there.
    """
    from tasks.components import references
    from tasks.components.steps import uses_torch_optim

    if uses_torch_optim(device):
        warm_up_torch()
    if references.offload is None:
        warm_up_statistics()


def require_real_api() -> str:
    """The Prefect API URL workers will report to; InputError when it is Prefect's temporary server."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise InputError("runner.kind", "dask", "Dask workers need a running Prefect server to report to, not a "
                         "temporary one of this process; start one with `python flows/rnn_flow.py server` (or "
                         "`prefect server start`), or point PREFECT_API_URL at a running one")
    return url
