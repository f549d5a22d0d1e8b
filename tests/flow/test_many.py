"""Many series in one process (the local runner): per-group models, and sweeps ranked on the
validation range only, under the session's Prefect test harness."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from flows.rnn_flow import rnn_sweep
from tests.helpers import tiny_config
from tests.helpers.flows import actions, all_artifacts, run



def shops(path: Path, n_items: int = 12, n_days: int = 70, tail: float = 0.0) -> Path:
    """Daily sales of n_items items in 3 stores; `tail` is added from day 60 on: after every
    member's validation targets (with 70 days they end by day 56)."""
    rows = []
    for i in range(n_items):
        days = pd.date_range("2022-01-01", periods=n_days, freq="D")
        v = 50 + 5 * np.sin(2 * np.pi * np.arange(n_days) / 7 + i) + np.random.default_rng(i).normal(0, 0.5, n_days)
        v[60:] += tail
        rows.append(pd.DataFrame({"store": f"store-{i % 3}", "item": f"item-{i:02d}", "day": days.strftime("%Y-%m-%d"),
                                  "sales": v.round(3)}))
    pd.concat(rows).to_csv(path, index=False)
    return path


def data(path: Path, **extra) -> dict:
    return {"data_path": str(path), "time_column": "day", "value_column": "sales", "id_column": "item", **extra}


def test_one_model_per_group_forecasts_every_series(tmp_path):
    cfg = tiny_config(tmp_path, data=data(shops(tmp_path / "s.csv"), group_column="store", series_per_bucket=5),
                      window={"seq_length": 14})
    summary, _ = run(cfg, until="forecast")
    assert set(actions(summary)) == {"generate", "window", "train", "evaluate", "figures", "forecast"}
    assert len(list((tmp_path / "artifacts" / "cache" / "train").glob("*/manifest.json"))) == 3  # one per store
    run_dir = Path(summary["run_dir"])
    by_series = pd.read_parquet(run_dir / "metrics_by_series.parquet")
    assert sorted(by_series["series_id"]) == [f"item-{i:02d}" for i in range(12)]
    assert by_series.groupby("group")["series_id"].count().to_dict() == {"store-0": 4, "store-1": 4, "store-2": 4}
    forecast = pd.read_parquet(run_dir / "forecast.parquet")
    assert forecast["series_id"].nunique() == 12
    again, _ = run(cfg, until="forecast")
    assert set(actions(again).values()) == {"reused"}


def sweep(cfg, **kw):
    state = rnn_sweep(config=cfg, return_state=True, **kw)
    assert state.is_completed(), state
    return state.result()


GRID = [{"model.hidden_size": 4}, {"model.hidden_size": 8, "model.cell": "gru"}, {"window.seq_length": 7}]


