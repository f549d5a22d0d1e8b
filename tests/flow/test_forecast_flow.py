"""End-to-end: a horizon-3 run up to the forecast stage, with backtest refits and a full refit."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.helpers import tiny_config
from tests.helpers.flows import actions, read_artifacts, run



def test_horizon_run_backtests_forecasts_the_future_and_publishes_it(tmp_path):
    cfg = tiny_config(tmp_path, window={"horizon": 3}, eval={"refit_every": 20}, forecast={"refit_full": True})
    summary, state = run(cfg, until="forecast")
    assert list(actions(summary)) == ["generate", "window", "train", "evaluate", "figures", "forecast"]
    run_dir = Path(summary["run_dir"])
    assert json.loads((run_dir / "stages.json").read_text())["summary"]["run_dir"] == str(run_dir)  # as returned
    for name in ("forecast.parquet", "figures/forecast.png", "figures/error_by_lead.png", "metrics.json"):
        assert (run_dir / name).is_file(), name

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["horizon"] == 3 and metrics["refits"] == -(-metrics["n_test"] // 20)
    assert all(len(m["mase"]) == 3 for m in metrics["per_lead"].values())
    assert set(metrics["intervals"]["test"]) == {"80", "95"} and "passed" in metrics["gate"]
    assert summary["gate"].startswith("gate: ") and "horizon 3" in summary["gate"]

    fc = pd.read_parquet(run_dir / "forecast.parquet")
    assert fc["step"].tolist() == [240, 241, 242] and fc["lead"].tolist() == [1, 2, 3]
    assert (fc["lower_95"] <= fc["forecast"]).all() and (fc["forecast"] <= fc["upper_95"]).all()

    arts = read_artifacts(state.state_details.flow_run_id)
    table = json.loads(arts["rnn-forecast"].data)
    assert [r["step"] for r in table] == [240, 241, 242] and {"lower_80", "upper_95"} <= set(table[0])
    rows = {r["forecaster"]: r for r in json.loads(arts["rnn-metrics"].data)}
    assert 0 <= rows["model"]["coverage_80"] <= 1 and rows["model"]["gate"] in ("passed", "tie (passed)", "failed")
    assert "conformal intervals" in arts["rnn-report"].data

    again, _ = run(cfg, until="forecast")
    assert set(actions(again).values()) == {"reused"}
