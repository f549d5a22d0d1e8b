"""Champion/challenger promotion and the model registry: pure and fast, no Prefect server."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tasks.components.backtest import NonFiniteForecast, one_step_forecasts
from tasks.components.network import Forecaster
from tasks.errors import InputError
from tasks.formats.model import MODEL_FILE
from tasks.promote import (
    PromoteSettings,
    decide,
    holdout_view,
    promote,
    promotion_markdown,
)
from tasks.runtime import registry, store
from tests.helpers.promotion import (
    VALUES,
    make_split,
    record_of,
    train_entry,
    trained,
    window_entry,
)

MASE = PromoteSettings()



def untrained() -> torch.nn.Module:
    torch.manual_seed(0)
    return Forecaster(hidden_size=8)


@pytest.fixture(scope="module")
def models():
    split = make_split(VALUES)
    return split, trained(split), untrained()


@pytest.fixture
def world(tmp_path, models):
    """An output root with this run's window entry and two candidate models: good and bad."""
    split, good, bad = models
    win = window_entry(tmp_path, VALUES, split)
    return tmp_path, win, train_entry(tmp_path, good, split, "good"), train_entry(tmp_path, bad, split, "bad")


def sha(ref: store.StageRef) -> str:
    return store.sha256_file(ref.file(MODEL_FILE))


def test_first_run_promotes_and_keeps_its_own_copy_of_the_model(world):
    root, win, good, _ = world
    d = promote(root, win, good, "run-1", MASE)
    assert (d["action"], d["reason"], d["champion"]) == ("promoted", "no champion yet", None)
    reg = registry.load(root)
    assert reg["champion"]["model_sha256"] == sha(good) and reg["champion"]["run"] == "run-1"
    copy = root / "models" / reg["champion"]["path"]
    assert copy.is_file() and store.sha256_file(copy) == sha(good)
    good.file(MODEL_FILE).unlink()  # cache cleanup never loses a champion
    assert registry.check_model(root, reg["champion"]) is None


def test_better_challenger_is_promoted_and_the_old_champion_becomes_previous(world):
    root, win, good, bad = world
    promote(root, win, bad, "run-1", MASE)
    d = promote(root, win, good, "run-2", MASE)
    assert d["action"] == "promoted"
    assert d["challenger"]["metrics"]["mase"] < d["champion"]["metrics"]["mase"]
    reg = registry.load(root)
    assert reg["champion"]["model_sha256"] == sha(good) and reg["previous"]["model_sha256"] == sha(bad)


def test_worse_challenger_is_not_promoted_but_the_decision_is_recorded(world):
    root, win, good, bad = world
    promote(root, win, good, "run-1", MASE)
    before = registry.load(root)["champion"]
    d = promote(root, win, bad, "run-2", MASE)
    reg = registry.load(root)
    assert d["action"] == "kept" and reg["champion"] == before and reg["previous"] is None
    last = reg["history"][-1]
    assert last["action"] == "kept" and last["reason"].startswith("challenger mase")
    for role, file in (("challenger", bad), ("champion", good)):
        assert last[role]["model_sha256"] == sha(file) and last[role]["data_hash"] == "d" * 64
        assert set(last[role]["metrics"]) == {"mse", "rmse", "mae", "smape", "mase"}
    assert last["challenger"]["metrics"]["mase"] > last["champion"]["metrics"]["mase"]
    assert last["holdout"]["n_test"] > 0 and last["at"]
    md = promotion_markdown(last)
    assert "**kept**" in md and "| challenger |" in md and "| champion |" in md and "| naive |" in md


def test_a_crash_before_the_registry_write_leaves_the_old_champion(world, monkeypatch):
    root, win, good, bad = world
    promote(root, win, bad, "run-1", MASE)
    path = root / "models" / registry.REGISTRY_FILE
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("killed between training and promotion")

    monkeypatch.setattr(registry, "commit", crash)
    with pytest.raises(RuntimeError, match="killed"):
        promote(root, win, good, "run-2", MASE)
    assert path.read_bytes() == before
    assert registry.load(root)["champion"]["model_sha256"] == sha(bad)


