"""Champion/challenger promotion and the model registry: pure and fast, no Prefect server."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tasks import registry, store
from tasks.config import DataConfig, ModelConfig, TrainConfig, WindowConfig
from tasks.errors import InputError
from tasks.evaluate import model_predictions
from tasks.generate import generate_values
from tasks.model import Forecaster
from tasks.promote import PromoteSettings, aligned_split, decide, promote, promotion_markdown
from tasks.train import MODEL_FILE, train_model
from tasks.windowing import SPLIT_FILE, VALUES_FILE, build_split, fit_scaler

CPU = torch.device("cpu")
MASE = PromoteSettings()
VALUES = generate_values(DataConfig(n_points=240, noise=0.02, seed=1)) + 3.0  # an offset: scalers matter


@pytest.fixture(autouse=True)
def _no_api_logs_outside_runs():
    """These functions log outside any flow run: keep Prefect's API log handler from warning."""
    from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings

    with temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        yield


def make_split(values: np.ndarray, seq_length: int = 20, normalize: str = "none") -> dict:
    cfg = WindowConfig(seq_length=seq_length, normalize=normalize)
    split = build_split([len(values)], ["s"], cfg)
    split["normalize"], split["scaler"] = normalize, fit_scaler(values, split, normalize)
    return split


def window_entry(base, values: np.ndarray, split: dict, data_hash: str = "d" * 64) -> store.StageRef:
    def compute(w: store.EntryWriter) -> None:
        np.save(w.path(VALUES_FILE), values)
        store.write_json(w.path(SPLIT_FILE), split)

    key = store.sha256_json([split, data_hash])[:24]
    return store.build_entry(base, "window", key, {"upstream": {"generate": data_hash}}, compute)


def train_entry(base, model: torch.nn.Module, split: dict, tag: str) -> store.StageRef:
    def compute(w: store.EntryWriter) -> None:
        blob = {"state_dict": model.state_dict(), "model": {"cell": "rnn", "hidden_size": 8}, "horizon": 1,
                "seq_length": split["seq_length"], "scaler": split["scaler"], "normalize": split["normalize"]}
        torch.save(blob, w.path(MODEL_FILE))

    return store.build_entry(base, "train", tag, {}, compute)


def trained(split: dict, epochs: int = 40) -> torch.nn.Module:
    cfg = TrainConfig(epochs=epochs, patience=0, device="cpu", lr=1e-2)
    return train_model(VALUES, split, ModelConfig(hidden_size=8), cfg, CPU)[0]


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
    meta = {"seq_length": 10, "scaler": own["scaler"], "normalize": normalize}
    holdout = make_split(VALUES, seq_length=20)  # this run: longer windows, no scaler
    view = aligned_split(holdout, meta, history=20)
    (s,), (h,) = view["series"], holdout["series"]
    assert s["test"][0] + 10 == h["test"][0] + 20 and s["test"][1] + 10 == h["test"][1] + 20  # same targets
    got = model_predictions(champion, VALUES, view, 1024)
    direct = model_predictions(champion, VALUES, own, 1024)  # on its own split, more targets
    np.testing.assert_allclose(got, direct[-len(got):], rtol=1e-6)
    wrong = model_predictions(champion, VALUES, {**view, "scaler": holdout["scaler"], "normalize": "none"}, 1024)
    assert not np.allclose(got, wrong)  # the holdout's own scaler would have been wrong