def test_a_sweep_ranks_members_on_the_validation_range_only(tmp_path):
    a = tiny_config(tmp_path / "a", data=data(shops(tmp_path / "a.csv"), series_per_bucket=6),
                    window={"seq_length": 14}, train={"epochs": 4})
    summary = sweep(a, grid=GRID)
    board = pd.read_parquet(Path(summary["run_dir"]) / "leaderboard.parquet")
    assert len(board) == 3 and board["val_mase"].is_monotonic_increasing and board["rank"].tolist() == [1, 2, 3]
    winner = json.loads((Path(summary["run_dir"]) / "winner.json").read_text())
    best = GRID[int(board["member"].iloc[0])]
    assert winner["model"]["hidden_size"] == best.get("model.hidden_size", a.model.hidden_size)
    assert winner["window"]["seq_length"] == best.get("window.seq_length", 14)
    assert summary["leaderboard"]["members"] == 3 and "gate" in summary
    assert str(board["model.hidden_size"].dtype) == "Int64" and str(board["window.seq_length"].dtype) == "Int64"
    assert board["model.cell"].dtype == "string"  # each setting keeps its type; <NA> where a member lacks it
    assert json.loads(json.dumps(summary["leaderboard"]["winner"])) == {
        k: (None if pd.isna(v) else v) for k, v in board.iloc[0][["model.hidden_size", "model.cell",
                                                                   "window.seq_length"]].items()}
    cell = winner["model"]["cell"]  # the summary describes the winner, not the base config
    assert cell == best.get("model.cell", cell) and summary["settings"]["cell"] == cell
    assert summary["verdict"].startswith(cell.upper()) and "model.cell" not in summary["settings"]["auto"]

    # one new member (a hopeless one) before the cached three: the train line speaks of the winner's
    # entry (reused), not of the first member's (the new one, "new parameters: ... 4->6")
    grown = sweep(a, grid=[{"model.hidden_size": 6, "train.lr": 1e-6}, *GRID])
    row = {r["stage"]: r for r in grown["stages"]}["train"]
    assert {k: v for k, v in grown["leaderboard"]["winner"].items() if k != "train.lr"} == (
        summary["leaderboard"]["winner"]) and grown["leaderboard"]["winner"]["train.lr"] is None
    assert (row["action"], row["reason"], row["featured"]) == ("recomputed", "inputs unchanged", "reused")
    assert row["recomputed"] == 2 and row["entries"] == 8  # the new member's train and validate entries

    # the test range of every series changes: the ranking, its numbers and the winner do not
    b = tiny_config(tmp_path / "b", data=data(shops(tmp_path / "b.csv", tail=25.0), series_per_bucket=6),
                    window={"seq_length": 14}, train={"epochs": 4})
    other = sweep(b, grid=GRID)
    board_b = pd.read_parquet(Path(other["run_dir"]) / "leaderboard.parquet")
    cols = ["member", "val_mase", "val_mae", "naive_mase", "n_val", "epochs_run"]
    pd.testing.assert_frame_equal(board[cols], board_b[cols])
    assert other["metrics"]["model"]["mae"] != summary["metrics"]["model"]["mae"]  # the test range did change


SPACE = [{"window.seq_length": 7, "model.hidden_size": 4}, {"window.seq_length": 14, "model.cell": "gru"}]


def searched(tmp_path: Path, name: str, tail: float = 0.0):
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    cfg = tiny_config(tmp_path / name, data=data(shops(tmp_path / f"{name}.csv", tail=tail), series_per_bucket=12),
                      search={"mode": str(tmp_path / "space.json"), "seeds": 2, "top_k": 3}, train={"epochs": 4})
    summary, state = run(cfg, until="forecast", promote=True)
    return summary, Path(summary["run_dir"]), state


