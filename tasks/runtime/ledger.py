"""The run directory: what one run asked for, what ran, and links to the files it used.

    <output root>/runs/<run name>/
        config.json      {"asked": the flow's config parameter, "resolved": every "auto" turned into its value}
        stages.json      each stage: reused or recomputed, why, its (first) key and entry; "entries":
                         every entry the run used (all buckets and members); plus the run summary
        metrics.json     the evaluate entry's metrics.json plus what ran: "config" (resolved) and "auto"
                         (the settings that were "auto", with their values)
        <files>          copies of the other files each stage declares (model.pt, figures/...): a write
                         through one never reaches the cache entry or the champion
"""

from __future__ import annotations

from pathlib import Path

from tasks.config import auto_settings
from tasks.formats.scores import METRICS_FILE
from tasks.runtime import store
from tasks.runtime.stages import Run


def run_dir_of(run: Run) -> Path:
    """Where `run`'s directory is (or will be): <output root>/runs/<name>."""
    return store.inside(run.paths.root / "runs", run.name, field="run name")


def write_run_dir(run: Run, extra: dict) -> Path:
    """runs/<name>/ of `run`, with `extra` (the summary) in stages.json; returns the directory."""
    run_dir = run_dir_of(run)
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = run.cfg.model_dump(mode="json")
    store.write_json(run_dir / "config.json", {"asked": run.asked.model_dump(mode="json"), "resolved": resolved})
    for stage, ref in run.refs.items():
        for name in run.specs[stage].files if isinstance(ref, store.StageRef) else ():
            if not ref.file(name).is_file():
                continue
            if name == METRICS_FILE:
                metrics = store.read_json(ref.file(name))
                store.write_json(run_dir / name, {**metrics, "config": resolved,
                                                  "auto": auto_settings(run.asked, run.cfg)})
            else:
                store.copy_file(ref.file(name), run_dir / name)
    stages = {r.stage: vars(r) for r in run.rows.values()}
    store.write_json(run_dir / "stages.json", {"stages": stages, "entries": sorted(set(run.used)), **extra})
    return run_dir
