"""Wiring shared by the flows: plan each stage, call its task, keep the staleness report, and
assemble the run directory. No stage logic lives here."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable

from tasks import store
from tasks.caching import StagePlan, code_hashes, plan_stage, record_latest
from tasks.config import STAGES, PipelineConfig, stage_params
from tasks.errors import InputError

log = logging.getLogger(__name__)

STAGE_MODULES = {
    "generate": "tasks.generate",
    "window": "tasks.windowing",
    "train": "tasks.train",
    "evaluate": "tasks.evaluate",
    "figures": "tasks.figures",
    "forecast": "tasks.forecast",
}
UPSTREAM = {
    "generate": (),
    "window": ("generate",),
    "train": ("window",),
    "evaluate": ("window", "train"),
    "figures": ("evaluate", "train"),
    "forecast": ("generate", "window", "train", "evaluate"),
}
ENV_PACKAGES = {
    "generate": ("numpy", "pandas", "pyarrow"),
    "window": ("numpy",),
    "train": (),
    "evaluate": ("numpy", "pandas", "torch"),
    "figures": ("matplotlib", "pandas"),
    "forecast": ("numpy", "pandas", "torch", "matplotlib"),
}


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

    def base(self, stage: str) -> Path:
        return self.data if stage == "generate" else self.root


@dataclass
class StageRow:
    stage: str
    action: str  # "reused" | "recomputed" | "skipped"
    reason: str
    key: str = ""
    prefect_state: str = ""


@dataclass
class RunLedger:
    """Plans, refs and the staleness report of one run, stage by stage."""

    rows: list[StageRow] = field(default_factory=list)
    refs: dict[str, store.StageRef] = field(default_factory=dict)

    def as_table(self) -> list[dict]:
        return [vars(r) for r in self.rows]

    def lines(self) -> list[str]:
        return [f"  {r.stage:<9} {r.action:<10} {r.reason}" for r in self.rows]


def stage_env(stage: str, cfg: PipelineConfig) -> dict[str, str]:
    """Library versions (and for train the device kind) that change a stage's result."""
    env = {p: version(p) for p in ENV_PACKAGES[stage]}
    refits = (stage == "evaluate" and cfg.eval.refit_every) or (stage == "forecast" and cfg.forecast.refit_full)
    if stage == "train" or refits:  # training happens here: the device kind changes the result
        from tasks.train import train_env

        env.update(train_env(cfg.train))
    return env


def forced_stages(refresh: str | None, no_cache: bool) -> dict[str, str]:
    """Stages to recompute regardless of the cache, with the reason."""
    if no_cache:
        return {s: "--no-cache" for s in STAGES}
    if refresh:
        return {s: f"--refresh {refresh}" for s in STAGES[STAGES.index(refresh) :]}
    return {}


def plan_for(stage: str, cfg: PipelineConfig, paths: Paths, ledger: RunLedger, force: str | None) -> StagePlan:
    """Plan one stage from its params, its upstream entries' contents, code and environment."""
    params = stage_params(cfg, stage)
    if stage == "generate" and cfg.data.data_path:
        path = Path(cfg.data.data_path).expanduser()
        if not path.is_file():
            raise InputError("data_path", cfg.data.data_path, "no such file")
        params["data_file_sha256"] = store.sha256_file(path)  # the file's content, not its name
    upstream = {u: store.content_hash(ledger.refs[u].manifest()) for u in UPSTREAM[stage]}
    return plan_stage(
        paths.base(stage), stage, params=params, upstream=upstream,
        code=code_hashes(STAGE_MODULES[stage]), env=stage_env(stage, cfg), force=force,
    )


def run_stage(plan: StagePlan, call: Callable[[StagePlan], Any], ledger: RunLedger) -> store.StageRef:
    """Call a stage's task for `plan`; record the outcome; return its ref."""
    state = call(plan)
    ref = store.StageRef(**state.result())
    record_latest(plan)
    ledger.refs[plan.stage] = ref
    action = "recomputed" if plan.run else "reused"
    ledger.rows.append(StageRow(plan.stage, action, plan.reason, plan.key, state.name))
    return ref


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link `src` at `dst` (copy across file systems), replacing `dst` atomically."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


RUN_FILES = {
    "train": ("model.pt", "history.json"),
    "evaluate": ("metrics.json", "predictions.parquet"),
    "figures": ("figures/prediction.png", "figures/loss.png", "figures/residuals.png", "figures/error_by_lead.png"),
    "forecast": ("forecast.parquet", "figures/forecast.png"),
}


def write_run_dir(run_dir: Path, cfg: PipelineConfig, ledger: RunLedger, extra: dict) -> Path:
    """runs/<name>/: config.json, stages.json and hard links to the files of the entries used."""
    run_dir = store.inside(Path(cfg.output.root) / "runs", run_dir, field="run name")
    run_dir.mkdir(parents=True, exist_ok=True)
    store.write_json(run_dir / "config.json", cfg.model_dump(mode="json"))
    for stage, names in RUN_FILES.items():
        if stage in ledger.refs:
            for name in names:
                link_or_copy(ledger.refs[stage].file(name), run_dir / name)
    stages = {r.stage: {**vars(r), "entry": str(ledger.refs[r.stage].path)} for r in ledger.rows}
    store.write_json(run_dir / "stages.json", {"stages": stages, **extra})
    return run_dir