def test_rollback_restores_the_previous_champion_and_records_it(world):
    root, win, good, bad = world
    promote(root, win, bad, "run-1", MASE)
    promote(root, win, good, "run-2", MASE)
    reg = registry.rollback(root)
    assert reg["champion"]["model_sha256"] == sha(bad) and reg["previous"] is None
    assert registry.load(root) == reg
    last = reg["history"][-1]
    assert last["action"] == "rolled_back" and last["from"]["run"] == "run-2" and last["to"]["run"] == "run-1"
    with pytest.raises(InputError, match="no previous champion"):
        registry.rollback(root)


def test_rollback_with_no_registry_names_it_and_writes_nothing(tmp_path):
    with pytest.raises(InputError, match="registry.json"):
        registry.rollback(tmp_path)
    assert not (tmp_path / "models").exists()


def test_the_champions_own_model_file_is_kept(world):
    root, win, good, _ = world
    promote(root, win, good, "run-1", MASE)
    d = promote(root, win, good, "run-2", MASE)
    assert d["action"] == "kept" and "champion's own model" in d["reason"]
    assert d["champion"]["metrics"] == d["challenger"]["metrics"]


def test_a_champion_that_cannot_be_scored_is_replaced_and_the_reason_given(world):
    root, win, good, bad = world
    promote(root, win, good, "run-1", MASE)
    (root / "models" / registry.load(root)["champion"]["path"]).unlink()
    d = promote(root, win, bad, "run-2", MASE)
    assert d["action"] == "promoted" and "cannot be scored" in d["reason"] and "missing" in d["reason"]


def test_margin_and_non_finite_values_decide():
    assert decide(0.9, 1.0, "mase", 0.0)[0] is True
    assert decide(0.9, 1.0, "mase", 0.2)[0] is False  # 10% better is not the 20% asked for
    assert decide(0.7, 1.0, "mase", 0.2)[0] is True
    assert decide(1.0, 1.0, "mase", 0.0)[0] is False  # a tie keeps the champion
    assert decide(math.nan, 1.0, "mase", 0.0)[0] is False
    assert decide(1.0, math.inf, "mase", 0.0)[0] is True
    assert decide(1.0, None, "mase", 0.0) == (True, "no champion yet")
    with pytest.raises(ValueError):
        PromoteSettings(margin=1.5)


@pytest.mark.parametrize("normalize", ["standard", "window"])
def test_a_champion_reads_the_holdout_with_its_own_window_length_and_scaler(normalize):
    own = make_split(VALUES, seq_length=10, normalize=normalize)  # how the champion was trained
    champion = trained(own, epochs=3)
    holdout = make_split(VALUES, seq_length=20)  # this run: longer windows, no scaler
    view = holdout_view(holdout, record_of(own), history=20)
    (s,), (h,) = view.series, holdout.series
    assert s.test[0] + 10 == h.test[0] + 20 and s.test[1] + 10 == h.test[1] + 20  # same targets
    got = one_step_forecasts(champion, VALUES, view, 1024)
    direct = one_step_forecasts(champion, VALUES, own, 1024)  # on its own split, more targets
    np.testing.assert_allclose(got, direct[-len(got):], rtol=1e-6)
    wrong = one_step_forecasts(champion, VALUES, holdout.seen_by(10, 20, holdout.scalers, "none"), 1024)
    assert not np.allclose(got, wrong)  # the holdout's own scaler would have been wrong


def test_the_holdout_mase_is_the_backtests_test_mase_one_step_ahead(models):
    from tasks.components.backtest import backtest
    from tasks.config import EvalConfig
    from tasks.promote import holdout_scores

    split, good, _ = models
    values = VALUES * (1 + np.linspace(0, 2, len(VALUES)))  # a growing swing: an early naive error is smaller
    _, result = backtest(good, values, split, levels=(0.8,), references=())
    scores, n = holdout_scores(good, record_of(split), values, split, split.seq_length, EvalConfig())
    assert n == result["n_test"]
    for name in ("model", "naive"):
        assert scores[name]["mase"] == pytest.approx(result["metrics"][name]["mase"], rel=1e-9)
        assert scores[name]["mae"] == pytest.approx(result["metrics"][name]["mae"], rel=1e-9)


def nan_model() -> torch.nn.Module:
    model = untrained()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    return model


