"""Every series a user brings, end to end (issue 11): a zone kept to the forecast, a constant series
scored without NaN, a mid-month calendar continued on the 15th, and a run that fails after ingestion
ending in one line with nothing trusted left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.helpers import tiny_config
from tests.helpers.flows import read_artifacts, run

ROOT = Path(__file__).resolve().parents[2]


def strict_json(path: Path):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(path.read_text(), parse_constant=refuse)


def file_config(tmp_path, path: Path, time: str, value: str, **sections):
    return tiny_config(tmp_path, data={"data_path": str(path), "time_column": time, "value_column": value},
                       **sections)


def test_hourly_plus_0530_data_is_forecast_in_its_own_zone(tmp_path):
    end = pd.Timestamp("2024-06-13T00:00+05:30")
    times = pd.date_range(end=end, periods=200, freq="h")
    path = tmp_path / "load.csv"
    pd.DataFrame({"time": [t.isoformat(timespec="minutes") for t in times],
                  "load": 100 + 10 * np.sin(np.arange(200) * 2 * np.pi / 24)}).to_csv(path, index=False)
    summary, state = run(file_config(tmp_path, path, "time", "load", window={"horizon": 4, "seq_length": 24}),
                         until="forecast")
    fc = pd.read_parquet(Path(summary["run_dir"]) / "forecast.parquet")
    assert [t.isoformat(timespec="minutes") for t in fc["timestamp"]] == [
        "2024-06-13T01:00+05:30", "2024-06-13T02:00+05:30", "2024-06-13T03:00+05:30", "2024-06-13T04:00+05:30"]
    assert summary["forecast"]["first"] == "2024-06-13 01:00:00+05:30"
    table = json.loads(read_artifacts(state.state_details.flow_run_id)["rnn-forecast"].data)
    assert [r["timestamp"] for r in table][:2] == ["2024-06-13T01:00:00+05:30", "2024-06-13T02:00:00+05:30"]
    meta = strict_json(Path(summary["run_dir"]) / "metrics.json")
    assert meta["seasons"] == [24] and meta["frequency"] == "h"  # 200 hours: less than two weeks


def test_a_constant_series_is_reported_without_nan_and_its_perfect_model_promoted(tmp_path):
    path = tmp_path / "flat.csv"
    dates = pd.date_range("2016-01-01", periods=72, freq="MS").strftime("%Y-%m-%d")
    pd.DataFrame({"month": dates, "sales": 50.0}).to_csv(path, index=False)
    summary, state = run(file_config(tmp_path, path, "month", "sales", window={"seq_length": 24}), promote=True)
    run_dir = Path(summary["run_dir"])
    metrics = strict_json(run_dir / "metrics.json")
    assert metrics["metrics"]["model"]["mase"] is None and "constant training range" in metrics["undefined"]["mase"]
    assert "test MSE 0.000e+00; test MASE undefined vs naive undefined (undefined)" in summary["verdict"]
    assert "nan" not in summary["verdict"] and "infx" not in summary["verdict"]
    assert summary["gate"].startswith("gate: passed, a tie on the ") and "model MAE 0 vs seasonal-naive 0 (equal)" in (
        summary["gate"])
    assert summary["promotion"]["action"] == "promoted"
    for name in ("stages.json", "config.json", "promotion.json"):  # every JSON file of the run is strict
        strict_json(run_dir / name)
    strict_json(tmp_path / "artifacts" / "models" / "registry.json")
    report = read_artifacts(state.state_details.flow_run_id)["rnn-report"].data
    assert "zero width (every validation forecast was exact), not an interval" in report


def test_a_mid_month_series_is_continued_on_the_15th(tmp_path):
    path = tmp_path / "mid.csv"
    dates = pd.date_range("2016-02-15", periods=72, freq=pd.DateOffset(months=1, day=15)).strftime("%Y-%m-%d")
    pd.DataFrame({"month": dates, "sales": 100 + 10 * np.sin(np.arange(72) * 2 * np.pi / 12)}).to_csv(path, index=False)
    summary, _ = run(file_config(tmp_path, path, "month", "sales", window={"horizon": 3, "seq_length": 24}),
                     until="forecast")
    fc = pd.read_parquet(Path(summary["run_dir"]) / "forecast.parquet")
    assert fc["timestamp"].dt.strftime("%Y-%m-%d").tolist() == ["2022-02-15", "2022-03-15", "2022-04-15"]
    assert strict_json(Path(summary["run_dir"]) / "metrics.json")["season_length"] == 12


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): "dir" if p.is_dir() else str(p.stat().st_size) for p in sorted(root.rglob("*"))}


def test_a_run_that_diverges_after_ingestion_ends_in_one_line_and_publishes_no_model(tmp_path, prefect_server):
    dates = pd.date_range("2016-01-01", periods=72, freq="MS").strftime("%Y-%m-%d")
    pd.DataFrame({"month": dates, "sales": 1e30 * (2 + np.sin(np.arange(72)))}).to_csv(tmp_path / "big.csv",
                                                                                        index=False)
    args = ["--data-path", "big.csv", "--time-column", "month", "--value-column", "sales", "--normalize", "none",
            "--epochs", "3", "--device", "cpu", "--output-dir", "out", "--data-dir", "data"]
    proc = subprocess.run([sys.executable, str(ROOT / "flows" / "rnn_flow.py"), *args], cwd=tmp_path,
                          env=prefect_server.env(PYTHONUNBUFFERED="1"), capture_output=True, text=True, timeout=300)
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert errors == [proc.stderr.strip().splitlines()[-1]] and len(errors) == 1
    assert "training loss became inf at epoch 1" in errors[0] and "--normalize standard or window" in errors[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not list((tmp_path / "out" / "cache" / "train").glob("*/manifest.json"))  # no model anyone would reuse
    assert not list((tmp_path / "out" / "cache").rglob(".tmp-*"))
