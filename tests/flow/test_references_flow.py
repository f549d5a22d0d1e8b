"""End-to-end: the statistical references (AutoETS, AutoTheta) in every file a run writes and
every place it reports, over several buckets, and the gate facing the best baseline or the one asked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.config import with_overrides
from tests.helpers import tiny_config
from tests.helpers.flows import actions, read_artifacts, run



def write_monthly(path: Path, n_series: int = 3, n: int = 96) -> None:
    """n_series monthly series (trend, a yearly cycle, noise) in one long CSV."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    dates = pd.date_range("2010-01-01", periods=n, freq="MS").strftime("%Y-%m-%d")
    frames = [pd.DataFrame({"item": f"i{k}", "month": dates,
                            "sales": 200 + 50 * k + 0.8 * t + 20 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 3, n)})
              for k in range(n_series)]
    pd.concat(frames).to_csv(path, index=False)


def test_references_reach_every_output_and_the_gate_faces_the_best_baseline(tmp_path):
    write_monthly(tmp_path / "m.csv")
    cfg = tiny_config(tmp_path, data={"data_path": str(tmp_path / "m.csv"), "time_column": "month",
                                      "value_column": "sales", "id_column": "item", "series_per_bucket": 1},
                      window={"seq_length": 24, "horizon": 2})
    summary, state = run(cfg)
    run_dir = Path(summary["run_dir"])
    result = json.loads((run_dir / "metrics.json").read_text())
    assert result["n_buckets"] == 3 and result["references"]["names"] == ["ets", "theta"]
    assert list(result["metrics"]) == ["ets", "model", "naive", "seasonal_naive", "theta"]  # JSON sorts keys
    assert all(len(result["per_lead"][k]["mase"]) == 2 for k in ("ets", "theta"))
    assert result["references"]["season_length"] == 12 and "refit=False" in result["references"]["refit"]
    gate = result["gate"]  # decided before the test range, on the buckets' calibration scores combined
    before = result["pretest"]["metrics"]
    values = {k: before[k]["mase"] for k in ("naive", "seasonal_naive", "ets", "theta")}
    assert result["pretest"]["n"] == gate["n_origins"] > 0 and gate["origins"] == "calibration"
    assert gate["asked"] == "best" and gate["baseline"] == min(values, key=values.get)
    assert gate["passed"] == (before["model"]["mase"] < min(values.values()))
    assert "the best of 4 baselines there" in summary["gate"]
    assert ", seasonal naive (season 12) " in summary["verdict"] and ", ets " in summary["verdict"]

    by_series = pd.read_parquet(run_dir / "metrics_by_series.parquet")
    assert len(by_series) == 3 and by_series[["ets_mase", "theta_mase"]].notna().all().all()
    buckets = sorted((tmp_path / "artifacts" / "cache" / "backtest").glob("*/predictions.parquet"))
    assert len(buckets) == 3  # one backtest entry per bucket, each with the references' columns
    assert all({"ets", "theta", "model", "naive", "seasonal_naive"} <= set(pd.read_parquet(b)) for b in buckets)
    assert (run_dir / "figures" / "error_by_lead.png").is_file()

    arts = read_artifacts(state.state_details.flow_run_id)
    rows = {r["forecaster"]: r for r in json.loads(arts["rnn-metrics"].data)}
    assert {"ets", "theta"} <= set(rows) and rows[gate["baseline"]]["gate"] == "baseline"
    assert rows["ets"]["model_ratio"] == pytest.approx(result["metrics"]["model"]["mase"]
                                                       / result["metrics"]["ets"]["mase"], rel=1e-5)
    report = arts["rnn-report"].data
    assert "the best of 4 baselines there" in report and "references AutoETS, AutoTheta (season 12)" in report
    assert "| ets |" in report and "| theta |" in report

    again, _ = run(with_overrides(cfg, {"eval": {"gate_baseline": "theta"}}))
    assert actions(again) == {"generate": "reused", "window": "reused", "train": "reused",
                              "evaluate": "recomputed", "figures": "recomputed"}
    assert "the baseline asked for (--gate-baseline theta)" in again["gate"] and " theta " in again["gate"]
    plain, _ = run(with_overrides(cfg, {"eval": {"references": ()}}))
    plain_metrics = json.loads((Path(plain["run_dir"]) / "metrics.json").read_text())
    assert set(plain_metrics["metrics"]) == {"model", "naive", "seasonal_naive"}
    assert plain_metrics["metrics"]["model"] == result["metrics"]["model"]  # the model is not touched
