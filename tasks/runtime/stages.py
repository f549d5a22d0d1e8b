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

import contextlib
import logging
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

from prefect.states import Completed

from tasks.config import STAGES, PipelineConfig, TrainConfig, resolve, section_name
from tasks.errors import InputError
from tasks.runtime import confine, faults, interrupt, offload, progress, store
from tasks.runtime.caching import StagePlan, code_hashes, plan_stage, record_latest
from tasks.runtime.runners import warm_up
from tasks.runtime.retry import RETRY_OPTIONS

log = logging.getLogger(__name__)

StageRef = store.StageRef
FROM_CHECKPOINT = "from the checkpoint a previous run left"
RESUMES = f"resumes {FROM_CHECKPOINT}"  # what an entry's reason adds (StageSpec.resumes)


@dataclass(frozen=True)
class StageSpec:
    """What the runtime needs to know about a stage besides its inputs.

    name: the entry's stage name (its cache folder); phase: the pipeline stage it belongs to
    (tasks.config.STAGES: what --until and --refresh name and the report shows), e.g. the
    per-bucket "ingest" entries are part of "generate";
    base: "data" (the generated/ingested series live under the data dir) or "output";
    run_only: config fields that change how it runs, not what it produces (left out of the key);
    packages: libraries whose versions change its result (in the key);
    trains: inputs -> True when this call trains a network (the device kind joins the key);
    files: what it writes, copied into the run directory;
    words: how a stage reason names a task argument that is not a config section;
    resumes: (base directory, entry key) -> True when an earlier computation of that entry left
    something it resumes from (a training's checkpoint: an interrupted run's, or a finished one's
    whose output went missing): its reason then says so.
    """

    name: str
    base: Literal["data", "output"] = "output"
    run_only: frozenset[str] = frozenset()
    packages: tuple[str, ...] = ()
    trains: Callable[[dict[str, Any]], bool] = lambda inputs: False
    files: tuple[str, ...] = ()
    phase: str = ""  # the pipeline stage (tasks.config.STAGES) this one is part of; default: its name
    words: tuple[tuple[str, str], ...] = ()  # (argument, how a stage reason names it): its non-config arguments
    resumes: Callable[[Path, str], bool] = lambda base, key: False

    @property
    def stage(self) -> str:
        return self.phase or self.name


def stage_task(spec: StageSpec) -> dict[str, Any]:
    """Keyword arguments of the @task of a stage: its name and retries of transient I/O only.

    No Prefect cache policy and no persisted results: the stage's own store decides reuse.
    """
    return {"name": spec.name, "cache_policy": None, "persist_result": False, **RETRY_OPTIONS}


def build(plan: StagePlan, compute: Callable[[store.EntryWriter], dict | None]) -> Any:
    """Inside a stage task: the plan's entry, built with `compute` unless a verified one exists.

    Returns the StageRef as a plain dict with "built" (whether this call built it), in a
    Completed state named "Cached" when the entry was reused (planned so, or finished by a
    concurrent run while this one waited). Safe to run twice (Dask may re-run a finished task
    after losing a worker): the second call finds the entry and reuses it.
    """
    def drilled(w: store.EntryWriter) -> dict | None:
        faults.check(plan.stage, plan.key_inputs.get("params", {}))  # RNNFLOW_FAULT drills only
        faults.stall(plan.stage)  # RNNFLOW_STALL drills only
        with torch_threads(plan.threads):
            return compute(w)

    ref, built = store.build_entry(plan.base, plan.stage, plan.key, plan.key_inputs, drilled, force=plan.forced)
    out = {**ref.model_dump(), "built": built}
    return out if built else Completed(name="Cached", message=f"reused entry {plan.key}", data=out)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Within: torch computes with `n` CPU threads in this thread. torch's intra-op setting is
    per thread (OpenMP), and a task runs in whichever thread of the runner is free: without it a
    stage computed with the thread's default (every core) and its entry's bytes depended on which
    thread built it (validate scores differed at 1e-8). Restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    """One line of the staleness report: a pipeline stage, over all of its entries."""

    stage: str
    action: str  # "reused" | "recomputed"
    reason: str
    key: str = ""
    prefect_state: str = ""
    entry: str = ""
    entries: int = 0  # how many entries the stage has (buckets, members); key and entry are the first's
    recomputed: int = 0
    featured: str = ""  # "built" or "reused" when the reason is one entry's (Run.feature), not the first's
    resumed: int = 0  # entries built on from a previous run's checkpoint (an interrupted search's members)


