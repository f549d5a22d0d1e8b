"""Statistical references (AutoETS, AutoTheta) in the backtest: the model's own origins and leads,
only the history up to each origin, one model per series, a recorded naive stand-in where a model
fails, and every place a forecaster shows up (metrics, per lead, predictions, per series, buckets,
figures, the report)."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest
import torch
from statsforecast.models import AutoARIMA, AutoETS, AutoTheta

from flows.report import metric_extras, references_line
from flows.wording import gate_line
from tasks.components.aggregate import aggregate, series_metrics
from tasks.components.backtest import backtest
from tasks.components.baselines import series_scales
from tasks.components.gate import baseline_gate
from tasks.components.network import Forecaster
from tasks.components.references import reference_forecasts
from tasks.components.split import build_split
from tasks.config import FiguresConfig
from tasks.figures import plot_error_by_lead
from tests.helpers import split_for


def monthly(n: int = 120, seed: int = 0, level: float = 100.0) -> np.ndarray:
    """A positive monthly-looking series: level, trend, a 12-step season and noise."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return level + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1.0, n)


def fresh(model, y: np.ndarray, h: int) -> np.ndarray:
    return model.forecast(y=y, h=h)["mean"]


def test_with_refit_every_origin_each_forecast_is_a_fresh_fit_on_the_history_up_to_it():
    values = monthly()
    split = split_for(values, seq_length=24, horizon=3)
    idx = split.origins("test")
    out, info = reference_forecasts(values, split, idx, 3, 12, ("ets", "theta"), refit_every=1)
    assert out["ets"].shape == out["theta"].shape == (len(idx), 3) and "refit=1" in info["refit"]
    for i in (0, len(idx) // 2, len(idx) - 1):
        T = int(split.last_observed(idx[i : i + 1])[0])  # origin o reads o..o+L-1; targets T+1..T+3
        np.testing.assert_allclose(out["ets"][i], fresh(AutoETS(season_length=12), values[: T + 1], 3), rtol=1e-9)
        np.testing.assert_allclose(out["theta"][i], fresh(AutoTheta(season_length=12), values[: T + 1], 3),
                                   rtol=1e-9)


def test_without_refit_the_models_are_fitted_once_and_never_read_past_an_origin():
    values = monthly()
    split = split_for(values, seq_length=24, horizon=2)
    idx = split.origins("test")
    out, info = reference_forecasts(values, split, idx, 2, 12, ("ets", "theta"))
    assert "refit=False" in info["refit"] and info["season_length"] == 12 and info["fallback"] == {}
    T0 = int(split.last_observed(idx[:1])[0])
    np.testing.assert_allclose(out["ets"][0], fresh(AutoETS(season_length=12), values[: T0 + 1], 2), rtol=1e-9)
    last = split.last_observed(idx)
    p = int(last[len(idx) // 2]) + 1  # the first target of the middle origin
    changed = values.copy()
    changed[p:] += 50.0
    again, _ = reference_forecasts(changed, split, idx, 2, 12, ("ets", "theta"))
    before = last < p
    for name in ("ets", "theta"):
        assert np.array_equal(again[name][before], out[name][before])  # bit for bit: the past only
        assert not np.allclose(again[name][~before], out[name][~before])  # later origins see the change


def test_autoarima_is_there_when_asked_for_on_the_same_windows():
    values = monthly(72, seed=8)
    split = split_for(values, seq_length=12, horizon=2)
    idx = split.origins("test")
    out, info = reference_forecasts(values, split, idx, 2, None, ("arima",))
    T0 = int(split.last_observed(idx[:1])[0])
    np.testing.assert_allclose(out["arima"][0], fresh(AutoARIMA(), values[: T0 + 1], 2), rtol=1e-9)
    assert info["names"] == ["arima"] and info["season_length"] is None and np.isfinite(out["arima"]).all()


def test_each_series_is_forecast_on_its_own_whatever_the_others_hold():
    a, b, c = monthly(120, seed=1), monthly(150, seed=2, level=500.0), monthly(120, seed=3, level=50.0)
    values = np.concatenate([a, b, c])
    split = split_for(values, ids=("a", "b", "c"), lengths=(120, 150, 120), seq_length=24)
    idx = split.origins("test")
    out, _ = reference_forecasts(values, split, idx, 1, 12, ("ets",))
    alone_split = split_for(a, seq_length=24)
    alone, _ = reference_forecasts(a, alone_split, alone_split.origins("test"), 1, 12, ("ets",))
    in_a = split.series_index(idx) == 0
    np.testing.assert_allclose(out["ets"][in_a], alone["ets"], rtol=1e-12)
    other = values.copy()
    other[120:] *= 3.0  # series b and c change, a does not
    again, _ = reference_forecasts(other, split, idx, 1, 12, ("ets",))
    assert np.array_equal(again["ets"][in_a], out["ets"][in_a])
    assert not np.allclose(again["ets"][~in_a], out["ets"][~in_a])


def test_a_series_too_short_for_autoets_gets_the_naive_forecast_recorded_and_logged(caplog):
    values = np.array([3.0, 5.0, 4.0, 6.0, 5.0, 7.0, 6.0, 8.0])
    split = build_split([8], ["tiny"], seq_length=1, horizon=1, train_fraction=0.5, val_fraction=0.0)
    idx = split.origins("test")  # the first origin has 4 points of history: AutoETS refuses it
    with caplog.at_level(logging.WARNING, logger="tasks.components.references"):
        out, info = reference_forecasts(values, split, idx, 1, None, ("ets",))
    assert "NotImplementedError" in info["fallback"]["ets"]["tiny"]
    np.testing.assert_array_equal(out["ets"][:, 0], values[split.last_observed(idx)])
    assert "AutoETS failed on series 'tiny'" in caplog.text and "naive forecast stands in" in caplog.text
    line = references_line({"references": info})
    assert "AutoETS fell back to the naive forecast on 1 series (first 'tiny': NotImplementedError" in line
    with pytest.raises(ValueError, match="unknown reference forecaster 'prophet'"):
        reference_forecasts(values, split, idx, 1, None, ("prophet",))


def model_for(split):
    """An untrained network that starts as the seasonal-naive forecast (as the file defaults do)."""
    return Forecaster(cell="gru", hidden_size=8, skip_lag=12).eval()


def test_the_backtest_scores_the_references_on_the_models_own_targets_everywhere():
    values = np.concatenate([monthly(120, seed=4), monthly(132, seed=5, level=300.0)])
    split = split_for(values, ids=("x", "y"), lengths=(120, 132), seq_length=24, horizon=3, normalize="window")
    df, result = backtest(model_for(split), values, split, levels=(0.8,), season_length=12,
                          references=("ets", "theta"))
    assert list(result["metrics"]) == ["model", "naive", "seasonal_naive", "ets", "theta"]
    assert len(result["per_lead"]["ets"]["mase"]) == 3 and result["references"]["names"] == ["ets", "theta"]
    idx = split.origins("test")
    out, _ = reference_forecasts(values, split, idx, 3, 12, ("ets", "theta"))
    np.testing.assert_array_equal(df["ets"].to_numpy(), out["ets"].ravel())  # rows: origin-major, then lead
    np.testing.assert_array_equal(df["theta"].to_numpy(), out["theta"].ravel())
    by_series = series_metrics(df, dict(zip(split.ids, series_scales(values, split))))
    assert {"ets_mase", "theta_mase", "ets_smape"} <= set(by_series) and by_series["ets_mase"].notna().all()
    gate = result["gate"]
    assert gate["asked"] == "best" and set(gate["versus"]) == {"naive", "seasonal_naive", "ets", "theta"}
    best = min(gate["versus"], key=lambda k: gate["versus"][k]["value"])
    before = result["pretest"]["metrics"]  # the gate's scores: before the test range, with the references there too
    assert gate["baseline_value"] == before[best]["mase"] and gate["passed"] == (before["model"]["mase"] < before[best]["mase"])
    json.loads(json.dumps(result), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))  # strict JSON
    extras = metric_extras(result)
    assert extras["ets"]["model_ratio"] == pytest.approx(result["metrics"]["model"]["mase"]
                                                         / result["metrics"]["ets"]["mase"])
    assert extras[best]["gate"] == "baseline"
    fig = plot_error_by_lead(result["per_lead"], FiguresConfig())
    assert {t.get_text() for t in fig.legends[0].get_texts()} >= {"AutoETS", "AutoTheta", "RNN"}


def test_a_constant_series_with_references_stays_quiet_defined_and_tied():
    values = np.full(72, 50.0)
    split = split_for(values, seq_length=24, normalize="window")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _, result = backtest(model_for(split), values, split, levels=(0.8,), season_length=12,
                             references=("ets", "theta"))
    m = result["metrics"]
    assert m["ets"]["mae"] == 0.0 and m["theta"]["mae"] == pytest.approx(0.0, abs=1e-9) and m["ets"]["mase"] is None
    gate = result["gate"]
    assert gate["metric"] == "mae" and gate["tie"] and gate["passed"]
    assert set(result["pretest"]["metrics"]) == {"model", "naive", "seasonal_naive", "ets", "theta"}
    assert gate_line(gate, 1, result["n_test"]).startswith(
        f"gate: passed, a tie on the {gate['n_origins']} validation origins before the test range: model MAE 0 vs "
        "seasonal-naive 0 (equal)")


def test_buckets_combine_with_their_references_fallbacks_and_the_gate_they_were_asked_for():
    parts = []
    for seed in (6, 7):
        values = monthly(120, seed=seed)
        split = split_for(values, ids=(f"s{seed}",), seq_length=24, normalize="window")
        parts.append(backtest(model_for(split), values, split, levels=(0.8,), season_length=12,
                              references=("ets", "theta"), gate_baseline="naive")[1])
    parts[1]["references"]["fallback"] = {"ets": {"s7": "NotImplementedError: tiny datasets"}}
    combined = aggregate(parts)
    assert {"ets", "theta"} <= set(combined["metrics"]) and combined["references"]["names"] == ["ets", "theta"]
    assert combined["references"]["fallback"] == {"ets": {"s7": "NotImplementedError: tiny datasets"}}
    assert combined["gate"]["asked"] == "naive" and combined["gate"]["baseline"] == "naive"
    ets = np.mean([p["metrics"]["ets"]["mase"] for p in parts])  # equal test origins: the plain mean
    assert combined["metrics"]["ets"]["mase"] == pytest.approx(ets)
    no_theta = {**parts[1], "per_lead": {k: v for k, v in parts[1]["per_lead"].items() if k != "theta"}}
    assert "theta" not in aggregate([parts[0], no_theta])["metrics"]  # only what every bucket has
    assert baseline_gate(combined["metrics"])["asked"] == "best"


# --------------------------------------------------------------------------- statistical ensemble members


def test_a_statistical_member_forecasts_as_its_reference_from_the_earliest_origin_it_is_asked_for():
    from tasks.components.references import Statistical

    values = np.concatenate([monthly(150, seed=1), monthly(130, seed=2, level=50.0)])
    split = split_for(values, ids=("a", "b"), lengths=(150, 130), seq_length=24, horizon=3)
    for part in ("val", "test"):
        idx = split.origins(part)
        want, _ = reference_forecasts(values, split, idx, 3, 12, ("ets", "theta"))
        for name in ("ets", "theta"):
            np.testing.assert_allclose(Statistical(name, 12)(values, split, idx, 3), want[name], rtol=1e-9)
    # asked for the validation origins, it never reads a value after them: the test range may change
    idx = split.origins("val")
    later = values.copy()
    later[split.target_index(idx, 3).max() + 1:] += 500.0
    before = Statistical("ets", 12)(values, split, idx, 3)
    np.testing.assert_array_equal(Statistical("ets", 12)(later, split, idx, 3), before)
    with pytest.raises(ValueError, match="unknown reference forecaster 'prophet'"):
        Statistical("prophet", 12)


def test_a_statistical_member_that_fails_on_a_series_stands_in_with_the_naive_forecast(caplog):
    from tasks.components.references import Statistical

    values = np.array([3.0, 5.0, 4.0, 6.0, 5.0, 7.0, 6.0, 8.0])
    split = build_split([8], ["tiny"], seq_length=1, horizon=1, train_fraction=0.5, val_fraction=0.0)
    idx = split.origins("test")  # 4 points before the first origin: AutoETS refuses them
    with caplog.at_level(logging.WARNING, logger="tasks.components.references"):
        out = Statistical("ets", None)(values, split, idx, 2)
    np.testing.assert_array_equal(out, np.repeat(values[split.last_observed(idx)][:, None], 2, axis=1))
    assert "AutoETS (ensemble member) failed on series 'tiny'" in caplog.text


def test_an_ensemble_with_statistical_members_combines_them_with_the_networks(tmp_path):
    import torch

    from tasks.components.ensemble import Ensemble, Member
    from tasks.components.network import build_model
    from tasks.components.references import Statistical
    from tasks.components.specs import NetworkSpec
    from tasks.formats.ensemble import EnsembleFile, load_model_file, save_ensemble
    from tasks.formats.model import ModelFile, save_model

    values = monthly(160)
    split = split_for(values, seq_length=24, horizon=2, normalize="window")
    torch.manual_seed(0)
    spec = NetworkSpec(cell="gru", hidden_size=8, skip_lag=12, n_outputs=2)
    net = build_model(spec).eval()
    ets, theta = Statistical("ets", 12), Statistical("theta", 12)
    ens = Ensemble([Member(net, split), Member(ets, split), Member(theta, split)], "mean")
    idx = split.origins("test")
    each = ens.forecasts(values, split, idx, 2)
    assert each.shape == (3, len(idx), 2)
    np.testing.assert_allclose(each[1], ets(values, split, idx, 2), rtol=1e-12)
    np.testing.assert_allclose(ens(values, split, idx, 2), each.mean(axis=0), rtol=1e-12)

    record = ModelFile(spec, 24, 2, "direct", "window", split.scalers)
    (tmp_path / "net").mkdir()
    save_model(tmp_path / "net", net, record)
    save_ensemble(tmp_path, [tmp_path / "net" / "model.pt"], "median", [ets, theta])
    loaded, rec = load_model_file(tmp_path / "model.pt")
    assert isinstance(loaded, EnsembleFile) and len(loaded.members) == 1
    assert [(m.name, m.season) for m in loaded.statistical] == [("ets", 12), ("theta", 12)]
    assert rec.trained["members"] == 3 and rec.seq_length == 24
    with pytest.raises(ValueError, match="at least one network member"):
        save_ensemble(tmp_path, [], "median", [ets])
    save_ensemble(tmp_path, [tmp_path / "net" / "model.pt"], "median", [ets, theta], (0.5, 0.3, 0.2), (0.2, 0.4, 0.4))
    loaded, _ = load_model_file(tmp_path / "model.pt")
    assert (loaded.weights, loaded.calibration_weights) == ((0.5, 0.3, 0.2), (0.2, 0.4, 0.4))
    with pytest.raises(ValueError, match="2 weights for the networks and 2 statistical"):
        save_ensemble(tmp_path, [tmp_path / "net" / "model.pt"], "median", [ets, theta], (0.5, 0.3, 0.2), (0.5, 0.5))


def test_seasonal_naive_without_a_season_is_called_naive_where_it_is_named():
    from tasks.components.backtest import ensemble_report
    from tasks.components.ensemble import Ensemble, Member
    from tasks.components.references import Statistical, label

    assert (label("snaive", 12), label("snaive", 0), label("snaive", None), label("snaive", 1)) == (
        "seasonal naive", "naive", "naive", "naive")
    assert label("ets", 0) == "AutoETS" and label("theta", 12) == "AutoTheta"
    values = monthly(160)
    split = split_for(values, seq_length=24, horizon=1, normalize="window")
    for season, want in ((12, "seasonal naive"), (0, "naive")):
        ens = Ensemble([Member(model_for(split), split), Member(Statistical("snaive", season), split)], "median",
                       weights=(0.5, 0.5))
        spread = {"member_min": np.zeros((2, 1)), "member_max": np.ones((2, 1))}
        assert ensemble_report(spread, np.ones(2), ens)["statistical"] == [want]


def test_inverse_error_weights_trust_each_part_by_its_validation_error():
    from tasks.components.ensemble import inverse_error_weights

    assert inverse_error_weights([1.0, 2.0, 4.0], power=1) == pytest.approx((4 / 7, 2 / 7, 1 / 7))
    assert inverse_error_weights([1.0, 2.0, 4.0]) == pytest.approx((16 / 21, 4 / 21, 1 / 21))  # 1 / MASE^2
    assert inverse_error_weights([0.5, None, float("nan")]) == pytest.approx((1.0, 0.0, 0.0))
    assert inverse_error_weights([0.0, 1.0, 0.0]) == pytest.approx((0.5, 0.0, 0.5))  # perfect parts share it
    assert inverse_error_weights([None, float("inf")]) == pytest.approx((0.5, 0.5))  # nothing usable: equal


def test_pooled_mase_is_the_mase_over_both_ranges_origins():
    from tasks.validate import pooled_mase

    assert pooled_mase([(1.0, 5), (2.0, 15)]) == pytest.approx(1.75)
    assert pooled_mase([(1.0, 5), (None, 15)]) == pytest.approx(1.0)  # an undefined range is left out
    assert pooled_mase([(float("nan"), 5), (2.0, 0)]) is None


def test_a_hybrids_calibration_weights_never_see_the_calibration_origins_and_its_weights_never_the_test_range():
    from tasks.components.backtest import validation_scores
    from tasks.components.ensemble import Member
    from tasks.components.references import Statistical
    from tasks.config import EvalConfig
    from tasks.validate import hybrid_weights

    def weights(values):
        split = split_for(values, seq_length=24, horizon=1, normalize="window", calibration=12)
        stats = [Statistical("ets", 12), Statistical("snaive", 12)]
        scores = []
        for m in stats:
            s = validation_scores(m, values, split, 12)
            c = validation_scores(m, values, split, 12, part="cal")
            scores.append({**s, "calibration": {"mase": c["metrics"]["model"]["mase"], "n": c["n_val"]}})
        nets = [Member(model_for(split), split)]
        return hybrid_weights(values, split, nets, nets, "median", scores, EvalConfig(season_length=12)), split

    values = monthly(200, seed=3)
    (forecasting, calibration, net_mase), split = weights(values)
    assert split.count("cal") == 12 and forecasting != calibration
    assert sum(forecasting) == pytest.approx(1.0) and sum(calibration) == pytest.approx(1.0)
    s = split.series[0]
    cal_targets = np.arange(s.cal[0], s.cal[1]) + split.seq_length
    test_targets = np.arange(s.test[0], len(values))
    moved = values.copy()
    moved[cal_targets] += np.random.default_rng(1).normal(0, 20, len(cal_targets))
    (f_cal, c_cal, m_cal), _ = weights(moved)
    assert c_cal == pytest.approx(calibration, abs=1e-12) and m_cal == net_mase  # blind to the calibration range
    assert f_cal != pytest.approx(forecasting)  # the forecasting weights read it
    moved = values.copy()
    moved[test_targets[test_targets >= cal_targets[-1] + 1]] *= 3.0
    assert weights(moved)[0] == (forecasting, calibration, net_mase)  # nothing reads the test range


def test_a_hybrid_calibrates_its_intervals_with_its_calibration_weights():
    from tasks.components.backtest import conformal_bands
    from tasks.components.ensemble import Ensemble, Member
    from tasks.components.references import Statistical

    values = monthly(200, seed=2)
    split = split_for(values, seq_length=24, horizon=2, normalize="window", calibration=12)
    members = [Member(model_for(split), split), Member(Statistical("ets", 12), split),
               Member(Statistical("snaive", 12), split)]
    hybrid = Ensemble(members, "median", weights=(0.6, 0.3, 0.1), calibration_weights=(0.1, 0.1, 0.8))
    calibrating = Ensemble(members, "median", weights=(0.1, 0.1, 0.8))
    assert hybrid.for_calibration() == calibrating
    df, result = backtest(hybrid, values, split, levels=(0.8, 0.95), season_length=12, references=())
    assert result["intervals"]["origins"] == "calibration"
    got = result["intervals"]["halfwidths"]
    want = conformal_bands(calibrating, values, split, (0.8, 0.95))["halfwidths"]
    other = conformal_bands(Ensemble(members, "median", weights=(0.6, 0.3, 0.1)), values, split, (0.8, 0.95))
    for level in ("80", "95"):
        np.testing.assert_allclose(got[level], want[level], rtol=1e-12)
        assert not np.allclose(got[level], other["halfwidths"][level])  # the forecasting weights' residuals differ
    idx = split.origins("test")
    np.testing.assert_allclose(df["model"].to_numpy(), hybrid(values, split, idx, 2).ravel(), rtol=1e-12)
    assert result["ensemble"]["weights"] == [0.6, 0.3, 0.1]
    assert result["ensemble"]["calibration_weights"] == [0.1, 0.1, 0.8]


def test_a_hybrid_is_the_weighted_mean_of_the_networks_combination_and_each_statistical_member():
    from tasks.components.ensemble import Ensemble, Member
    from tasks.components.network import build_model
    from tasks.components.references import Statistical
    from tasks.components.specs import NetworkSpec

    values = monthly(160)
    split = split_for(values, seq_length=24, horizon=2, normalize="window")
    nets = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        nets.append(build_model(NetworkSpec(cell="gru", hidden_size=8, skip_lag=12, n_outputs=2)).eval())
    ets, snaive = Statistical("ets", 12), Statistical("snaive", 12)
    members = [*(Member(n, split) for n in nets), Member(ets, split), Member(snaive, split)]
    hybrid = Ensemble(members, "median", weights=(0.5, 0.3, 0.2))
    idx = split.origins("test")
    each = hybrid.forecasts(values, split, idx, 2)
    want = 0.5 * np.median(each[:3], axis=0) + 0.3 * each[3] + 0.2 * each[4]
    np.testing.assert_allclose(hybrid(values, split, idx, 2), want, rtol=1e-12)
    np.testing.assert_array_equal(each[4], values[split.last_observed(idx)[:, None] + np.arange(1, 3) - 12])
    with pytest.raises(ValueError, match="2 weights for the networks and 2 statistical"):
        Ensemble(members, "median", weights=(0.5, 0.5))
    with pytest.raises(ValueError, match="networks come before"):
        Ensemble([members[3], members[0]], "median")


def test_a_cross_fitted_hybrid_forecasts_with_its_networks_and_calibrates_with_the_others(tmp_path):
    from tasks.components.backtest import conformal_bands
    from tasks.components.ensemble import Ensemble, Member
    from tasks.components.network import build_model
    from tasks.components.references import Statistical
    from tasks.components.specs import NetworkSpec
    from tasks.formats.ensemble import load_model_file, save_ensemble
    from tasks.formats.model import ModelFile, save_model

    values = monthly(200, seed=4)
    split = split_for(values, seq_length=24, horizon=2, normalize="window", calibration=12)
    specs, nets = [], []
    for seed in range(4):
        torch.manual_seed(seed)
        specs.append(NetworkSpec(cell="gru", hidden_size=8, skip_lag=12, n_outputs=2))
        nets.append(build_model(specs[-1]).eval())
    ets = Statistical("ets", 12)
    members = [*(Member(n, split) for n in nets), Member(ets, split)]
    hybrid = Ensemble(members, "median", weights=(0.7, 0.3), calibration_weights=(0.4, 0.6), networks=(0, 1, 2),
                      calibration_networks=(1, 2, 3))
    idx = split.origins("test")
    each = hybrid.forecasts(values, split, idx, 2)
    assert each.shape == (4, len(idx), 2)  # its three forecasting networks and AutoETS, not the fourth network
    alone = Ensemble([*members[:3], members[4]], "median", weights=(0.7, 0.3))
    np.testing.assert_allclose(hybrid(values, split, idx, 2), alone(values, split, idx, 2), rtol=1e-12)
    calibrating = Ensemble([*members[1:4], members[4]], "median", weights=(0.4, 0.6))
    np.testing.assert_allclose(hybrid.for_calibration()(values, split, idx, 2), calibrating(values, split, idx, 2),
                               rtol=1e-12)
    got = conformal_bands(hybrid, values, split, (0.8,))["halfwidths"]["80"]
    np.testing.assert_allclose(got, conformal_bands(calibrating, values, split, (0.8,))["halfwidths"]["80"], rtol=1e-12)
    with pytest.raises(ValueError, match=r"network positions \[1, 4\] do not fit the 4 network"):
        Ensemble(members, "median", networks=(1, 4))

    files = []
    for i, (net, spec) in enumerate(zip(nets, specs)):
        (tmp_path / f"n{i}").mkdir()
        files.append(save_model(tmp_path / f"n{i}", net, ModelFile(spec, 24, 2, "direct", "window", split.scalers)))
    save_ensemble(tmp_path, files, "median", [ets], (0.7, 0.3), (0.4, 0.6), (0, 1, 2), (1, 2, 3))
    loaded, record = load_model_file(tmp_path / "model.pt")
    assert (loaded.networks, loaded.calibration_networks) == ((0, 1, 2), (1, 2, 3)) and len(loaded.members) == 4
    assert record.trained["members"] == 4  # three networks and AutoETS forecast
    assert Ensemble(members, "median", **loaded.combination()) == hybrid
    with pytest.raises(ValueError, match="do not fit the 4 network"):
        save_ensemble(tmp_path, files, "median", [ets], networks=(0, 5))


def test_a_search_forecasts_with_the_networks_best_on_both_ranges_and_calibrates_with_the_validation_best():
    import pandas as pd

    from tasks.validate import pooled_ranking

    board = pd.DataFrame({"member": [3, 0, 1, 2, 4], "val_mase": [0.5, 0.55, 0.6, 0.8, 0.84],
                          "n_val": [5] * 5, "cal_mase": [2.0, 1.9, None, 1.05, 1.2], "n_cal": [15, 15, 0, 15, 15]})
    # pooled: member 3 (0.5*5 + 2.0*15)/20 = 1.625, 0 1.5625, 1 0.6 (no calibration scores), 2 0.9875, 4 1.11
    assert pooled_ranking(board) == [1, 2, 4, 0, 3]
    assert pooled_ranking(board.drop(columns=["cal_mase", "n_cal"])) == [3, 0, 1, 2, 4]
    tied = pd.DataFrame({"member": [1, 0], "val_mase": [1.0, 1.0], "n_val": [5, 5], "cal_mase": [float("nan")] * 2,
                         "n_cal": [0, 0]})
    assert pooled_ranking(tied) == [1, 0]  # ties keep the leaderboard's order


def test_a_hybrids_calibration_weights_come_from_its_calibrating_networks_on_the_validation_origins_only():
    from tasks.components.backtest import validation_scores
    from tasks.components.ensemble import Ensemble, Member, inverse_error_weights
    from tasks.components.references import Statistical
    from tasks.config import EvalConfig
    from tasks.validate import hybrid_weights

    values = monthly(200, seed=5)
    split = split_for(values, seq_length=24, horizon=1, normalize="window", calibration=12)
    nets = []
    for seed in range(2):
        torch.manual_seed(seed)
        nets.append(Member(Forecaster(cell="gru", hidden_size=8, skip_lag=12).eval(), split))
    ets = Statistical("ets", 12)
    score = validation_scores(ets, values, split, 12)
    score["calibration"] = {"mase": validation_scores(ets, values, split, 12, part="cal")["metrics"]["model"]["mase"],
                            "n": split.count("cal")}
    cfg = EvalConfig(season_length=12)
    forecasting, calibration, mase = hybrid_weights(values, split, nets[:1], nets[1:], "median", [score], cfg)
    val = [validation_scores(Ensemble(n, "median"), values, split, 12)["metrics"]["model"]["mase"]
           for n in (nets[:1], nets[1:])]
    assert mase == val[0]  # the forecasting networks' validation MASE
    assert calibration == inverse_error_weights([val[1], score["metrics"]["model"]["mase"]])
    assert hybrid_weights(values, split, nets[:1], nets[:1], "median", [score], cfg)[0] == forecasting
    assert hybrid_weights(values, split, nets[1:], nets[1:], "median", [score], cfg)[1] == calibration


def test_an_ensembles_intervals_widen_where_its_members_disagree():
    from tasks.components.backtest import conformal_bands, interval_scales, score_scales, SPREAD_FLOOR
    from tasks.components.intervals import sequential_bands
    from tasks.components.ensemble import Ensemble, Member
    from tasks.components.references import Statistical

    values = monthly(160)
    split = split_for(values, seq_length=24, horizon=3, normalize="window", calibration=10)
    hybrid = Ensemble([Member(model_for(split), split), Member(Statistical("ets", 12), split),
                       Member(Statistical("snaive", 12), split)], "median", weights=(0.4, 0.4, 0.2))
    idx = split.origins("test")
    each = hybrid.forecasts(values, split, idx, 3)
    scales = interval_scales(hybrid, values, split, idx, 3)
    np.testing.assert_allclose(scales, each.std(axis=0) + SPREAD_FLOOR * score_scales(values, split, idx)[:, None])
    df, result = backtest(hybrid, values, split, levels=(0.8,), season_length=12, references=())
    assert result["intervals"]["scale"] == "members' std + 0.05 x window std"
    pred, y = hybrid(values, split, idx, 3), values[split.target_index(idx)]
    q = sequential_bands(split, idx, conformal_bands(hybrid, values, split, (0.8,))["scores"], (y - pred) / scales,
                         (0.8,))["80"]  # each origin's score half-widths, the earlier observed test targets added
    np.testing.assert_allclose(q[0], result["intervals"]["halfwidths"]["80"])  # the first: the calibration's alone
    np.testing.assert_allclose(df["upper_80"].to_numpy(), (pred + q * scales).ravel(), rtol=1e-9)
    single = interval_scales(model_for(split), values, split, idx, 3)  # one network: the score scale at every lead
    np.testing.assert_array_equal(single, np.repeat(score_scales(values, split, idx)[:, None], 3, axis=1))


def hourly(n: int, seed: int = 0) -> np.ndarray:
    """Hourly-like values: a day and a week of seasons, a slow trend and noise."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    return (100 + 10 * np.sin(2 * np.pi * t / 24) + 5 * (((t // 24) % 7) >= 5) + 0.01 * t
            + rng.normal(0, 0.5, n))


def test_sub_daily_data_with_two_seasons_or_a_long_one_gets_mstl_others_the_plain_models():
    from tasks.components.references import label, mstl_seasons

    assert mstl_seasons("h", (24, 168)) == (24, 168)
    assert mstl_seasons("30min", (48,)) == (48,)  # a day of half hours: longer than AutoETS's 24
    assert mstl_seasons("min", (1440,)) == (1440,)
    assert mstl_seasons("h", (24,)) == ()  # one day of 24 hours: AutoETS fits it
    assert mstl_seasons("MS", (12,)) == () and mstl_seasons("W-MON", (52,)) == () and mstl_seasons("D", (7,)) == ()
    assert mstl_seasons("h", (24, 168), season_length=24) == ()  # --season-length: that season, plainly
    assert mstl_seasons("1", ()) == () and mstl_seasons(None, (24, 168)) == ()
    assert label("ets", 24, (24, 168)) == "MSTL+AutoETS" and label("ets", 24) == "AutoETS"
    assert label("snaive", 24, (24, 168)) == "seasonal naive"


def test_mstl_decomposes_once_per_fit_and_forecasts_as_statsforecasts_mstl_at_its_fit():
    from statsforecast.models import MSTL

    from tasks.components.references import MSTLForecaster, fitted

    y = hourly(24 * 7 * 5)
    mine = fitted("ets", 24, (24, 168), y[:700])
    assert isinstance(mine, MSTLForecaster) and mine.periods == (24, 168)
    theirs = MSTL(season_length=[24, 168], trend_forecaster=AutoETS(model="ZZN")).fit(y[:700])
    np.testing.assert_allclose(mine.forward(y[:700], 30)["mean"], theirs.predict(30)["mean"], rtol=1e-9)
    assert fitted("ets", 24, (24, 168), y[:700].copy()) is mine  # the same history: the kept fit
    theta = fitted("theta", 24, (24, 168), y[:700])
    np.testing.assert_array_equal(theta.seasonal, mine.seasonal)  # one decomposition for both
    # past the fit the components continue their last cycle; the forecast reads no later value
    later = y.copy()
    later[751:] += 1000.0
    np.testing.assert_array_equal(mine.forward(later[:751], 3)["mean"], mine.forward(y[:751], 3)["mean"])
    # a history shorter than two weeks keeps the day only
    assert fitted("ets", 24, (24, 168), y[:200]).periods == (24,)


def test_a_hybrids_test_forecasts_serve_the_references_of_the_same_name_and_policy():
    from tasks.components.references import member_forecasts
    from tasks.components.ensemble import Ensemble, Member
    from tasks.components.references import Statistical

    y = hourly(24 * 7 * 6)
    split = split_for(y, seq_length=48, horizon=2)
    idx = split.origins("test")
    net = Member(Forecaster(cell="gru", hidden_size=4).eval(), split)
    ens = Ensemble([net, Member(Statistical("ets", 24, (24, 168)), split), Member(Statistical("snaive", 24), split)],
                   weights=(0.4, 0.4, 0.2))
    each = ens.forecasts(y, split, idx, 2)
    given = member_forecasts(ens, each, 24, (24, 168))
    assert set(given) == {"ets"}  # seasonal naive is no reference
    found, info = reference_forecasts(y, split, idx, 2, 24, ("ets",), mstl=(24, 168))
    np.testing.assert_allclose(given["ets"][0], found["ets"], rtol=1e-12)
    assert info["mstl"] == [24, 168] and info["fallback"] == {}
    assert "ets" not in member_forecasts(ens, each, 24, ())  # another season policy: not the same forecaster


def test_the_gates_references_reuse_a_hybrids_calibration_forecasts_of_the_same_name_and_policy(monkeypatch):
    """The gate's references on the calibration origins (pretest_scores) are the forecasts the
    hybrid's statistical members made there (conformal_bands' "members"), the same bit for bit
    as fitting them again, which then no longer happens; another season policy still fits."""
    from tasks.components import references
    from tasks.components.backtest import conformal_bands
    from tasks.components.ensemble import Ensemble, Member
    from tasks.components.gate import pretest_scores
    from tasks.components.references import Statistical

    values = monthly(160)
    split = split_for(values, seq_length=24, horizon=2)
    net = Member(Forecaster(cell="gru", hidden_size=4).eval(), split)
    ens = Ensemble([net, Member(Statistical("ets", 12), split), Member(Statistical("theta", 12), split)],
                   weights=(0.4, 0.3, 0.3))
    cal = conformal_bands(ens, values, split, (0.8,))
    assert cal["members"]["each"].shape == (3, split.count(cal["part"]), 2)
    fresh = pretest_scores(values, split, cal["part"], cal["forecasts"], (12,), ("ets", "theta"))

    fits = []
    real = references.cross_validation
    monkeypatch.setattr(references, "cross_validation", lambda *a, **k: fits.append(a[1]) or real(*a, **k))
    reused = pretest_scores(values, split, cal["part"], cal["forecasts"], (12,), ("ets", "theta"), cal["members"])
    assert fits == []  # neither reference was fitted again
    assert json.dumps(reused, sort_keys=True) == json.dumps(fresh, sort_keys=True)  # the same scores, to the bit
    # members of another season policy are other forecasters: the references are fitted as before
    other = Ensemble([net, Member(Statistical("ets", 6), split)], weights=(0.5, 0.5))
    again = pretest_scores(values, split, cal["part"], cal["forecasts"], (12,), ("ets", "theta"),
                           conformal_bands(other, values, split, (0.8,))["members"])
    assert sorted(fits) == ["ets", "theta"]
    assert again["metrics"]["ets"] == fresh["metrics"]["ets"]
    # a single network has no members to reuse
    assert conformal_bands(net.model, values, split, (0.8,))["members"] is None


def test_the_gates_references_on_sub_daily_data_follow_the_test_ranges_season_policy():
    """On hourly data the gate's AutoETS is MSTL+AutoETS, as the test range's reference is (not
    AutoETS with the day as its season), and a hybrid's MSTL+AutoETS member's calibration
    forecasts stand for it; --season-length keeps the plain model."""
    from tasks.components.backtest import conformal_bands, pretest_scores
    from tasks.components.ensemble import Ensemble, Member
    from tasks.components.references import Statistical

    y = hourly(24 * 7 * 6)
    split = build_split([len(y)], ["s"], 48, 2, 0.7, 0.15, calibration=20, frequency="h").with_scalers(y)
    idx = split.origins("cal")
    net = Member(Forecaster(cell="gru", hidden_size=4).eval(), split)
    ens = Ensemble([net, Member(Statistical("ets", 24, (24, 168)), split)], weights=(0.5, 0.5))
    cal = conformal_bands(ens, y, split, (0.8,))
    assert cal["part"] == "cal"
    seasons = (24, 168)
    mstl_ets, _ = reference_forecasts(y, split, idx, 2, 24, ("ets",), mstl=seasons)
    plain_ets, _ = reference_forecasts(y, split, idx, 2, 24, ("ets",))
    fresh = pretest_scores(y, split, "cal", cal["forecasts"], seasons, ("ets",))
    want = pretest_scores(y, split, "cal", mstl_ets["ets"], seasons, ())["metrics"]["model"]
    assert fresh["metrics"]["ets"] == want  # MSTL+AutoETS's scores
    plain = pretest_scores(y, split, "cal", plain_ets["ets"], seasons, ())["metrics"]["model"]
    assert fresh["metrics"]["ets"] != plain
    reused = pretest_scores(y, split, "cal", cal["forecasts"], seasons, ("ets",), cal["members"])
    assert reused["metrics"]["ets"] == want  # the member's forecasts, the same to the bit
    given_season = pretest_scores(y, split, "cal", cal["forecasts"], seasons, ("ets",), cal["members"], 24)
    assert given_season["metrics"]["ets"] == plain  # --season-length 24: the plain AutoETS, as on the test range


def test_validation_scores_at_most_so_many_origins_per_series_evenly_spaced():
    from tasks.components.backtest import spaced_origins

    y = np.concatenate([monthly(600, seed=1), monthly(300, seed=2)])
    split = split_for(y, ids=("a", "b"), lengths=(600, 300), seq_length=12)
    every = split.origins("val")
    got = spaced_origins(split, "val", 10)
    k = split.series_index(got)
    assert [int((k == j).sum()) for j in (0, 1)] == [10, 10]
    for j in (0, 1):
        mine, all_of = got[k == j], every[split.series_index(every) == j]
        assert mine[0] == all_of[0] and mine[-1] == all_of[-1] and set(mine) <= set(all_of)
    np.testing.assert_array_equal(spaced_origins(split, "val", 0), every)
    np.testing.assert_array_equal(spaced_origins(split, "val", 10_000), every)


def test_the_fits_kept_per_process_stay_within_their_bytes(monkeypatch):
    from tasks.components import references

    monkeypatch.setattr(references, "_FITS", references.OrderedDict())
    monkeypatch.setattr(references, "FITS_BYTES", 3 * 8 * 100 * 6)  # room for about three 100-point fits
    ys = [monthly(100, seed=s) for s in range(6)]
    fits = [references.fitted("snaive", 12, (), y) for y in ys]
    assert len(references._FITS) == 3  # the least recently used went first
    assert references.fitted("snaive", 12, (), ys[-1]) is fits[-1]  # the newest is still kept
    assert references.fitted("snaive", 12, (), ys[0]) is not fits[0]  # the oldest was fitted again


def test_a_statistical_member_told_its_forecasts_returns_them_and_forecasts_the_rest():
    from tasks.components.references import Statistical

    values = monthly(180, seed=4)
    split = split_for(values, seq_length=24, horizon=2, calibration=10)
    made = Statistical("ets", 12).table(values, split)
    assert set(made["part"]) == {"cal", "test"} and set(made["lead"]) == {1, 2}
    test = split.origins("test")
    want = Statistical("ets", 12)(values, split, test, 2)
    told = Statistical("ets", 12).knowing(made)
    np.testing.assert_array_equal(told(values, split, test, 2), want)
    altered = made.assign(forecast=made["forecast"] + 1.0)  # what it is told is what it returns
    np.testing.assert_array_equal(Statistical("ets", 12).knowing(altered)(values, split, test, 2), want + 1.0)
    val = split.origins("val")  # origins it was not told of: forecast as ever
    np.testing.assert_allclose(told(values, split, val, 2), Statistical("ets", 12)(values, split, val, 2))
