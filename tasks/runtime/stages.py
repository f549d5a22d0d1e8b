"""How a stage is declared, planned, called and recorded: the machinery behind `run.stage(...)`.

A stage module declares itself with a StageSpec (its name, the config fields that change only
how it runs, the libraries whose versions change its result, the files it writes) and wraps its
work in a thin task made by `stage_task`. The flow calls `run.stage(task, **inputs)`; what is
passed is what the stage reads, and what its key covers:

    config sections   (pydantic sections of PipelineConfig)  ->  key params, by value
    StageRefs         (upstream entries)                     ->  key upstream, by content hash
    the stage module  and the computing code it imports      ->  key code (runtime/caching.py)
    spec.packages     (+ the device kind where it trains)    ->  key env

The task builds its entry unless a verified one exists (content-addressed, runtime/store.py)
and returns the entry's StageRef, in a state named "Cached" when it reused one, so the Prefect
UI shows reuse without a second cache layer of Prefect results and locks.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

from prefect.states import Completed

from tasks.config import STAGES, PipelineConfig, resolve, section_name
from tasks.errors import InputError
from tasks.runtime import store
from tasks.runtime.caching import StagePlan, code_hashes, plan_stage, record_latest
from tasks.runtime.retry import RETRY_OPTIONS

log = logging.getLogger(__name__)

StageRef = store.StageRef


@dataclass(frozen=True)
class StageSpec:
    """What the runtime needs to know about a stage besides its inputs.

    name: the stage name (one of tasks.config.STAGES, or "promote");
    base: "data" (the generated/ingested series live under the data dir) or "output";
    run_only: config fields that change how it runs, not what it produces (left out of the key);
    packages: libraries whose versions change its result (in the key);
    trains: inputs -> True when this call trains a network (the device kind joins the key);
    files: what it writes, hard-linked into the run directory.
    """

    name: str
    base: Literal["data", "output"] = "output"
    run_only: frozenset[str] = frozenset()
    packages: tuple[str, ...] = ()
    trains: Callable[[dict[str, Any]], bool] = lambda inputs: False
    files: tuple[str, ...] = ()


def stage_task(spec: StageSpec) -> dict[str, Any]:
    """Keyword arguments of the @task of a stage: its name and retries of transient I/O only.

    No Prefect cache policy and no persisted results: the stage's own store decides reuse.
    """
    return {"name": spec.name, "cache_policy": None, "persist_result": False, **RETRY_OPTIONS}


def build(plan: StagePlan, compute: Callable[[store.EntryWriter], dict | None]) -> Any:
    """Inside a stage task: the plan's entry, built with `compute` unless a verified one exists.

    Returns the StageRef as a plain dict, or a Completed state named "Cached" carrying it when
    the entry was reused (planned so, or finished by a concurrent run while this one waited).
    """
    ref, built = store.build_entry(plan.base, plan.stage, plan.key, plan.key_inputs, compute, force=plan.forced)
    if built:
        return ref.model_dump()
    return Completed(name="Cached", message=f"reused entry {plan.key}", data=ref.model_dump())


@dataclass
class Paths:
    """Resolved output locations of one run."""

    root: Path
    data: Path

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> "Paths":
        """Resolve and create the output root and data dir, or say which one is unusable."""
        out = cls(Path(cfg.output.root).expanduser().resolve(), Path(cfg.output.data_dir).expanduser().resolve())
        for name, path in (("output.root", out.root), ("output.data_dir", out.data)):
            try:
                path.mkdir(parents=True, exist_ok=True)
                probe = path / f".write-test-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                raise InputError(name, str(path), f"not a writable directory ({exc.strerror or exc})") from None
        return out

    def base(self, spec: StageSpec) -> Path:
        return self.data if spec.base == "data" else self.root


@dataclass
class StageRow:
    """One line of the staleness report."""

    stage: str
    action: str  # "reused" | "recomputed"
    reason: str
    key: str = ""
    prefect_state: str = ""
    entry: str = ""


@dataclass
class Run:
    """One run of the pipeline: its config (every "auto" resolved), where it writes, what it did.

    `stage` plans, calls and records one stage; it returns None (and runs nothing) for a stage
    after `until` or one whose upstream did not run.
    """

    name: str
    asked: PipelineConfig
    cfg: PipelineConfig
    paths: Paths
    until: str = "figures"
    forced: dict[str, str] = field(default_factory=dict)
    rows: list[StageRow] = field(default_factory=list)
    refs: dict[str, StageRef] = field(default_factory=dict)
    specs: dict[str, StageSpec] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(cls, config: PipelineConfig, *, name: str, refresh: str | None = None, until: str = "figures",
              no_cache: bool = False) -> "Run":
        """A run of `config`: "auto" resolved once (the device too), output directories ready."""
        from tasks.components.network import resolve_device

        cfg = resolve(config, device=resolve_device(config.train.device).type)
        return cls(name, config, cfg, Paths.from_config(cfg), until, forced_stages(refresh, no_cache))

    def wants(self, stage: str) -> bool:
        """Is `stage` at or before `until`?"""
        return stage not in STAGES or STAGES.index(stage) <= STAGES.index(self.until)

    def stage(self, task: Any, **inputs: Any) -> StageRef | None:
        """Plan the stage of `task` from `inputs`, call it, record the outcome; its StageRef."""
        spec = spec_of(task)
        if not self.wants(spec.name) or any(v is None for v in inputs.values()):
            return None
        plan = self.plan(spec, task, inputs)
        state = task(plan=plan, return_state=True, **inputs)
        ref = StageRef(**state.result())
        record_latest(plan)
        reused = state.name == "Cached"
        reason = outcome_reason(plan.reason, planned_run=plan.run, reused=reused)
        self.rows.append(StageRow(spec.name, "reused" if reused else "recomputed", reason, plan.key, state.name,
                                  str(ref.path)))
        self.refs[spec.name], self.specs[spec.name] = ref, spec
        return ref

    def plan(self, spec: StageSpec, task: Any, inputs: dict[str, Any]) -> StagePlan:
        """The key inputs of one call (see the module docstring) and whether it must run."""
        params: dict[str, Any] = {}
        upstream: dict[str, str] = {}
        for name, value in inputs.items():
            if isinstance(value, StageRef):
                upstream[value.stage] = store.content_hash(value.manifest())
            elif hasattr(value, "model_dump"):
                fields = value.model_dump(mode="json")
                params[section_name(value)] = {k: v for k, v in fields.items() if k not in spec.run_only}
            else:
                params[name] = value
        env = {p: version(p) for p in spec.packages}
        if spec.trains(inputs):
            env["device"] = self.cfg.train.device
        return plan_stage(self.paths.base(spec), spec.name, params=params, upstream=upstream,
                          code=code_hashes(task.fn.__module__), env=env, force=self.forced.get(spec.name))

    def table(self) -> list[dict]:
        """The staleness report as table rows (the rnn-stages artifact, stages.json)."""
        return [vars(r) for r in self.rows]

    def lines(self) -> list[str]:
        return [f"  {r.stage:<9} {r.action:<10} {r.reason}" for r in self.rows]


def outcome_reason(planned: str, *, planned_run: bool, reused: bool) -> str:
    """Why a stage was reused or recomputed: the plan's reason when it went as planned; else what
    happened between planning and the entry's lock (another run built it, or it vanished)."""
    if reused != planned_run:
        return planned
    if reused:
        return "built by a concurrent run while this one waited"
    return "the cached output vanished after planning"


def spec_of(task: Any) -> StageSpec:
    """The StageSpec declared as STAGE in the module that defines a stage task."""
    return sys.modules[task.fn.__module__].STAGE


def forced_stages(refresh: str | None, no_cache: bool) -> dict[str, str]:
    """Stages to recompute regardless of the cache, with the reason."""
    if no_cache:
        return {s: "--no-cache" for s in STAGES}
    if refresh:
        return {s: f"--refresh {refresh}" for s in STAGES[STAGES.index(refresh):]}
    return {}