Inputs = dict[str, Any]


@dataclass
class Run:
    """One run of the pipeline: its config (every "auto" resolved), where it writes, what it did.

    `stage` plans, calls and records one entry in this thread; `map` does the same for one entry
    per item (a bucket of series, a sweep member) on the run's task runner, in bounded waves.
    Both return None (and run nothing) for a stage after `until` or one whose upstream did not run.
    """

    name: str
    asked: PipelineConfig
    cfg: PipelineConfig
    paths: Paths
    until: str = "figures"
    forced: dict[str, str] = field(default_factory=dict)
    rows: dict[str, StageRow] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)  # entry stage name -> StageRef or tuple of them
    specs: dict[str, StageSpec] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    runner: Any = None  # an entered Prefect task runner, for `map`
    largest_payload: int = 0  # bytes of the largest value a stage task returned (pickled)
    used: list[str] = field(default_factory=list)  # every entry the run used (all buckets and members)
    lease: Any = None  # tasks.runtime.leases.Lease while the run is entered: what `clean` must leave alone
    offloading: bool = False  # statistical work goes to the worker process until it leaves (offload_statistics)
    source: str = ""  # the data it reads (source_of): what stage reasons compare runs by
    outcomes: dict[str, tuple[str, bool]] = field(default_factory=dict)  # entry path -> (its reason, built)

    @classmethod
    def start(cls, config: PipelineConfig, *, name: str, refresh: str | None = None, until: str = "figures",
              no_cache: bool = False, promote: bool = False) -> "Run":
        """A run of `config`: "auto" resolved once (the device too), output directories ready, and,
        for a run that promotes, its model registry checked by shape (InputError: one line before
        any stage runs)."""
        from tasks.components.network import resolve_device

        interrupt.rearm(_flow_run_id())  # a command-line run: SIGINT/SIGTERM stop it within seconds
        confine.check(config)  # a served deployment's run: nothing outside what `serve` fixed
        cfg = resolve(config, device=resolve_device(config.train.device).type)
        if promote:
            from tasks.runtime import registry

            registry.load(Path(cfg.output.root).expanduser())
        return cls(name, config, cfg, Paths.from_config(cfg), until, forced_stages(refresh, no_cache),
                   source=source_of(cfg))

    def resolve(self, config: PipelineConfig) -> PipelineConfig:
        """Another asked config (a sweep member) with "auto" resolved as this run's was."""
        return resolve(config, device=self.cfg.train.device)

    def __enter__(self) -> "Run":
        from tasks.runtime.leases import Lease
        from tasks.runtime.publish import TrainingProgress
        from tasks.runtime.runners import task_runner

        for base in dict.fromkeys((self.paths.root, self.paths.data)):  # what killed writers left
            store.sweep_temp_files(base)
            store.remove_all_dead_work(base)
        self.lease = Lease(self.name, [self.paths.root, self.paths.data]).__enter__()
        self.lease.add(self.paths.root / "runs" / self.name)
        self._following = progress.follow(TrainingProgress())  # the run's one rnn-training-progress artifact
        self._following.__enter__()
        try:
            self.runner = task_runner(self.cfg.runner).__enter__()
        except BaseException:
            self._following.__exit__(None, None, None)
            self.lease.__exit__(None, None, None)
            self.lease = None
            raise
        return self

    def fits_statistics(self) -> bool:
        """Will this run fit statsforecast models: the evaluate stage's references, or a search's
        statistical members (seasonal naive alone is one too: a cheap one)?"""
        cfg = self.cfg
        return bool((cfg.eval.references and self.wants("evaluate"))
                    or (cfg.search.mode != "off" and cfg.search.statistical and self.wants("train")))

    def offload_statistics(self) -> None:
        """From now until the run leaves, statsforecast's fits run in a worker process
        (tasks/runtime/offload.py), started now: on the local runner, whose threads share one GIL,
        when the run fits statistical models at all. Called as the run plans its first entry to
        compute, so that the worker's import of statsforecast and its first-use code (about 2 s)
        run on another core while this process goes on (a run that reuses every entry starts
        none). A Dask run's workers are processes of their own and compute in place."""
        if self.cfg.runner.kind == "local" and not self.offloading and self.fits_statistics():
            offload.prestart()
            offload.install()
            self.offloading = True

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.runner is not None:
                self.runner.__exit__(*exc)
                self.runner = None
        finally:
            if self.offloading:
                offload.uninstall()
                self.offloading = False
            self._following.__exit__(None, None, None)
            if self.lease is not None:
                self.lease.__exit__(*exc)
                self.lease = None

    def wants(self, stage: str) -> bool:
        """Is `stage` at or before `until`?"""
        return stage not in STAGES or STAGES.index(stage) <= STAGES.index(self.until)

    def stage(self, task: Any, **inputs: Any) -> StageRef | None:
        """Plan the one entry of `task` from `inputs`, call it here, record the outcome; its StageRef."""
        spec = spec_of(task)
        if not self.wants(spec.stage) or any(v is None for v in inputs.values()):
            return None
        interrupt.at_stage(spec.stage, spec.name)
        plan = self.plan(spec, task, inputs)
        progress.begin(spec.name, 1, building=int(plan.run))
        try:
            state = task(plan=plan, return_state=True, **inputs)
            progress.advance(spec.name)
        finally:
            progress.end(spec.name)
        ref = self._record(spec, plan, state.result())
        record_latest([plan])
        self.refs[spec.name], self.specs[spec.name] = ref, spec
        return ref

    def map(self, task: Any, items: list[Inputs], *, stop_at: float = 0.0, **shared: Any
            ) -> tuple[StageRef, ...] | None:
        """One entry of `task` per item (its own inputs plus `shared`), run on the task runner.

        At most runner.in_flight tasks per worker are submitted at a time. Every task is waited
        for; then the first failure, if any, is raised (the other entries are complete).
        stop_at: a time.time() after which no further item is submitted (a run's time limit): the
        items left get None in place of a StageRef, and no entry (a later run builds them).
        """
        if items is None or any(v is None for v in shared.values()):
            return None
        return self.map_together([(task, [{**item, **shared} for item in items], stop_at)])[0]

    def map_together(self, jobs: list[tuple[Any, list[Inputs] | None, float]], interleave: bool = False,
                     work: list[list[tuple[float, float]] | None] | None = None
                     ) -> list[tuple[StageRef, ...] | None]:
        """`map` of several stages in one wave: jobs are (task, items, stop_at), submitted in order,
        or taking turns with `interleave` (a search's statistical members then run beside its
        networks, not all after them); the refs of each job (None for a job whose stage is not
        wanted). work: for each job, its items' planned work ((seconds a unit, units) each) or None:
        the progress display then weighs each item it computes by it (progress.begin)."""
        calls, slots, stage_of = [], [], []  # stage_of: the stage name of each call
        planned: dict[str, dict[str, tuple[float, float]]] = {}  # stage name -> {plan key: work}
        for j, (task, items, stop_at) in enumerate(jobs):
            spec = spec_of(task)
            if not self.wants(spec.stage) or items is None:
                slots.append(None)
                continue
            if not calls:  # an interrupt names the wave's first stage
                interrupt.at_stage(spec.stage, spec.name)
            plans = [self.plan(spec, task, item) for item in items]
            if work and work[j]:
                planned[spec.name] = {p.key: w for p, w in zip(plans, work[j]) if p.run}
            slots.append((spec, plans, len(calls)))
            calls += [(task, plan, item, stop_at) for plan, item in zip(plans, items)]
            stage_of += [spec.name] * len(plans)
        live = [slot for slot in slots if slot is not None]
        order = turns([len(plans) for _, plans, _ in live]) if interleave else list(range(len(calls)))
        building = [sum(p.run for p in plans) for _, plans, _ in live]
        if sum(building) > 1 and self.cfg.runner.kind == "local" and self.cfg.runner.workers > 1:
            # tasks about to compute side by side in threads: no first-use AST building left to them
            warm_up(self.cfg.train.device)
        for (spec, plans, _), n in zip(live, building):
            progress.begin(spec.name, len(plans), building=n, work=planned.get(spec.name))
        try:
            ended = self._submit_in_waves([calls[i] for i in order], lambda k: progress.advance(stage_of[order[k]]))
        finally:
            for spec, _, _ in live:
                progress.end(spec.name)
        results: list[Any] = [None] * len(calls)
        for i, r in zip(order, ended):
            results[i] = r
        out = []
        for slot in slots:
            if slot is None:
                out.append(None)
                continue
            spec, plans, start = slot
            done = results[start:start + len(plans)]
            refs = tuple(self._record(spec, plan, result) if result is not None else None
                         for plan, result in zip(plans, done))
            record_latest([plan for plan, result in zip(plans, done) if result is not None])
            self.refs[spec.name], self.specs[spec.name] = refs, spec
            out.append(refs)
        return out

    def _submit_in_waves(self, calls: list[tuple[Any, StagePlan, Inputs, float]],
                         ended: Callable[[int], None] = lambda k: None) -> list[Any]:
        """Results of every call (task, plan, inputs, stop_at), in order; raises the first task
        failure after all have ended. `ended(k)` is called as call k ends (the progress display
        counts them).

        At most workers x in_flight calls are in flight: the next is submitted as soon as any one
        of them ends (not when the whole batch has), so a worker never idles behind a slow member.
        With a time limit (any stop_at), only as many as there are workers, and no call is
        submitted after its stop_at (its result None; the first call always runs).
        """
        from prefect.futures import as_completed

        timed = any(c[3] for c in calls)
        limit = max(1, self.cfg.runner.workers * (1 if timed else self.cfg.runner.in_flight))
        futures: list[Any] = [None] * len(calls)
        pending: dict[Any, int] = {}
        for i, (task, plan, inputs, stop_at) in enumerate(calls):
            if len(pending) >= limit:
                ended(pending.pop(next(as_completed(list(pending)))))
            if stop_at and i and time.time() >= stop_at:
                continue
            named = task.with_options(task_run_name=f"{task.name}-{plan.key[:6]}")
            futures[i] = self.runner.submit(named, parameters={"plan": plan, **inputs})
            pending[futures[i]] = i
        for f in as_completed(list(pending)):
            ended(pending[f])
        results, failure = [], None
        for f in futures:
            if f is None:  # not submitted: the time limit came first
                results.append(None)
                continue
            value = f.result(raise_on_failure=False)
            if isinstance(value, BaseException) and failure is None:
                failure = value
            results.append(value)
        if failure is not None:
            raise failure
        return results

    def _record(self, spec: StageSpec, plan: StagePlan, result: dict) -> StageRef:
        """Fold one entry's outcome into its stage's row of the report; its StageRef."""
        self.largest_payload = max(self.largest_payload, len(pickle.dumps(result)))
        built = bool(result.pop("built", True))
        ref = StageRef(**result)
        self.used.append(str(ref.path))
        reason = outcome_reason(plan.reason, planned_run=plan.run, reused=not built)
        self.outcomes[str(ref.path)] = (reason, built)
        row = self.rows.get(spec.stage)
        if row is None:
            row = self.rows[spec.stage] = StageRow(spec.stage, "recomputed" if built else "reused", reason)
        elif built and row.action == "reused":
            row.action, row.reason = "recomputed", reason
        if not row.entries:
            row.key, row.entry = plan.key, str(ref.path)
        row.entries += 1
        row.recomputed += built
        row.resumed += built and plan.resumes
        row.prefect_state = "Completed" if row.recomputed else "Cached"
        return ref

    def plan(self, spec: StageSpec, task: Any, inputs: Inputs) -> StagePlan:
        """The key inputs of one call (see the module docstring) and whether it must run."""
        params: dict[str, Any] = {}
        upstream: dict[str, str] = {}
        for name, value in inputs.items():
            if isinstance(value, StageRef):
                upstream[_upstream_name(upstream, value.stage, name)] = store.content_hash(value.manifest())
            elif isinstance(value, tuple) and value and all(isinstance(v, StageRef) for v in value):
                upstream[_upstream_name(upstream, value[0].stage, name)] = store.sha256_json(
                    [store.content_hash(v.manifest()) for v in value])
            elif hasattr(value, "model_dump"):
                fields = value.model_dump(mode="json")
                params[section_name(value)] = {k: v for k, v in fields.items() if k not in spec.run_only}
            else:
                params[name] = value
        env = {p: version(p) for p in spec.packages}
        if spec.trains(inputs):
            env["device"] = self.cfg.train.device
        train = next((v for v in inputs.values() if isinstance(v, TrainConfig)), self.cfg.train)
        planned = plan_stage(self.paths.base(spec), spec.name, params=params, upstream=upstream,
                             code=code_hashes(task.fn.__module__), env=env, force=self.forced.get(spec.stage),
                             words=dict(spec.words), threads=train.threads,
                             lease=self.lease.add if self.lease is not None else None, source=self.source,
                             run_name=self.name)
        if planned.run:
            self.offload_statistics()
            if not planned.forced and spec.resumes(Path(planned.base), planned.key):
                planned = planned.model_copy(update={"reason": f"{planned.reason}; {RESUMES}", "resumes": True})
        return planned

    def feature(self, ref: StageRef) -> None:
        """Let the line of `ref`'s stage give this entry's reason (a sweep's winner, a search's best
        network) rather than its first entry's: the settings of the model the run goes on with."""
        reason, built = self.outcomes[str(ref.path)]
        row = self.rows[self.specs_by_entry(ref)]
        row.reason, row.featured = reason, "built" if built else "reused"

    def specs_by_entry(self, ref: StageRef) -> str:
        """The pipeline stage (the line) an entry of `ref.stage` belongs to."""
        spec = next((s for s in self.specs.values() if s.name == ref.stage), None)
        return spec.stage if spec is not None else ref.stage

    def table(self) -> list[dict]:
        """The staleness report as table rows (the rnn-stages artifact, stages.json)."""
        return [vars(r) for r in self.rows.values()]

    def lines(self) -> list[str]:
        return [f"  {r.stage:<9} {r.action:<10} {r.reason}{_counts(r)}" for r in self.rows.values()]


