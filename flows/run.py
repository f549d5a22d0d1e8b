"""The body of rnn_pipeline: plan and run each stage, then publish the report.

Kept apart from flows/rnn_flow.py so the flow file stays a thin, importable definition.
"""

from __future__ import annotations

import logging
import time

from prefect import get_run_logger

from tasks import ui
from tasks.caching import STAGE_CACHE_POLICY, StagePlan
from tasks.config import STAGES, PipelineConfig
from tasks.evaluate import METRICS_FILE, evaluate_task
from tasks.figures import FIGURES, figures_task
from tasks.generate import generate_task
from tasks.locks import ProcessFileLockManager
from tasks.pipeline import Paths, RunLedger, forced_stages, plan_for, run_stage, write_run_dir
from tasks.promote import PromoteSettings, promote_step
from tasks.store import read_json
from tasks.train import train_task
from tasks.windowing import min_series_length, window_task

logging.getLogger("tasks").setLevel(logging.INFO)


def _task_caller(task, paths: Paths, **kwargs):
    """Call `task` for a plan with results and locks under the output root."""
    storage = paths.root / "prefect-results"  # a Path: a local store under the output root
    policy = STAGE_CACHE_POLICY.configure(
        isolation_level="SERIALIZABLE",
        lock_manager=ProcessFileLockManager(lock_files_directory=paths.root / "locks" / "prefect"),
    )

    def call(plan: StagePlan):
        t = task.with_options(result_storage=storage, cache_policy=policy, refresh_cache=plan.run)
        return t(plan=plan, return_state=True, **kwargs)

    return call


def execute(
    cfg: PipelineConfig, *, refresh: str | None, until: str, no_cache: bool, name: str,
    promote: PromoteSettings | None = None,
) -> dict:
    """Run the stages up to `until`, then the champion/challenger step if `promote`; return the summary."""
    started = time.perf_counter()
    logger = get_run_logger()
    paths = Paths.from_config(cfg)
    ledger = RunLedger()
    forced = forced_stages(refresh, no_cache)
    r = ledger.refs
    calls = {
        "generate": lambda: _task_caller(generate_task, paths, cfg=cfg.data, min_length=min_series_length(cfg.window)),
        "window": lambda: _task_caller(window_task, paths, cfg=cfg.window, series=r["generate"].model_dump()),
        "train": lambda: _task_caller(
            train_task, paths, model_cfg=cfg.model, cfg=cfg.train, window=r["window"].model_dump(), root=str(paths.root)
        ),
        "evaluate": lambda: _task_caller(
            evaluate_task, paths, cfg=cfg.eval, window=r["window"].model_dump(), train=r["train"].model_dump()
        ),
        "figures": lambda: _task_caller(
            figures_task, paths, cfg=cfg.figures, evaluate=r["evaluate"].model_dump(), train=r["train"].model_dump()
        ),
    }
    for stage in STAGES[: STAGES.index(until) + 1]:
        plan = plan_for(stage, cfg, paths, ledger, forced.get(stage))
        run_stage(plan, calls[stage](), ledger)
    logger.info("stages:\n%s", "\n".join(ledger.lines()))
    ui.publish_table(ui.STAGES_KEY, ledger.as_table(), "Each stage: reused or recomputed, and why")
    summary = {"run": name, "run_dir": "", "stages": ledger.as_table(), "pipeline_seconds": 0.0}
    if "evaluate" in r:
        summary.update(_publish_results(cfg, ledger, name, logger))
    summary["pipeline_seconds"] = round(time.perf_counter() - started, 3)
    run_dir = write_run_dir(paths.root / "runs" / name, cfg, ledger, {"summary": summary})
    summary["run_dir"] = str(run_dir)
    logger.info("outputs: %s", run_dir)
    summary["promotion"] = promote_step(promote, r, paths.root, name, cfg.eval, run_dir)
    return summary


def _publish_results(cfg: PipelineConfig, ledger: RunLedger, name: str, logger) -> dict:
    """Metrics table, one-line verdict and (when figures ran) the markdown report."""
    result = read_json(ledger.refs["evaluate"].file(METRICS_FILE))
    metrics, tr = result["metrics"], result["train"]
    ui.publish_table(ui.METRICS_KEY, ui.metrics_rows(metrics), f"Test-range metrics of run {name}")
    verdict = (
        f"device {tr['device']} ({tr['threads']} thread(s)), {tr['epochs_run']} epochs"
        f"{' (early stop)' if tr['stopped_early'] else ''}; test MSE {metrics['model']['mse']:.3e} vs naive "
        f"{metrics['naive']['mse']:.3e} ({result['naive_mse_ratio']:.1f}x lower), "
        f"MASE {metrics['model']['mase']:.3f} vs {metrics['naive']['mase']:.3f}"
    )
    if "seasonal_naive" in metrics:
        verdict += f" (seasonal naive {metrics['seasonal_naive']['mase']:.3f}, season {result['season_length']})"
    if result.get("frequency") not in (None, "1"):
        verdict += f"; inferred frequency {result['frequency']}"
    logger.info("result: %s", verdict)
    if "figures" in ledger.refs:
        figs = {n: ledger.refs["figures"].file(f"figures/{n}.png") for n in FIGURES}
        md = ui.report_markdown(f"RNN forecast report — {name}", [verdict], metrics, figs)
        ui.publish_markdown(ui.REPORT_KEY, md, f"Metrics and figures of run {name}")
    return {"metrics": metrics, "train": tr, "verdict": verdict}
