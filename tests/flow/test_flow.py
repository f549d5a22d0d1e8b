"""End-to-end: rnn_pipeline with a tiny config under one session-scoped Prefect test harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.runtime import caching
from tests.helpers import tiny_config
from tests.helpers.flows import actions, read_artifacts, reasons, run



def test_tiny_run_writes_everything_and_publishes_artifacts(tmp_path, tiny_cfg):
    cfg = tiny_cfg
    summary, state = run(cfg)
    assert set(actions(summary).values()) == {"recomputed"}
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path / "artifacts" / "runs"
    for name in ("config.json", "model.pt", "metrics.json", "stages.json", "predictions.parquet",
                 "figures/prediction.png", "figures/loss.png", "figures/residuals.png"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "config.json").read_text())["resolved"]["train"]["epochs"] == 3
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["metrics"]) >= {"model", "naive"}
    assert set(metrics["metrics"]["model"]) == {"mse", "rmse", "mae", "smape", "mase"}
    assert metrics["train"]["device"] == "cpu" and metrics["train"]["epochs_run"] == 3
    assert list((tmp_path / "data" / "cache" / "ingest").glob("*/series.parquet"))  # the validated buckets

    arts = read_artifacts(state.state_details.flow_run_id)
    assert {"rnn-metrics", "rnn-report", "rnn-stages", "rnn-training-progress"} <= set(arts)
    table = json.loads(arts["rnn-metrics"].data)
    assert {row["forecaster"] for row in table} >= {"model", "naive"}
    assert table[0]["mse"] == pytest.approx(metrics["metrics"]["model"]["mse"], rel=1e-5)
    assert "data:image/png;base64," in arts["rnn-report"].data
    assert arts["rnn-training-progress"].data == 100.0
    # nothing was written outside the configured roots
    assert {p.name for p in tmp_path.iterdir()} == {"artifacts", "data"}


def test_same_seed_gives_identical_metrics(tmp_path):
    a, _ = run(tiny_config(tmp_path / "a"))
    b, _ = run(tiny_config(tmp_path / "b"))
    assert a["metrics"] == b["metrics"]


def test_rerun_reuses_and_changes_recompute_only_what_they_affect(tmp_path, tiny_cfg):
    cfg = tiny_cfg
    run(cfg)
    again, state = run(cfg)
    assert set(actions(again).values()) == {"reused"}
    assert {r["prefect_state"] for r in again["stages"]} == {"Cached"}

    epochs, _ = run(tiny_config(tmp_path, train={"epochs": 2}))
    assert actions(epochs) == {"generate": "reused", "window": "reused", "train": "recomputed",
                               "evaluate": "recomputed", "figures": "recomputed"}
    assert reasons(epochs)["train"] == "new parameters: train.epochs 3->2"

    seq, _ = run(tiny_config(tmp_path, window={"seq_length": 10}))
    assert actions(seq) == {"generate": "reused", "window": "recomputed", "train": "recomputed",
                            "evaluate": "recomputed", "figures": "recomputed"}

    dpi, _ = run(tiny_config(tmp_path, window={"seq_length": 10}, figures={"dpi": 30}))
    assert actions(dpi) == {"generate": "reused", "window": "reused", "train": "reused",
                            "evaluate": "reused", "figures": "recomputed"}
    assert reasons(dpi)["figures"] == "new parameters: figures.dpi 40->30"


def test_damaged_cache_recomputes_that_stage_and_what_depends_on_it(tiny_cfg):
    cfg = tiny_cfg
    first, _ = run(cfg)
    window_entry = Path(json.loads((Path(first["run_dir"]) / "stages.json").read_text())["stages"]["window"]["entry"])
    values = window_entry / "values.npy"
    values.write_bytes(values.read_bytes()[:-8])  # truncate
    second, _ = run(cfg)
    assert actions(second)["generate"] == "reused"
    assert actions(second)["window"] == "recomputed"
    assert reasons(second)["window"].startswith("output missing or corrupt: values.npy")
    # rebuilt identically, so what depends on it is unchanged and reused
    assert actions(second)["train"] == "reused"

    model = Path(json.loads((Path(second["run_dir"]) / "stages.json").read_text())["stages"]["train"]["entry"])
    (model / "model.pt").unlink()
    third, _ = run(cfg)
    assert actions(third)["train"] == "recomputed" and reasons(third)["train"] == (
        "output missing or corrupt: model.pt missing; resumes from the checkpoint a previous run left"
    )  # its last epoch's: the model is restored, not trained again
    import shutil

    shutil.rmtree(model.parent.parent / "figures")  # a whole stage cache deleted
    fourth, _ = run(cfg)
    assert actions(fourth)["figures"] == "recomputed"


def test_editing_a_helper_of_train_recomputes_the_stages_that_run_it(monkeypatch, tiny_cfg):
    cfg = tiny_cfg
    run(cfg)
    original = caching._read_source

    def edited(name):
        text = original(name)
        return text + "\n# edited helper\n" if name == "tasks.components.network" else text

    monkeypatch.setattr(caching, "_read_source", edited)
    after, _ = run(cfg)
    # evaluate runs the network too; figures reads only files, and the retrained model and its
    # history are byte-identical (a comment changed nothing), so its inputs are unchanged
    assert actions(after) == {"generate": "reused", "window": "reused", "train": "recomputed",
                              "evaluate": "recomputed", "figures": "reused"}
    assert reasons(after)["train"] == "code changed: tasks.components.network"
    assert reasons(after)["evaluate"] == "code changed: tasks.components.network"


def test_rerun_controls(tiny_cfg):
    cfg = tiny_cfg
    until, _ = run(cfg, until="window")
    assert list(actions(until)) == ["generate", "window"] and "metrics" not in until
    refreshed, _ = run(cfg, refresh="train")
    assert actions(refreshed) == {"generate": "reused", "window": "reused", "train": "recomputed",
                                  "evaluate": "recomputed", "figures": "recomputed"}
    assert reasons(refreshed)["train"] == "forced (--refresh train)"
    everything, _ = run(cfg, no_cache=True)
    assert set(actions(everything).values()) == {"recomputed"}
    assert {r["prefect_state"] for r in everything["stages"]} == {"Completed"}


def monthly_csv(path: Path, n: int = 60) -> Path:
    import numpy as np
    import pandas as pd

    months = pd.date_range("2010-01-01", periods=n, freq="MS").strftime("%Y-%m-%d")
    sales = 100 + 10 * np.sin(2 * np.pi * np.arange(n) / 12) + np.arange(n)
    pd.DataFrame({"month": months, "sales": sales}).to_csv(path, index=False)
    return path


def file_config(tmp_path: Path):
    data = {"data_path": str(monthly_csv(tmp_path / "m.csv")), "time_column": "month", "value_column": "sales"}
    return tiny_config(tmp_path, data=data, window={"seq_length": 12})


def test_a_file_run_records_what_was_asked_and_what_ran(tmp_path):
    summary, _ = run(file_config(tmp_path), until="train")
    config = json.loads((Path(summary["run_dir"]) / "config.json").read_text())
    assert config["asked"]["train"]["lr"] == "auto" and config["asked"]["model"]["cell"] == "auto"
    assert '"auto"' not in json.dumps(config["resolved"])
    assert config["resolved"]["train"]["lr"] == 0.01 and config["resolved"]["model"]["cell"] == "gru"
    assert config["resolved"]["window"]["normalize"] == "window" and config["resolved"]["train"]["device"] == "cpu"


def test_changing_what_auto_means_recomputes_the_stages_that_use_it(tmp_path, monkeypatch):
    from tasks import config

    cfg = file_config(tmp_path)
    run(cfg, until="evaluate")
    monkeypatch.setitem(config.AUTO_DEFAULTS["train"], "lr", (1e-3, 5e-3))  # a new default lr for files
    after, _ = run(cfg, until="evaluate")
    assert actions(after) == {"generate": "reused", "window": "reused", "train": "recomputed",
                              "evaluate": "recomputed"}
    assert reasons(after)["train"] == "new parameters: train.lr 0.01->0.005"
    assert reasons(after)["evaluate"].startswith("new parameters: train.lr 0.01->0.005")


def test_the_same_file_by_another_path_reuses_every_stage(tmp_path, monkeypatch):
    from flows.serve import absolute_paths

    monkeypatch.chdir(tmp_path)
    cfg = file_config(tmp_path)
    relative = cfg.model_copy(update={"data": cfg.data.model_copy(update={"data_path": "m.csv"})})
    first, _ = run(relative, until="forecast")
    assert set(actions(first).values()) == {"recomputed"}
    served = absolute_paths(relative)  # what `serve` hands its scheduled runs
    assert served.data.data_path == str(tmp_path / "m.csv") != relative.data.data_path
    again, _ = run(served, until="forecast")
    assert actions(again) == {s: "reused" for s in ("generate", "window", "train", "evaluate", "figures", "forecast")}
    assert [r["entry"] for r in again["stages"]] == [r["entry"] for r in first["stages"]]


def test_a_file_run_says_what_ran_in_its_summary_files_and_report(tmp_path):
    from tasks.runtime.store import FILE_MODE

    summary, state = run(file_config(tmp_path), until="forecast")
    assert summary["settings"]["source"] == "file" and summary["settings"]["cell"] == "gru"
    assert summary["settings"]["auto"] == {"window.normalize": "window", "window.calibration": 20, "model.cell": "gru",
                                           "model.skip": "seasonal", "train.lr": 0.01,
                                           "train.min_delta": 0.0}  # tiny_config sets the rest
    assert summary["verdict"].startswith("GRU on cpu")
    run_dir = Path(summary["run_dir"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["config"]["model"]["cell"] == "gru" and metrics["auto"] == summary["settings"]["auto"]
    assert '"auto"' not in json.dumps(metrics["config"])
    report = read_artifacts(state.state_details.flow_run_id)["rnn-report"].data
    assert report.startswith("# GRU forecast report")
    for heading in ("Forecasts on the test range", "Training and validation loss", "Forecast past the end of the series",
                    "Settings that ran"):
        assert f"\n## {heading}\n" in report, heading
    assert "Error by lead time" not in report and not (run_dir / "figures" / "error_by_lead.png").exists()  # horizon 1
    assert "Error_by_lead" not in report and "| model.cell | gru (auto) |" in report and "| data.n_points" not in report
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert {p.relative_to(run_dir).as_posix() for p in files} >= {
        "config.json", "stages.json", "metrics.json", "promotion.json", "model.pt", "figures/forecast.png"}
    assert {p.stat().st_mode & 0o777 for p in files} == {FILE_MODE}
    assert len({p.stat().st_mode & 0o777 for p in [run_dir, *run_dir.rglob("*")] if p.is_dir()}) == 1