def _flow_run_id() -> Any:
    """The id of the flow run this code runs in (None outside one)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return ctx.flow_run.id if ctx is not None and ctx.flow_run is not None else None


def source_of(cfg: PipelineConfig) -> str:
    """The data a run reads, as stage reasons compare runs by: a data file's absolute path, or
    "generated" (the sine, whatever its parameters: a changed one is a reason)."""
    path = cfg.data.data_path
    return str(Path(path).expanduser().resolve()) if path else "generated"


def _upstream_name(upstream: dict, stage: str, name: str) -> str:
    """An upstream's name in a key: its stage ("window"), or "window:<input>" when two inputs come
    from the same stage (an ensemble's members' windows beside the reference's)."""
    return stage if stage not in upstream else f"{stage}:{name}"


def _counts(row: StageRow) -> str:
    """ " (3 of 10 buckets)" for a stage of many entries, else nothing."""
    if row.entries <= 1:
        return ""
    n = row.recomputed if row.action == "recomputed" else row.entries
    return f" ({n} of {row.entries} entries)"


def turns(sizes: list[int]) -> list[int]:
    """The positions of jobs' calls laid end to end (job 0's `sizes[0]` calls, then job 1's, ...),
    taking turns: job 0's first, job 1's first, ..., job 0's second, ... (a shorter job drops out)."""
    starts = [sum(sizes[:j]) for j in range(len(sizes))]
    return [start + i for i in range(max(sizes, default=0)) for start, n in zip(starts, sizes) if i < n]


def each(**columns: tuple[StageRef, ...] | None) -> list[Inputs] | None:
    """Items for `Run.map`, one per bucket: each(series=a, split=b) -> [{"series": a[0], "split": b[0]}, ...].

    None when any column is None (its stage did not run); columns must have equal lengths.
    """
    if any(c is None for c in columns.values()):
        return None
    lengths = {len(c) for c in columns.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns of different lengths: { {k: len(c) for k, c in columns.items()} }")
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def outcome_reason(planned: str, *, planned_run: bool, reused: bool) -> str:
    """Why a stage was reused or recomputed: the plan's reason when it went as planned; else what
    happened between planning and the entry's lock (another run built it, or it vanished)."""
    if reused != planned_run:
        return planned
    if reused:
        return "built by a concurrent run while this one waited"
    return "the cached output vanished after planning"


def spec_of(task: Any) -> StageSpec:
    """The StageSpec named like `task`, declared in the module that defines it."""
    for value in vars(sys.modules[task.fn.__module__]).values():
        if isinstance(value, StageSpec) and value.name == task.name:
            return value
    raise LookupError(f"no StageSpec named {task.name!r} in {task.fn.__module__}")


def forced_stages(refresh: str | None, no_cache: bool) -> dict[str, str]:
    """Stages to recompute regardless of the cache, with the reason."""
    if no_cache:
        return {s: "--no-cache" for s in STAGES}
    if refresh:
        return {s: f"--refresh {refresh}" for s in STAGES[STAGES.index(refresh):]}
    return {}
