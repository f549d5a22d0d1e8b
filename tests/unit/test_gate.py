"""The baseline gate: the model must beat seasonal-naive MASE (naive without a season) on the
backtest, and promotion refuses a challenger that does not."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from flows.report import interval_line
from tasks.components.backtest import (
    NonFiniteForecast,
    backtest,
    baseline_gate,
    gate_line,
    ratio_phrase,
)
from tasks.components.network import Forecaster
from tasks.config import DataConfig, PromoteSettings, WindowConfig
from tasks.formats.scores import read_metrics, write_scores
from tasks.generate import load_source
from tasks.promote import judge, promote, promotion_markdown
from tasks.runtime import registry
from tasks.windowing import split_series
from tests.helpers import split_for
from tests.helpers.promotion import (
    VALUES,
    make_split,
    train_entry,
    trained,
    window_entry,
)


def m(mase: float) -> dict:
    return {"mse": 1.0, "rmse": 1.0, "mae": 1.0, "smape": 1.0, "mase": mase}


def test_the_gate_asked_for_seasonal_naive_uses_it_when_there_is_a_season():
    g = baseline_gate({"model": m(0.9), "naive": m(0.5), "seasonal_naive": m(1.0)}, baseline="seasonal_naive")
    assert g["baseline"] == "seasonal_naive" and g["passed"] is True
    assert gate_line(g, 12, 30).startswith("baseline gate passed: model MASE 0.900 < seasonal-naive 1.000")
    g = baseline_gate({"model": m(0.9), "naive": m(0.5)}, baseline="seasonal_naive")
    assert g["baseline"] == "naive" and g["passed"] is False and "FAILED" in gate_line(g, 1, 30)
    assert "no season is known: the gate faced naive" in gate_line(g, 1, 30)
    assert baseline_gate({"model": m(float("nan")), "naive": m(0.5)})["passed"] is False


def test_the_gate_faces_the_best_of_every_baseline_by_default_and_says_how_the_model_does_against_each():
    metrics = {"model": m(0.9), "naive": m(0.5), "seasonal_naive": m(1.0), "ets": m(0.45), "theta": m(1.8)}
    g = baseline_gate(metrics)
    assert (g["asked"], g["baseline"], g["baseline_value"], g["passed"]) == ("best", "ets", 0.45, False)
    assert g["versus"]["theta"] == {"value": 1.8, "ratio": 0.5} and g["versus"]["ets"]["ratio"] == 2.0
    assert list(g["versus"]) == ["seasonal_naive", "naive", "ets", "theta"]
    line = gate_line(g, 12, 30)
    assert line.startswith("baseline gate FAILED: model MASE 0.900 >= ets 0.450 on the backtest (30 origins, "
                           "horizon 12), the best of 4 baselines; model vs seasonal-naive 1.1x lower, naive 1.8x "
                           "higher, ets 2.0x higher, theta 2.0x lower"), line
    for name in ("naive", "seasonal_naive", "theta"):  # any one, when asked: the line says so
        g = baseline_gate(metrics, baseline=name)
        assert g["baseline"] == name and g["passed"] is (name != "naive")
        assert f"the baseline asked for (--gate-baseline {name})" in gate_line(g, 12, 30)
        assert "ets 2.0x higher" in gate_line(g, 12, 30)  # every baseline, whichever it faced
    g = baseline_gate({"model": m(0.9), "naive": m(1.0)}, baseline="ets")  # not computed: never a pass
    assert g["passed"] is False and gate_line(g, 1, 5).startswith("baseline gate FAILED: ets was not computed")
    with pytest.raises(ValueError, match="unknown gate baseline"):
        baseline_gate(metrics, baseline="worst")


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


# ---------------------------------------------------------------- degenerate scales (issue 11)



def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as strict parsers (JavaScript, Go, jq) do."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def constant_backtest(tmp_path):
    """The issue's constant series (72 monthly rows, all 50.0) through load_source, the window stage
    and a backtest of a model that starts as the seasonal naive forecast (as the file defaults do)."""
    dates = pd.date_range("2016-01-01", periods=72, freq="MS").strftime("%Y-%m-%d")
    pd.DataFrame({"month": dates, "sales": 50.0}).to_csv(tmp_path / "c.csv", index=False)
    df, meta = load_source(DataConfig(data_path=str(tmp_path / "c.csv"), time_column="month", value_column="sales"))
    values, split = split_series(df, meta, WindowConfig(seq_length=24, normalize="window"))
    model = Forecaster(cell="gru", hidden_size=8, skip_lag=12).eval()
    return backtest(model, values, split, levels=(0.8, 0.95))


def test_a_constant_series_gets_null_mase_with_a_reason_strict_json_and_a_tied_gate(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # numpy says nothing
        df, result = constant_backtest(tmp_path)
    write_scores(tmp_path, df, result)
    parsed = strict_json((tmp_path / "metrics.json").read_text())
    assert parsed == read_metrics(tmp_path)
    m = parsed["metrics"]
    assert m["model"]["mse"] == 0.0 and m["naive"]["mse"] == 0.0
    assert m["model"]["mase"] is None and m["seasonal_naive"]["mase"] is None
    assert parsed["per_lead"]["model"]["mase"] == [None]
    assert "in-sample one-step naive error of 'series' is 0" in parsed["undefined"]["mase"]
    assert parsed["naive_mse_ratio"] is None and parsed["undefined"]["naive_mse_ratio"] == "both test MSEs are 0"
    gate = parsed["gate"]
    assert gate["metric"] == "mae" and gate["tie"] is True and gate["passed"] is True
    line = gate_line(gate, 1, parsed["n_test"])
    assert line.startswith("baseline gate passed (a tie): model MAE 0 = seasonal-naive 0 on the backtest")
    assert "judged on MAE: MASE is undefined" in line and "nan" not in line.lower()
    assert parsed["intervals"]["zero_width"] == ["80", "95"]
    assert "80%: zero width (every validation forecast was exact), not an interval" in interval_line(parsed)


def test_the_gate_never_compares_nan_and_says_which_metric_it_judged():
    nan = float("nan")
    g = baseline_gate({"model": m(nan), "seasonal_naive": m(1.0), "naive": m(1.0)})
    assert g["passed"] is False and g["model"] is None and "model MASE is nan" in g["reason"]
    assert gate_line(g, 1, 10).startswith("baseline gate FAILED: model MASE is nan")
    undefined = {"mase": "MASE is undefined: the in-sample one-step naive error of 'x' is 0"}
    g = baseline_gate({"model": {**m(None), "mae": 2.0}, "naive": {**m(None), "mae": 1.0}}, undefined)
    assert (g["metric"], g["passed"], g["tie"]) == ("mae", False, False)
    assert "FAILED: model MAE 2 >= naive 1" in gate_line(g, 1, 10)
    g = baseline_gate({"model": m(0.5), "naive": m(0.5)})
    assert g["tie"] and g["passed"] and "= naive 0.500" in gate_line(g, 1, 10)


def test_the_gate_judges_against_the_best_seasonal_baseline():
    g = baseline_gate({"model": m(0.9), "naive": m(2.0), "seasonal_naive": m(1.5), "seasonal_naive_336": m(0.6)})
    assert g["baseline"] == "seasonal_naive_336" and g["passed"] is False
    assert "model MASE 0.900 >= seasonal-naive-336 0.600" in gate_line(g, 1, 10)


@pytest.mark.parametrize(("model", "base", "words"), [
    (1.0, 73.7, "73.7x lower"), (1.3, 1.0, "1.3x higher"), (0.8, 1.0, "1.2x lower"), (2.0, 2.0, "equal"),
    (0.0, 4.0, "exact"), (0.0, 0.0, "equal"), (None, 1.0, "undefined"), (float("inf"), 1.0, "undefined"),
    (0.96, 1.0, "1.04x lower"), (1.05, 1.0, "1.05x higher"), (1.1, 1.0, "1.1x higher")])
def test_ratio_words_are_right_both_ways(model, base, words):
    assert ratio_phrase(model, base) == words


def test_a_nan_forecast_stops_the_backtest_before_anything_is_scored():
    values = np.sin(np.arange(200) / 5.0)
    model = Forecaster(hidden_size=4).eval()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteForecast, match=r"non-finite value\(s\) of .* series 's'.*nothing was published"):
        backtest(model, values, split_for(values), levels=(0.8,))
