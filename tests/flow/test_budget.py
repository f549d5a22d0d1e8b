"""A search within a time limit, and long seasons (issue 26), end to end on small files: the
summary states the limit, what it skipped and the season policy; sub-daily data's statistical
members and references are MSTL's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from flows.report import summary_lines
from tests.helpers import tiny_config
from tests.helpers.flows import run



def ten_minutes(tmp_path: Path, n: int = 600) -> Path:
    """A 10-minute reading over a few days: a daily cycle of 144 steps (longer than AutoETS's 24)."""
    t = np.arange(n)
    rng = np.random.default_rng(0)
    values = 50 + 5 * np.sin(2 * np.pi * t / 144) + 0.02 * t + rng.normal(0, 0.3, n)
    path = tmp_path / "sensor.csv"
    times = pd.date_range("2024-03-04", periods=n, freq="10min").strftime("%Y-%m-%d %H:%M")
    pd.DataFrame({"time": times, "reading": values.round(3)}).to_csv(path, index=False)
    return path


def search_config(tmp_path: Path, path: Path, **search):
    return tiny_config(tmp_path, data={"data_path": str(path), "time_column": "time", "value_column": "reading"},
                       train={"epochs": 2, "batch_size": 32, "device": "cpu", "patience": 0},
                       search={"mode": "on", "seeds": 1, **search})


def test_a_long_sub_daily_season_is_removed_by_mstl_and_the_networks_read_it_through_their_skip(tmp_path,
                                                                                              monkeypatch):
    from tasks.runtime import progress

    begun = {}
    real = progress.begin

    def begin(stage, total, *args, **kwargs):
        begun.setdefault(stage, kwargs.get("work"))
        real(stage, total, *args, **kwargs)

    monkeypatch.setattr(progress, "begin", begin)
    summary, _ = run(search_config(tmp_path, ten_minutes(tmp_path)), until="evaluate")
    rates = sorted(rate for rate, _ in begun["train"].values())  # the progress display weighs each member by its cost
    assert len(rates) == 4 and rates[-1] > 2 * rates[0]  # a window read over 64 steps costs more than one of 20
    planned = [rate * epochs for rate, epochs in begun["train"].values()]  # in the order the wave submits them
    assert planned == sorted(planned, reverse=True)  # longest first (listed: the 64-step gru-64s first and last)
    budget = summary["budget"]
    assert budget["source"] == "auto" and budget["limit"] > budget["estimate"] and not budget["skipped"]
    assert "144: networks on windows of 20, 144, 288 points" in budget["policy"]
    assert "reading at most the last 64" in budget["policy"] and "MSTL removes the season(s) 144" in budget["policy"]
    metrics = json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())
    assert metrics["references"]["mstl"] == [144] and metrics["references"]["names"] == ["ets"]  # theta: not asked
    board = pd.read_parquet(Path(summary["run_dir"]) / "leaderboard.parquet")
    assert {"MSTL+AutoETS", "seasonal naive"} <= set(board["forecaster"])
    for entry in board.loc[board["model_entry"] == "", "scores_entry"]:  # a statistical member's test forecasts,
        made = pd.read_parquet(Path(entry) / "forecasts.parquet")  # made once beside the networks
        assert set(made["part"]) == {"cal", "test"}
    predictions = pd.read_parquet(Path(summary["run_dir"]) / "predictions.parquet")
    assert predictions["ets"].notna().all()  # the reference: MSTL+AutoETS's own test forecasts
    assert set(board["model.recurrent_steps"].dropna()) == {64}  # the windows over 64 points, read by their tail
    varied = [c for c in board.columns if c.split(".")[0] in ("model", "train")]  # what the members vary
    assert {"model.cell", "model.skip", "train.seed"} <= set(varied)
    for _, row in board[board["model_entry"] != ""].iterrows():  # submitted out of order, each kept with its own
        params = json.loads((Path(row["model_entry"]) / "manifest.json").read_text())["key_inputs"]["params"]
        for column in varied:
            section, name = column.split(".")
            if pd.notna(row[column]):
                assert params[section][name] == row[column], (column, row["member"])
    lines = summary_lines(summary)
    assert any(ln.startswith("time limit ") and "(auto: 3 x the estimate + 60 s" in ln for ln in lines)
    assert any(ln.startswith("seasons: 144: ") for ln in lines)


def test_a_time_limit_trains_the_members_that_fit_and_names_those_it_skipped(tmp_path):
    summary, _ = run(search_config(tmp_path, ten_minutes(tmp_path), time_limit=1.0), until="evaluate")
    budget = summary["budget"]
    assert budget["source"] == "asked" and budget["limit"] == 1.0
    assert budget["kept"] == 1 and len(budget["skipped"]) == budget["members"] - 1  # the first always trains
    assert summary["leaderboard"]["members"] == 1 + 2  # that network, MSTL+AutoETS and seasonal naive
    line = next(ln for ln in summary_lines(summary) if ln.startswith("time limit 1 s (--time-limit)"))
    assert "1 of 4 members trained" in line and "skipped, not fitting: " in line
    assert all(label in line for label in budget["skipped"])


def test_statistical_fits_in_the_worker_process_forecast_what_they_forecast_in_the_run(tmp_path, monkeypatch):
    """A search's statistical members and references fitted in the statistical worker
    (tasks/runtime/offload.py, where a local run fits them) give the same leaderboard and
    predictions, to the bit, as fitted in the run's own process."""
    from tasks.runtime import offload
    from tasks.runtime.stages import Run

    path = ten_minutes(tmp_path)
    installs = []
    real = offload.install
    monkeypatch.setattr(offload, "install", lambda: installs.append(1) or real())
    offloading = Run.offload_statistics
    out = {}
    for name in ("worker", "here"):
        if name == "here":
            monkeypatch.setattr(Run, "offload_statistics", lambda self: None)
        before = len(installs)
        (tmp_path / name).mkdir()
        summary, _ = run(search_config(tmp_path / name, path), until="evaluate")
        assert len(installs) - before == (1 if name == "worker" else 0)
        run_dir = Path(summary["run_dir"])
        board = pd.read_parquet(run_dir / "leaderboard.parquet")
        out[name] = (pd.read_parquet(run_dir / "predictions.parquet"),
                     board.drop(columns=[c for c in board.columns if c.endswith("_entry")]))
    monkeypatch.setattr(Run, "offload_statistics", offloading)
    from tasks.components import references

    assert references.offload is None  # the run left: fits are this process's again
    run(search_config(tmp_path / "worker", path), until="evaluate")
    assert len(installs) == 1  # a run that reuses every entry starts no worker
    pd.testing.assert_frame_equal(out["worker"][0], out["here"][0], check_exact=True)
    pd.testing.assert_frame_equal(out["worker"][1], out["here"][1], check_exact=True)
