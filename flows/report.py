"""The end of a run: the staleness report, the result lines, the Prefect artifacts, the run directory.

Everything here reads the stages' files (tasks/formats.py); nothing is computed again.
"""

from __future__ import annotations

import logging
import time

from prefect import get_run_logger

from tasks.components.backtest import (
    baseline_names,
    gate_line,
    interval_words,
    metric_text,
    ratio_phrase,
)
from tasks.components.references import LABELS
from tasks.formats.figures import FIGURES, figure_file
from tasks.formats.forecast import FORECAST_FIGURE, FORECAST_FILE, read_forecast
from tasks.formats.scores import read_metrics
from tasks.runtime import publish, store
from tasks.runtime.ledger import write_run_dir
from tasks.runtime.stages import Run

logging.getLogger("tasks").setLevel(logging.INFO)


def finish(run: Run, promoted: dict | None = None, promote: bool = False, leaderboard=None,
           winner=None) -> dict:
    """Publish what the run did and where its outputs are; return the flow's summary.

    promoted: the promote task's summary when it ran; `promote`: whether it was asked for;
    leaderboard, winner: a sweep's ranking (a DataFrame, best first) and the winner's config.
    """
    logger = get_run_logger()
    logger.info("stages:\n%s", "\n".join(run.lines()))
    publish.publish_table(publish.STAGES_KEY, run.table(), "Each stage: reused or recomputed, and why")
    summary = {"run": run.name, "run_dir": "", "stages": run.table(), "pipeline_seconds": 0.0}
    if "evaluate" in run.refs:
        summary.update(publish_results(run, logger))
    if "forecast" in run.refs:
        summary["forecast"] = publish_forecast(run, logger)
    if leaderboard is not None:
        summary["leaderboard"] = publish_leaderboard(run, leaderboard, logger)
    summary["pipeline_seconds"] = round(time.perf_counter() - run.started, 3)
    summary["largest_task_payload_bytes"] = run.largest_payload
    summary["driver_peak_rss_mb"] = round(store.peak_rss_mb(), 1)
    run_dir = write_run_dir(run, {"summary": summary})
    summary["run_dir"] = str(run_dir)
    if leaderboard is not None:
        store.write_bytes(run_dir / LEADERBOARD_FILE, leaderboard.to_parquet(index=False))
        store.write_json(run_dir / "winner.json", winner.model_dump(mode="json"))
    logger.info("outputs: %s", run_dir)
    summary["promotion"] = promoted or {
        "action": "skipped",
        "reason": "no model was trained in this run" if promote else "promotion is off (promote=False)",
    }
    store.write_json(run_dir / "promotion.json", summary["promotion"])
    return summary


def publish_results(run: Run, logger) -> dict:
    """Metrics table, one-line verdict, the baseline gate and (when figures ran) the markdown report."""
    result = read_metrics(run.refs["evaluate"].path)
    tr, gate = result["train"], result["gate"]
    metrics = {k: result["metrics"][k] for k in ("model", *baseline_names(result["metrics"]))}  # the model first
    gate_text = gate_line(gate, result["horizon"], result["n_test"])
    publish.publish_table(publish.METRICS_KEY, publish.metrics_rows(metrics, metric_extras(result)),
                          f"Backtest metrics of run {run.name} (averages over {result['horizon']} lead(s)); {gate_text}")
    verdict = (
        f"device {tr['device']} ({tr['threads']} thread(s)), {tr['epochs_run']} epochs"
        f"{' (early stop)' if tr['stopped_early'] else ''}; test MSE {metrics['model']['mse']:.3e} vs naive "
        f"{metrics['naive']['mse']:.3e} ({ratio_phrase(metrics['model']['mse'], metrics['naive']['mse'])}), "
        f"MASE {metric_text(metrics['model']['mase'])} vs {metric_text(metrics['naive']['mase'])}"
    )
    lags = {k: result["season_length"] if k == "seasonal_naive" else k[15:] for k in metrics if k.startswith("seasonal")}
    seasonal = [f"{metric_text(metrics[k]['mase'])}, season {lag}" for k, lag in lags.items()]
    refs = [f"{k} {metric_text(metrics[k]['mase'])}" for k in result.get("references", {}).get("names", [])
            if k in metrics]
    parts = ([f"seasonal naive {'; '.join(seasonal)}"] if seasonal else []) + refs
    if parts:
        verdict += f" ({'; '.join(parts)})"
    if note := result.get("undefined", {}).get("mase"):
        verdict += f"; {note}"
    if result["horizon"] > 1:
        verdict += f"; averaged over {result['horizon']} leads"
    if result.get("frequency") not in (None, "1"):
        verdict += f"; inferred frequency {result['frequency']}"
    logger.info("result: %s", verdict)
    logger.info("%s", gate_text)
    if refs_text := references_line(result):
        logger.info("%s", refs_text)
    if "figures" in run.refs:
        figs = {n: run.refs["figures"].file(figure_file(n)) for n in FIGURES
                if run.refs["figures"].file(figure_file(n)).is_file()}
        lines = [verdict, gate_text, interval_line(result)] + ([refs_text] if refs_text else [])
        md = publish.report_markdown(f"RNN forecast report — {run.name}", lines, metrics, figs)
        publish.publish_markdown(publish.REPORT_KEY, md, f"Metrics and figures of run {run.name}")
    return {"metrics": metrics, "train": tr, "verdict": verdict, "gate": gate_text, "gate_passed": gate["passed"]}


