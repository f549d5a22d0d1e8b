"""The end-of-run summary block: what ran (auto settings resolved), the verdict, the promotion, where."""

from __future__ import annotations

from flows.options import FLAG_OF_FIELD
from flows.report import leaderboard_line, promotion_line, summary_lines
from tasks.config import PipelineConfig, auto_settings, resolve, with_overrides
from tasks.runtime.publish import report_markdown

STAGES = [{"stage": s, "action": "reused", "reason": "inputs unchanged"} for s in ("generate", "window")]


def test_auto_settings_are_every_auto_field_with_what_it_became():
    asked = with_overrides(PipelineConfig(), {"data": {"data_path": "m.csv"}, "train": {"lr": 0.05}})
    auto = auto_settings(asked, resolve(asked, device="cpu"))
    assert auto == {"window.normalize": "window", "window.calibration": 20, "model.cell": "gru",
                    "model.skip": "seasonal", "train.epochs": 300, "train.patience": 20, "train.min_delta": 0.0,
                    "train.device": "cpu", "search.mode": "on"}  # lr was given


def test_the_block_names_settings_as_options_and_says_the_promotion_decision():
    promotion = {"action": "promoted", "reason": "no champion yet", "champion_now": "b78560fe3958259b",
                 "registry": "artifacts/models/registry.json"}
    summary = {"stages": STAGES, "settings": {"source": "file", "auto": {"model.cell": "gru", "train.lr": 0.01}},
               "verdict": "GRU on cpu ...", "gate": "baseline gate passed: ...", "promote": True,
               "promotion": promotion, "run_dir": "artifacts/runs/rnn-1"}
    assert summary_lines(summary, FLAG_OF_FIELD) == [
        "stages:",
        "  generate  reused     inputs unchanged",
        "  window    reused     inputs unchanged",
        "settings: auto for a data file: --cell gru, --lr 0.01",
        "result: GRU on cpu ...",
        "baseline gate passed: ...",
        "promotion: promoted (no champion yet); the champion is now model b78560fe3958259b "
        "(artifacts/models/registry.json)",
        "outputs: artifacts/runs/rnn-1",
    ]
    quiet = {**summary, "promote": False}
    assert not [line for line in summary_lines(quiet) if line.startswith("promotion")]
    assert "settings: auto for a data file: model.cell gru, train.lr 0.01" in summary_lines(quiet)


def test_promotion_lines_say_who_is_champion_now():
    kept = {"action": "kept", "reason": "challenger mase 0.5 is not below champion 0.4", "champion_now": "c" * 16,
            "registry": "r.json"}
    assert promotion_line(kept) == (f"promotion: kept (challenger mase 0.5 is not below champion 0.4); the champion "
                                    f"is still model {'c' * 16} (r.json)")
    refused = {"action": "kept", "reason": "the challenger fails the baseline gate", "champion_now": None}
    assert promotion_line(refused) == ("promotion: not promoted (the challenger fails the baseline gate); there is no "
                                       "champion yet")


def test_the_report_has_readable_headings_and_the_settings_that_ran(tmp_path):
    png = tmp_path / "f.png"
    png.write_bytes(b"\x89PNG")
    metrics = {"model": {"mse": 1.0, "mase": 0.5}, "naive": {"mse": 2.0, "mase": 1.0}}
    config = resolve(PipelineConfig(), device="cpu").model_dump(mode="json")
    md = report_markdown("GRU forecast report — r", ["a line"], metrics, {"Error by lead time": png},
                         config=config, auto={"model.cell"})
    assert "## Error by lead time" in md and "Error_by_lead" not in md
    assert "| model.cell | rnn (auto) |" in md and "| train.hidden_size" not in md
    assert "| model.hidden_size | 64 |" in md


def test_a_search_line_names_the_best_member_whatever_it_is():
    lb = {"kind": "search", "members": 11, "val_mase": 0.35812, "combined": 3, "combine": "median",
          "statistical": ["AutoETS", "AutoTheta", "seasonal naive"], "best": "AutoTheta", "winner": {}}
    assert leaderboard_line(lb) == (
        "search: 8 network(s) and 3 statistical member(s) ranked on the validation range; the best 3 network(s) on "
        "the validation and calibration "
        "origins combined by the median, weighted with AutoETS, AutoTheta, seasonal naive by 1 / MASE^2 before the test range (best member on the validation "
        "range: AutoTheta, MASE 0.3581; rnn-leaderboard lists them all)")
    assert "best member on the validation range: a network, MASE" in leaderboard_line({**lb, "best": "network"})
    assert leaderboard_line({**lb, "members": 8, "statistical": []}).startswith("search: 8 network(s) ranked on")


def test_a_sweep_line_names_the_winner_as_the_grid_writes_settings():
    lb = {"kind": "sweep", "members": 4, "val_mase": 0.81234,
          "winner": {"model.cell": "gru", "model.hidden_size": 32}}
    assert leaderboard_line(lb) == (
        "sweep: 4 members; winner model.cell=gru, model.hidden_size=32 (validation MASE 0.8123)")


def test_leaderboard_settings_keep_their_type_and_survive_parquet(tmp_path):
    import pandas as pd

    from tasks.runtime.publish import table_rows
    from tasks.validate import typed_column

    board = pd.DataFrame({"model.hidden_size": [64, 32, None], "train.lr": [0.01, 0.003, None],
                          "model.cell": ["gru", "lstm", None], "mixed": [24, "auto", None]})
    for c in board:
        board[c] = typed_column(board[c].astype(object))
    assert [str(t) for t in board.dtypes] == ["Int64", "Float64", "string", "string"]
    board.to_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "b.parquet"), board)
    assert table_rows(board)[1:] == [{"model.hidden_size": 32, "train.lr": 0.003, "model.cell": "lstm", "mixed": "auto"},
                                     {"model.hidden_size": None, "train.lr": None, "model.cell": None, "mixed": None}]


def test_a_stage_line_counts_the_entries_that_resumed_from_a_checkpoint():
    """After an interrupted search, the best model's own reason may be "first run" while other
    members ran on from their checkpoints: the line counts those."""
    from flows.report import stage_line

    row = {"stage": "train", "action": "recomputed", "reason": "no cached output (first run)", "featured": "built",
           "entries": 19, "recomputed": 8, "resumed": 3}
    assert stage_line(row) == ("  train     recomputed no cached output (first run) (the best model's; 8 of 19 entries "
                               "recomputed, 3 of them resumed from the checkpoint a previous run left)")
    assert "resumed" not in stage_line({**row, "resumed": 0})
