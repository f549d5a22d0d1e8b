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
from flows.wording import gate_line, gate_reason, ratio_phrase
from tasks.components.backtest import backtest, NonFiniteForecast
from tasks.components.gate import baseline_gate, decide_gate
from tasks.components.network import Forecaster
from tasks.config import DataConfig, PromoteSettings, WindowConfig
from tasks.formats.scores import read_metrics, write_scores
from tasks.generate import load_source
from tasks.promote import judge, promote, promotion_markdown
from tasks.runtime import registry
from tasks.validate import seed_noise
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


def pretest(metrics: dict, n: int = 20, origins: str = "calibration") -> dict:
    return {"origins": origins, "n": n, "metrics": metrics, "per_lead": {}}


def test_the_gate_asked_for_seasonal_naive_uses_it_when_there_is_a_season():
    g = decide_gate(pretest({"model": m(0.9), "naive": m(0.5), "seasonal_naive": m(1.0)}), {},
                    baseline="seasonal_naive")
    assert g["baseline"] == "seasonal_naive" and g["passed"] is True
    assert gate_line(g, 12, 30).startswith("gate: passed on the 20 calibration origins before the test range: model "
                                           "MASE 0.900 vs seasonal-naive 1.000 (1.1x lower), the baseline asked for "
                                           "(--gate-baseline seasonal_naive); the forecast is the model's")
    g = decide_gate(pretest({"model": m(0.9), "naive": m(0.5)}), {}, baseline="seasonal_naive")
    assert g["baseline"] == "naive" and g["passed"] is False and "FAILED" in gate_line(g, 1, 30)
    assert "no season is known: the gate faced naive" in gate_line(g, 1, 30)
    assert baseline_gate({"model": m(float("nan")), "naive": m(0.5)})["passed"] is False


def test_the_gate_faces_the_best_of_every_baseline_by_default_and_says_how_the_model_does_against_each():
    metrics = {"model": m(0.9), "naive": m(0.5), "seasonal_naive": m(1.0), "ets": m(0.45), "theta": m(1.8)}
    g = baseline_gate(metrics)
    assert (g["asked"], g["baseline"], g["baseline_value"], g["passed"]) == ("best", "ets", 0.45, False)
    assert g["versus"]["theta"] == {"value": 1.8, "ratio": 0.5} and g["versus"]["ets"]["ratio"] == 2.0
    assert list(g["versus"]) == ["seasonal_naive", "naive", "ets", "theta"]
    test = {"model": m(0.6), "ets": m(0.5)}
    line = gate_line(decide_gate(pretest(metrics, 30), test), 12, 40)
    assert line == ("gate: FAILED on the 30 calibration origins before the test range: model MASE 0.900 vs ets 0.450 "
                    "(2.0x higher), the best of 4 baselines there; seed noise not measured (one seed: ties are exact); "
                    "the forecast is still the model's (exit status 3; never promoted); on the test range (40 origins, "
                    "horizon 12): MASE 0.600 vs 0.500 (1.2x higher)"), line
    for name in ("naive", "seasonal_naive", "theta"):  # any one, when asked: the line says so
        g = decide_gate(pretest(metrics), {}, baseline=name)
        assert g["baseline"] == name and g["passed"] is (name != "naive")
        assert f"the baseline asked for (--gate-baseline {name})" in gate_line(g, 12, 30)
    g = baseline_gate({"model": m(0.9), "naive": m(1.0)}, baseline="ets")  # not computed: never a pass
    assert g["passed"] is False and gate_line(g, 1, 5).startswith("gate: not passed: ets was not computed")
    with pytest.raises(ValueError, match="unknown gate baseline"):
        baseline_gate(metrics, baseline="worst")