def test_a_search_combines_its_best_members_and_never_looks_at_the_test_range(tmp_path):
    from tasks.formats.ensemble import EnsembleFile, load_model_file

    summary, run_dir, state = searched(tmp_path, "a")
    lb = summary["leaderboard"]
    assert (lb["kind"], lb["members"], lb["combined"], lb["combine"]) == ("search", 7, 3, "median")  # 4 nets, 3 stats
    board = pd.read_parquet(run_dir / "leaderboard.parquet")
    assert sorted(board["forecaster"]) == ["AutoETS", "AutoTheta", *["network"] * 4, "seasonal naive"]
    assert summary["verdict"].startswith("hybrid of 3 network(s) (median) and AutoETS, AutoTheta, seasonal naive")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    ens = metrics["ensemble"]
    assert ens["members"] == 6 and ens["mean_spread"] > 0 and len(ens["weights"]) == 4
    assert sum(ens["weights"]) == pytest.approx(1.0) and min(ens["weights"]) > 0
    pred = pd.read_parquet(run_dir / "predictions.parquet")
    assert (pred["member_min"] <= pred["model"] + 1e-9).all() and (pred["model"] <= pred["member_max"] + 1e-9).all()
    assert pd.read_parquet(run_dir / "forecast.parquet")["series_id"].nunique() == 12
    ensemble, record = load_model_file(run_dir / "model.pt")  # what promotion judged and installed
    assert isinstance(ensemble, EnsembleFile) and len(ensemble.statistical) == 3
    assert len(ensemble.networks or ensemble.members) == 3 and 3 <= len(ensemble.members) <= 4  # cross-fitted choice
    assert len(ensemble.calibration_networks or ensemble.networks or ensemble.members) == 3
    assert record.seq_length == max(r.seq_length for _, r in ensemble.members)
    assert list(ensemble.weights) == ens["weights"] and list(ensemble.calibration_weights) == ens["calibration_weights"]
    assert len(ens["calibration_weights"]) == 4 and ens["calibration_weights"] != ens["weights"]  # cross-fitted
    nets = board[board["forecaster"] == "network"]
    assert nets["forecasts"].sum() == 3 and nets["calibrates"].sum() == 3
    assert nets.loc[nets["calibrates"], "rank"].tolist() == sorted(nets["rank"])[:3]  # the validation range's best
    assert board.loc[board["forecaster"] != "network", ["forecasts", "calibrates"]].all().all()
    assert summary["promotion"]["challenger"] > 0  # the ensemble was scored on the holdout as one model

    # the UI: one card per artifact, none two alike (4 networks trained: still one progress artifact)
    arts = all_artifacts(state.state_details.flow_run_id)
    cards = [(a.key, a.description) for a in arts]
    assert len(cards) == len(set(cards)) and len({a.key for a in arts}) == len(arts), sorted(cards)
    assert {a.key for a in arts} == {"rnn-stages", "rnn-metrics", "rnn-report", "rnn-training-progress",
                                     "rnn-forecast", "rnn-leaderboard", "rnn-promotion"}
    # the gate, before the test range: ties within the seed noise its 2 seeds measured, times the networks' weight
    gate = metrics["gate"]
    assert gate["origins"] == "calibration" and gate["noise"]["configurations"] == 2
    assert gate["tolerance"] == pytest.approx(gate["noise"]["relative"] * ens["calibration_weights"][0])
    assert summary["gate_passed"] == gate["passed"] and summary["gate"].startswith("gate: ")

    # the test range of every series changes: no selection, combination or calibration does
    other, other_dir, _ = searched(tmp_path, "b", tail=25.0)
    board, board_b = (pd.read_parquet(d / "leaderboard.parquet") for d in (run_dir, other_dir))
    cols = ["member", "forecaster", "val_mase", "val_mae", "naive_mase", "n_val", "cal_mase", "n_cal", "epochs_run",
            "forecasts", "calibrates"]
    pd.testing.assert_frame_equal(board[cols], board_b[cols])  # the statistical members' scores too
    metrics_b = json.loads((other_dir / "metrics.json").read_text())
    assert metrics_b["ensemble"]["weights"] == ens["weights"]  # weighed before the test range only
    assert metrics_b["ensemble"]["calibration_weights"] == ens["calibration_weights"]
    ensemble_b = load_model_file(other_dir / "model.pt")[0]
    assert (ensemble_b.networks, ensemble_b.calibration_networks) == (ensemble.networks, ensemble.calibration_networks)
    assert metrics_b["intervals"]["halfwidths"] == metrics["intervals"]["halfwidths"]
    assert metrics_b["intervals"]["n_calibration"] == metrics["intervals"]["n_calibration"] > 0
    members_b = load_model_file(other_dir / "model.pt")[0].members
    for (net, rec), (net_b, rec_b) in zip(ensemble.members, members_b):
        assert rec.seq_length == rec_b.seq_length and rec.network == rec_b.network
        for k, v in net.state_dict().items():
            assert torch.equal(v, net_b.state_dict()[k]), k  # the same weights: trained on the same windows
    assert metrics_b["metrics"]["model"]["mae"] != metrics["metrics"]["model"]["mae"]  # the test range did change
    assert metrics_b["pretest"] == metrics["pretest"]  # and the gate did not move
    assert {k: v for k, v in metrics_b["gate"].items() if k != "test"} == {k: v for k, v in gate.items() if k != "test"}


def test_changing_only_the_evaluation_reuses_a_searchs_validation_and_ensemble(tmp_path):
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    cfg = tiny_config(tmp_path / "a", data=data(shops(tmp_path / "a.csv"), series_per_bucket=12),
                      search={"mode": str(tmp_path / "space.json"), "seeds": 1, "top_k": 2}, train={"epochs": 2})
    first, _ = run(cfg, until="evaluate")
    # levels, references and the gate are read on the test range only: no member is scored again
    changed = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"levels": (0.9,), "gate_baseline": "naive"})})
    second, _ = run(changed, until="evaluate")
    assert actions(second)["train"] == "reused" and actions(second)["evaluate"] == "recomputed"
    assert json.loads((Path(second["run_dir"]) / "metrics.json").read_text())["ensemble"]["weights"] == \
        json.loads((Path(first["run_dir"]) / "metrics.json").read_text())["ensemble"]["weights"]
