"""The baseline gate: the model must beat seasonal-naive MASE (naive without a season) on the
backtest, and promotion refuses a challenger that does not."""

from __future__ import annotations

from tasks.components.backtest import baseline_gate, gate_line
from tasks.config import PromoteSettings
from tasks.promote import judge, promote, promotion_markdown
from tasks.runtime import registry
from tests.helpers.promotion import (
    VALUES,
    make_split,
    train_entry,
    trained,
    window_entry,
)


def m(mase: float) -> dict:
    return {"mse": 1.0, "rmse": 1.0, "mae": 1.0, "smape": 1.0, "mase": mase}


def test_the_gate_uses_seasonal_naive_when_there_is_a_season():
    g = baseline_gate({"model": m(0.9), "naive": m(0.5), "seasonal_naive": m(1.0)})
    assert g["baseline"] == "seasonal_naive" and g["passed"] is True
    assert gate_line(g, 12, 30).startswith("baseline gate passed: model MASE 0.900 < seasonal-naive 1.000")
    g = baseline_gate({"model": m(0.9), "naive": m(0.5)})
    assert g["baseline"] == "naive" and g["passed"] is False and "FAILED" in gate_line(g, 1, 30)
    assert baseline_gate({"model": m(float("nan")), "naive": m(0.5)})["passed"] is False


def test_judge_refuses_a_challenger_that_fails_the_gate_even_without_a_champion():
    failing = {"model_sha256": "a", "metrics": m(0.1), "gate": baseline_gate({"model": m(1.2), "naive": m(1.0)})}
    ok, reason = judge(failing, None, PromoteSettings())
    assert not ok and reason.startswith("the challenger fails the baseline gate")
    champ = {"model_sha256": "b", "metrics": m(5.0), "problem": None}
    assert judge(failing, champ, PromoteSettings())[0] is False
    passing = {**failing, "gate": baseline_gate({"model": m(0.8), "naive": m(1.0)})}
    assert judge(passing, None, PromoteSettings()) == (True, "no champion yet")
    assert judge({k: v for k, v in failing.items() if k != "gate"}, None, PromoteSettings())[0] is True  # no backtest


def test_promote_records_a_gate_refusal_and_keeps_no_champion(tmp_path):
    split = make_split(VALUES)
    win = window_entry(tmp_path, VALUES, split)
    good = train_entry(tmp_path, trained(split, epochs=5), split, "good")
    gate = baseline_gate({"model": m(1.3), "naive": m(1.0)})
    d = promote(tmp_path, win, good, "run-1", PromoteSettings(), gate=gate)
    assert d["action"] == "kept" and "baseline gate" in d["reason"]
    assert d["challenger"]["gate"] == gate
    assert registry.load(tmp_path)["champion"] is None
    assert "- baseline gate (backtest MASE vs naive): failed" in promotion_markdown(d)
    d = promote(tmp_path, win, good, "run-2", PromoteSettings(), gate={**gate, "model": 0.7, "passed": True})
    assert d["action"] == "promoted"