def test_a_difference_within_the_measured_seed_noise_is_a_tie_and_passes():
    """The issue's case: a hybrid 0.1% behind AutoETS, its own heaviest member, is no failure when
    two seeds of its networks differ by more than that (times the hybrid's weight on them)."""
    metrics = {"model": m(0.511), "naive": m(1.2), "ets": m(0.510)}
    noise = {"relative": 0.02, "configurations": 4, "origins": "calibration"}
    g = decide_gate(pretest(metrics), metrics, noise=noise, weight=0.5)  # tolerance 1%
    assert g["tolerance"] == pytest.approx(0.01) and g["tie"] and g["passed"] and g["decided"]
    line = gate_line(g, 1, 30)
    assert line.startswith("gate: passed, a tie within the seed noise (±1.0%) on the 20 calibration origins before "
                           "the test range: model MASE 0.511 vs ets 0.510 (0.2% higher)"), line
    assert "; the forecast is the model's; on the test range (30 origins, horizon 1): MASE 0.511 vs 0.510" in line
    worse = {**metrics, "model": m(0.530)}  # 3.9% behind: beyond the noise
    g = decide_gate(pretest(worse), worse, noise=noise, weight=0.5)
    assert not g["tie"] and not g["passed"]
    assert "gate: FAILED on the 20 calibration origins" in gate_line(g, 1, 30)
    assert "(3.9% higher), the best of 2 baselines there, more than the seed noise (±1.0%)" in gate_line(g, 1, 30)
    g = decide_gate(pretest(metrics), metrics)  # one seed: nothing measured, ties are exact
    assert g["tolerance"] == 0.0 and not g["passed"]
    better = {**metrics, "model": m(0.505)}  # ahead within the noise: a tie too, and a pass either way
    assert decide_gate(pretest(better), better, noise=noise, weight=0.5)["tie"]


def test_without_origins_before_the_test_range_the_gate_is_not_decided_and_does_not_pass():
    metrics = {"model": m(0.1), "naive": m(1.0)}
    g = decide_gate(pretest({}, n=0, origins="validation"), metrics)
    assert (g["passed"], g["decided"], g["n_origins"]) == (False, False, 0)
    assert gate_line(g, 1, 10) == ("gate: not passed: no validation or calibration origins before the test range to "
                                   "decide it on (--val-fraction 0); the forecast is still the model's (exit status "
                                   "3; never promoted)")


def test_the_seed_noise_is_the_median_spread_between_seeds_of_one_configuration():
    board = pd.DataFrame({
        "member": range(7), "forecaster": ["network"] * 6 + ["AutoETS"],
        "model.cell": ["gru", "gru", "lstm", "lstm", "gru", "gru", pd.NA],
        "window.seq_length": [12, 12, 12, 12, 24, 24, pd.NA], "train.seed": [42, 43, 42, 43, 42, 43, pd.NA],
        "val_mase": [1.0, 1.1, 2.0, 2.0, 0.5, 0.6, 0.4], "cal_mase": [1.0, 1.02, 2.0, 2.2, 0.5, 0.5, 0.45],
        "n_cal": [20] * 6 + [20]})
    noise = seed_noise(board)
    spreads = sorted([0.02 / 1.01, 0.2 / 2.1, 0.0])
    assert noise == {"relative": pytest.approx(spreads[1]), "configurations": 3, "origins": "calibration"}
    no_cal = board.assign(n_cal=0, cal_mase=None)
    assert seed_noise(no_cal)["origins"] == "validation"
    assert seed_noise(no_cal)["relative"] == pytest.approx(np.median([0.1 / 1.05, 0.0, 0.1 / 0.55]))
    one_seed = board[board["train.seed"] != 43]
    assert seed_noise(one_seed) == {"relative": None, "configurations": 0, "origins": None}
    assert seed_noise(None)["relative"] is None


def test_the_gate_is_decided_before_the_test_range_and_the_test_range_never_moves_it():
    """The same model and series, with the test range's values changed: the test metrics move,
    the gate (its scores, verdict and baseline) does not."""
    values = np.sin(np.arange(300) / 4.0) + 0.1 * np.cos(np.arange(300) / 1.3)
    split = split_for(values, seq_length=12, val_fraction=0.15)
    torch.manual_seed(0)
    model = Forecaster(hidden_size=4).eval()
    _, before = backtest(model, values, split, levels=(0.8,), references=("ets",))
    changed = values.copy()
    first_target = int(split.target_index(split.origins("test")[:1], 1)[0, 0])
    changed[first_target:] *= 3.0
    _, after = backtest(model, changed, split, levels=(0.8,), references=("ets",))
    assert before["metrics"] != after["metrics"]
    assert before["pretest"] == after["pretest"] and before["pretest"]["n"] == split.count("val")
    keep = ("passed", "tie", "baseline", "model", "baseline_value", "origins", "n_origins", "versus")
    assert {k: before["gate"][k] for k in keep} == {k: after["gate"][k] for k in keep}
    assert set(before["pretest"]["metrics"]) == {"model", "naive", "ets"}
    assert before["gate"]["test"]["model"] == before["metrics"]["model"]["mase"]


