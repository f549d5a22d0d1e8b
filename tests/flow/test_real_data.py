"""A user's own monthly series, end to end through the command line: the model beats the baselines."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tasks.formats.ensemble import load_model_file
from tests.helpers.cli import finish_flow, run_dir_of, start_flow



def monthly_sales(n_years: int = 15, seed: int = 0) -> pd.DataFrame:
    """Realistic monthly values in the thousands: trend, a yearly and a half-yearly cycle, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(12 * n_years)
    seasons = 400 * np.sin(2 * np.pi * t / 12) + 150 * np.cos(2 * np.pi * t / 6)
    values = 3000 + 12 * t + seasons + rng.normal(0, 60, len(t))
    dates = pd.date_range("2005-01-01", periods=len(t), freq="MS").strftime("%Y-%m-%d")
    return pd.DataFrame({"month": dates, "sales": values.round(1).astype(str)})


def test_monthly_csv_with_gaps_filled_beats_naive_and_seasonal_naive(tmp_path, prefect_server):
    df = monthly_sales()
    df.loc[[30, 31, 95], "sales"] = ""  # three missing months, repaired with --fill interpolate
    df.to_csv(tmp_path / "sales.csv", index=False)
    args = ["--data-path", "sales.csv", "--time-column", "month", "--value-column", "sales", "--fill", "interpolate",
            "--normalize", "window", "--seq-length", "24", "--hidden-size", "16", "--epochs", "30", "--lr", "0.01",
            "--threads", "2", "--device", "cpu", "--fig-dpi", "40", "--output-dir", "out", "--data-dir", "data",
            "--verbose"]  # the stages' log lines on the console too (the repair's among them)
    log = finish_flow(start_flow(tmp_path, prefect_server, *args))
    assert "filled 3 missing values (interpolate)" in log
    assert "inferred frequency MS" in log

    run_dir = run_dir_of(log)
    result = json.loads((run_dir / "metrics.json").read_text())
    mase = {name: m["mase"] for name, m in result["metrics"].items()}
    assert result["season_length"] == 12 and result["frequency"] == "MS"
    assert mase["model"] < mase["naive"] and mase["model"] < mase["seasonal_naive"], mase
    ens, record = load_model_file(run_dir / "model.pt")  # the search's hybrid (the default for a file)
    assert record.trained["threads"] == 2 and result["train"]["threads"] == 2 and record.trained["members"] == 6
    assert len(ens.networks or ens.members) == 3 and [m.name for m in ens.statistical] == ["ets", "theta", "snaive"]
    assert record.normalize == "window"  # what a server must apply to new windows
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    assert predictions["actual"].between(3000, 6000).all()  # back in the file's units
    assert (tmp_path / "out" / "cache" / "train").is_dir() and (tmp_path / "data" / "cache" / "generate").is_dir()