def test_a_challenger_that_forecasts_nan_stops_before_the_registry_is_written(world, models):
    root, win, _, _ = world
    split = models[0]
    with pytest.raises(NonFiniteForecast, match="non-finite"):
        promote(root, win, train_entry(root, nan_model(), split, "nan"), "run-1", MASE)
    assert registry.load(root)["champion"] is None and not registry.load(root)["history"]


def test_a_champion_that_forecasts_nan_cannot_be_scored_and_is_replaced(world, models):
    root, win, good, _ = world
    split = models[0]
    nan = train_entry(root, nan_model(), split, "nan")
    record = {**registry.install_model(root, nan.file(MODEL_FILE)), "run": "run-0", "data_hash": "d" * 64,
              "seq_length": split.seq_length, "metrics": {}, "promoted_at": registry.now()}
    registry.commit(root, registry.with_promotion(registry.load(root), record))
    d = promote(root, win, good, "run-1", MASE)
    assert d["action"] == "promoted" and "cannot be scored" in d["reason"] and "non-finite" in d["reason"]


def test_an_ensemble_is_judged_as_one_model_each_member_reading_the_holdout_its_own_way(world):
    from tasks.formats.ensemble import EnsembleFile, load_model_file, save_ensemble
    from tasks.formats.window import read_window

    root, win, good, _ = world
    short, long_ = make_split(VALUES, seq_length=10, normalize="standard"), make_split(VALUES)
    nets = {"short": trained(short, epochs=3), "long": trained(long_, epochs=3)}
    members = [train_entry(root, nets["short"], short, "short"), train_entry(root, nets["long"], long_, "long")]

    def pack(w: store.EntryWriter) -> None:
        save_ensemble(w.dir, [m.file(MODEL_FILE) for m in members], "mean")

    ens, _ = store.build_entry(root, "ensemble", "e1", {}, pack)
    d = promote(root, win, ens, "run-1", MASE)
    assert d["action"] == "promoted"

    _, holdout = read_window(win.path)  # each member through its own window length and scalers, then the mean
    views = {"short": holdout_view(holdout, record_of(short), 20), "long": holdout_view(holdout, record_of(long_), 20)}
    pred = np.mean([one_step_forecasts(nets[k], VALUES, views[k], 1024) for k in nets], axis=0)
    actual = VALUES[views["long"].target_index(views["long"].origins("test"), 1)[:, 0]]
    assert d["challenger"]["metrics"]["mae"] == pytest.approx(float(np.mean(np.abs(actual - pred))), rel=1e-9)

    champion, record = load_model_file(root / "models" / registry.load(root)["champion"]["path"])
    assert isinstance(champion, EnsembleFile) and len(champion.members) == 2 and record.seq_length == 20
    again = promote(root, win, good, "run-2", MASE)  # a single model against the ensemble champion
    assert again["champion"]["metrics"]["mae"] == pytest.approx(d["challenger"]["metrics"]["mae"], rel=1e-12)


def test_an_ensemble_with_a_statistical_member_is_judged_with_it(world):
    from tasks.components.references import Statistical
    from tasks.formats.ensemble import EnsembleFile, load_model_file, save_ensemble
    from tasks.formats.window import read_window

    root, win, _, _ = world
    split = make_split(VALUES)
    net = trained(split, epochs=3)
    member = train_entry(root, net, split, "net")
    theta = Statistical("theta", None)

    def pack(w: store.EntryWriter) -> None:
        save_ensemble(w.dir, [member.file(MODEL_FILE)], "mean", [theta])

    ens, _ = store.build_entry(root, "ensemble", "e2", {}, pack)
    d = promote(root, win, ens, "run-1", MASE)
    _, holdout = read_window(win.path)
    view = holdout_view(holdout, record_of(split), 20)
    idx = view.origins("test")
    pred = (one_step_forecasts(net, VALUES, view, 1024) + theta(VALUES, view, idx, 1)[:, 0]) / 2
    actual = VALUES[view.target_index(idx, 1)[:, 0]]
    assert d["challenger"]["metrics"]["mae"] == pytest.approx(float(np.mean(np.abs(actual - pred))), rel=1e-9)
    champion, _ = load_model_file(root / "models" / registry.load(root)["champion"]["path"])
    assert isinstance(champion, EnsembleFile) and [m.name for m in champion.statistical] == ["theta"]