def test_exit_status_follows_the_gate():
    from flows.commands import exit_status

    assert exit_status({"gate_passed": True}) == 0 and exit_status({}) == 0  # --until train: no gate
    assert exit_status({"gate_passed": False}) == 3


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
    assert "- baseline gate (MASE vs naive on the 0 validation origins before the test range): failed" in (
        promotion_markdown(d))
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
    assert gate["origins"] == "validation" and parsed["pretest"]["metrics"]["model"]["mase"] is None
    line = gate_line(gate, 1, parsed["n_test"])
    assert line.startswith(f"gate: passed, a tie on the {gate['n_origins']} validation origins before the test range: "
                           "model MAE 0 vs seasonal-naive 0 (equal)"), line
    assert "judged on MAE: MASE is undefined" in line and "nan" not in line.lower()
    assert parsed["intervals"]["zero_width"] == ["80", "95"]
    assert "80%: zero width (every validation forecast was exact), not an interval" in interval_line(parsed)


def test_the_gate_never_compares_nan_and_says_which_metric_it_judged():
    nan = float("nan")
    g = baseline_gate({"model": m(nan), "seasonal_naive": m(1.0), "naive": m(1.0)})
    assert g["passed"] is False and g["model"] is None
    assert g["why"] == [{"kind": "not_finite", "forecaster": "model", "metric": "mase", "value": "nan"}]
    assert "model MASE is nan" in gate_reason(g)
    assert gate_line(g, 1, 10).startswith("gate: not passed: model MASE is nan")
    undefined = {"mase": "MASE is undefined: the in-sample one-step naive error of 'x' is 0"}
    g = baseline_gate({"model": {**m(None), "mae": 2.0}, "naive": {**m(None), "mae": 1.0}}, undefined)
    assert (g["metric"], g["passed"], g["tie"]) == ("mae", False, False)
    assert "FAILED on the 0 validation origins before the test range: model MAE 2 vs naive 1 (2.0x higher)" in (
        gate_line(g, 1, 10))
    g = baseline_gate({"model": m(0.5), "naive": m(0.5)})
    assert g["tie"] and g["passed"] and "model MASE 0.500 vs naive 0.500 (equal)" in gate_line(g, 1, 10)


def test_the_gate_judges_against_the_best_seasonal_baseline():
    g = baseline_gate({"model": m(0.9), "naive": m(2.0), "seasonal_naive": m(1.5), "seasonal_naive_336": m(0.6)})
    assert g["baseline"] == "seasonal_naive_336" and g["passed"] is False
    assert "model MASE 0.900 vs seasonal-naive-336 0.600 (1.5x higher)" in gate_line(g, 1, 10)


@pytest.mark.parametrize(("model", "base", "words"), [
    (1.0, 73.7, "73.7x lower"), (1.3, 1.0, "1.3x higher"), (0.8, 1.0, "1.2x lower"), (2.0, 2.0, "equal"),
    (0.0, 4.0, "exact"), (0.0, 0.0, "equal"), (None, 1.0, "undefined"), (float("inf"), 1.0, "undefined"),
    (0.96, 1.0, "4.0% lower"), (1.05, 1.0, "5.0% higher"), (1.1, 1.0, "1.1x higher"), (1.0005, 1.0, "0.05% higher"), (3.5, 1e-15, "over 1000x higher")])
def test_ratio_words_are_right_both_ways(model, base, words):
    assert ratio_phrase(model, base) == words


def test_a_nan_forecast_stops_the_backtest_before_anything_is_scored():
    values = np.sin(np.arange(200) / 5.0)
    model = Forecaster(hidden_size=4).eval()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(NonFiniteForecast, match=r"non-finite value\(s\) of .* series 's'.*nothing was published"):
        backtest(model, values, split_for(values), levels=(0.8,))
