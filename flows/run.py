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
from tasks.backtest import gate_line
from tasks.evaluate import METRICS_FILE, evaluate_task
from tasks.figures import FIGURES, figures_task
from tasks.forecast import FIGURE_FILE, FORECAST_FILE, forecast_task
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
            evaluate_task, paths, cfg=cfg.eval, window=r["window"].model_dump(), train=r["train"].model_dump(),
            model_cfg=cfg.model, train_cfg=cfg.train,
        ),
        "figures": lambda: _task_caller(
            figures_task, paths, cfg=cfg.figures, evaluate=r["evaluate"].model_dump(), train=r["train"].model_dump()
        ),
        "forecast": lambda: _task_caller(
            forecast_task, paths, cfg=cfg.forecast, fig_cfg=cfg.figures, model_cfg=cfg.model, train_cfg=cfg.train,
            **{u: r[u].model_dump() for u in ("window", "train", "evaluate")}, series=r["generate"].model_dump(),
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
    if "forecast" in r:
        summary["forecast"] = _publish_forecast(ledger, name, logger)
    summary["pipeline_seconds"] = round(time.perf_counter() - started, 3)
    run_dir = write_run_dir(paths.root / "runs" / name, cfg, ledger, {"summary": summary})
    summary["run_dir"] = str(run_dir)
    logger.info("outputs: %s", run_dir)
    summary["promotion"] = promote_step(promote, r, paths.root, name, cfg.eval, run_dir)
    return summary


def _publish_results(cfg: PipelineConfig, ledger: RunLedger, name: str, logger) -> dict:
    """Metrics table, one-line verdict, the baseline gate and (when figures ran) the markdown report."""
    result = read_json(ledger.refs["evaluate"].file(METRICS_FILE))
    metrics, tr, gate = result["metrics"], result["train"], result["gate"]
    gate_text = gate_line(gate, result["horizon"], result["n_test"])
    ui.publish_table(ui.METRICS_KEY, ui.metrics_rows(metrics, _metric_extras(result)),
                     f"Backtest metrics of run {name} (averages over {result['horizon']} lead(s)); {gate_text}")
    verdict = (
        f"device {tr['device']} ({tr['threads']} thread(s)), {tr['epochs_run']} epochs"
        f"{' (early stop)' if tr['stopped_early'] else ''}; test MSE {metrics['model']['mse']:.3e} vs naive "
        f"{metrics['naive']['mse']:.3e} ({result['naive_mse_ratio']:.1f}x lower), "
        f"MASE {metrics['model']['mase']:.3f} vs {metrics['naive']['mase']:.3f}"
    )
    if "seasonal_naive" in metrics:
        verdict += f" (seasonal naive {metrics['seasonal_naive']['mase']:.3f}, season {result['season_length']})"
    if result.get("horizon", 1) > 1:
        verdict += f"; averaged over {result['horizon']} leads"
    if result.get("frequency") not in (None, "1"):
        verdict += f"; inferred frequency {result['frequency']}"
    logger.info("result: %s", verdict)
    logger.info("%s", gate_text)
    if "figures" in ledger.refs:
        figs = {n: ledger.refs["figures"].file(f"figures/{n}.png") for n in FIGURES}
        lines = [verdict, gate_text, _interval_line(result)]
        md = ui.report_markdown(f"RNN forecast report — {name}", lines, metrics, figs)
        ui.publish_markdown(ui.REPORT_KEY, md, f"Metrics and figures of run {name}")
    return {"metrics": metrics, "train": tr, "verdict": verdict, "gate": gate_text, "gate_passed": gate["passed"]}


def _metric_extras(result: dict) -> dict[str, dict]:
    """Extra columns of the rnn-metrics table: interval coverage and width (model) and the gate."""
    test, gate = result["intervals"]["test"], result["gate"]
    model = {c: v for k, t in test.items() for c, v in ((f"coverage_{k}", t["coverage"]), (f"width_{k}", t["mean_width"]))}
    model["gate"] = "passed" if gate["passed"] else "failed"
    return {"model": model, gate["baseline"]: {"gate": "baseline"}}


def _interval_line(result: dict) -> str:
    """Empirical coverage and mean width of each conformal interval on the test range, in one line."""
    iv = result["intervals"]
    parts = [f"{k}%: coverage {t['coverage']:.2f}, mean width {t['mean_width']:.4g}" for k, t in iv["test"].items()]
    return f"conformal intervals ({iv['n_calibration']} validation origins, {iv['method']}): " + "; ".join(parts)


def _publish_forecast(ledger: RunLedger, name: str, logger) -> dict:
    """The rnn-forecast table artifact; returns where the forecast is and what it starts with."""
    import pandas as pd

    ref = ledger.refs["forecast"]
    fc = pd.read_parquet(ref.file(FORECAST_FILE))
    ui.publish_table(ui.FORECAST_KEY, ui.table_rows(fc), f"Forecast past the end of each series, run {name}")
    when = fc["timestamp"].iloc[0] if "timestamp" in fc else fc["step"].iloc[0]
    logger.info("forecast: %d rows from %s (%s)", len(fc), when, ref.file(FORECAST_FILE))
    return {"rows": len(fc), "first": str(when), "file": str(ref.file(FORECAST_FILE)),
            "figure": str(ref.file(FIGURE_FILE))}