def metric_extras(result: dict) -> dict[str, dict]:
    """Extra columns of the rnn-metrics table: interval coverage and width (model), the gate (the
    baseline it faced), and each baseline's model_ratio: model / baseline on the gate's metric
    (< 1: the model is better)."""
    test, gate = result["intervals"]["test"], result["gate"]
    model = {c: v for k, t in test.items() for c, v in ((f"coverage_{k}", "zero width" if t.get("zero_width") else
                                                         t["coverage"]), (f"width_{k}", t["mean_width"]))}
    model["gate"] = "passed" if gate["passed"] else "failed"
    extras = {name: {"model_ratio": v["ratio"]} for name, v in (gate.get("versus") or {}).items()}
    extras.setdefault(gate["baseline"], {})["gate"] = "baseline"
    return {"model": model, **extras}


def references_line(result: dict) -> str | None:
    """Which statistical references ran, on which season, how they were refitted, and the series
    where one fell back to the naive forecast; None when none ran."""
    refs = result.get("references") or {}
    if not refs.get("names"):
        return None
    season = f"season {refs['season_length']}" if refs.get("season_length") else "no season"
    line = f"references {', '.join(LABELS.get(n, n) for n in refs['names'])} ({season}): {refs['refit']}"
    for name, series in (refs.get("fallback") or {}).items():
        first, why = next(iter(series.items()))
        line += (f"; {LABELS.get(name, name)} fell back to the naive forecast on {len(series)} series "
                 f"(first {first!r}: {why})")
    return line


def interval_line(result: dict) -> str:
    """Empirical coverage and mean width of each conformal interval on the test range, in one line."""
    iv = result["intervals"]
    parts = [interval_words(k, t) for k, t in iv["test"].items()]
    return f"conformal intervals ({iv['n_calibration']} validation origins, {iv['method']}): " + "; ".join(parts)


def publish_forecast(run: Run, logger) -> dict:
    """The rnn-forecast table artifact; returns where the forecast is and what it starts with."""
    ref = run.refs["forecast"]
    fc = read_forecast(ref.path)
    publish.publish_table(publish.FORECAST_KEY, publish.table_rows(fc), f"Forecast past the end of each series, run {run.name}")
    when = fc["timestamp"].iloc[0] if "timestamp" in fc else fc["step"].iloc[0]
    logger.info("forecast: %d rows from %s (%s)", len(fc), when, ref.file(FORECAST_FILE))
    return {"rows": len(fc), "first": str(when), "file": str(ref.file(FORECAST_FILE)),
            "figure": str(ref.file(FORECAST_FIGURE))}


LEADERBOARD_FILE = "leaderboard.parquet"


def publish_leaderboard(run: Run, board, logger) -> dict:
    """The rnn-leaderboard table artifact (members ranked by validation MASE); the winner in one line."""
    publish.publish_table(publish.LEADERBOARD_KEY, publish.table_rows(board.drop(columns=["model_entry",
                                                                                    "scores_entry"])),
                          f"Sweep members of run {run.name}, ranked by the model's MASE on the validation range")
    top = board.iloc[0]
    settings = {k: top[k] for k in board.columns if "." in k}
    logger.info("sweep: %d members; winner %s (validation MASE %.4g)", len(board), settings, top["val_mase"])
    return {"members": len(board), "winner": {k: str(v) for k, v in settings.items()},
            "val_mase": float(top["val_mase"])}
