import copy
import dataclasses
import logging
import math

import numpy as np
import pytest
import torch

from tasks.components.fit import TrainingDiverged, fit, train_model
from tasks.components.network import Forecaster
from tasks.components.series_data import SeriesData, mse_on
from tasks.components.specs import FitSettings, NetworkSpec
from tasks.components.synthetic import sine_values
from tests.helpers import split_for

CPU = torch.device("cpu")
MODEL = NetworkSpec(hidden_size=8)


def series(n=240, noise=0.0):
    return sine_values(n_points=n, noise=noise, seed=3)


def weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_batches_are_the_windows_and_next_values():
    data = SeriesData(torch.arange(10.0), seq_length=3, horizon=2)
    x, y = data.batch(torch.tensor([0, 4]))
    assert x.shape == (2, 3, 1) and x[1, :, 0].tolist() == [4, 5, 6]
    assert y.tolist() == [[3, 4], [7, 8]]
    assert data.windows.data_ptr() == data.values.data_ptr()  # a view


def test_same_seed_same_weights_and_history(sine_split):
    v, split = sine_split
    cfg = FitSettings(epochs=3, patience=0)
    m1, s1 = train_model(v, split, MODEL, cfg, CPU)
    m2, s2 = train_model(v, split, MODEL, cfg, CPU)
    assert s1.history == s2.history
    assert all(torch.equal(a, b) for a, b in zip(weights(m1).values(), weights(m2).values()))


def test_early_stopping_restores_the_best_weights():
    v = series(noise=0.3)
    snapshots = {}

    def on_epoch(epoch, st, box={}):
        snapshots[epoch] = weights(box["m"])

    torch.manual_seed(0)
    m = Forecaster(hidden_size=8)
    on_epoch.__defaults__[0]["m"] = m
    split = split_for(v)
    data = SeriesData(torch.as_tensor(v, dtype=torch.float32), 20)
    st = fit(m, data, torch.as_tensor(split.origins("train")), torch.as_tensor(split.origins("val")),
             FitSettings(epochs=60, patience=3, min_delta=0.0, lr=0.02, ema_decay=0.0), on_epoch=on_epoch)
    assert st.stopped_early and st.epoch < 60
    assert st.best_epoch == int(np.argmin(st.history["val_loss"])) + 1
    assert st.epoch - st.best_epoch == 3
    best = snapshots[st.best_epoch]
    assert all(torch.equal(best[k], v_) for k, v_ in weights(m).items())


def test_training_never_sees_the_test_range(sine_split):
    v, split = sine_split
    changed = v.copy()
    first_test_target = split.series[0].test[0] + split.seq_length
    last_val_target = split.series[0].val[1] - 1 + split.seq_length
    assert last_val_target < first_test_target
    changed[last_val_target + 1 :] = 1e6  # only values after the last validation target
    cfg = FitSettings(epochs=2, patience=0)
    m1, s1 = train_model(v, split, MODEL, cfg, CPU)
    m2, s2 = train_model(changed, split, MODEL, cfg, CPU)
    assert s1.history == s2.history
    assert all(torch.equal(a, b) for a, b in zip(weights(m1).values(), weights(m2).values()))


def test_resume_from_checkpoint_gives_identical_weights():
    v = series(noise=0.05)
    split = split_for(v)
    model_cfg = NetworkSpec(hidden_size=8, num_layers=2, dropout=0.2)  # dropout: RNG state matters
    cfg = FitSettings(epochs=6, patience=0, checkpoint_every=2)
    full, s_full = train_model(v, split, model_cfg, cfg, CPU)

    saved = []
    train_model(v, split, model_cfg, dataclasses.replace(cfg, epochs=6), CPU,
                checkpoint=lambda blob: saved.append(blob))
    at_epoch_4 = next(b for b in saved if b["state"]["epoch"] == 4)
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    resumed, s_res = train_model(v, split, model_cfg, cfg, CPU, resume=at_epoch_4)
    assert s_res.history == s_full.history
    assert all(torch.equal(a, b) for a, b in zip(weights(full).values(), weights(resumed).values()))


def test_nan_loss_stops_with_the_epoch_named():
    v = series()
    v[5] = np.inf  # one bad value in the training range poisons the first epoch's loss
    with pytest.raises(TrainingDiverged, match="at epoch 1"):
        train_model(v, split_for(v), MODEL, FitSettings(epochs=3, patience=0), CPU)


def test_every_cell_trains_and_loss_falls(sine_split):
    v, split = sine_split
    for cell in ("rnn", "gru", "lstm"):
        _, st = train_model(v, split, NetworkSpec(cell=cell, hidden_size=8), FitSettings(epochs=4, patience=0), CPU)
        assert st.history["train_loss"][-1] < st.history["train_loss"][0]
        assert all(math.isfinite(x) for x in st.history["val_loss"])


def test_weight_average_is_what_is_validated_and_kept():
    v = series(noise=0.1)
    split = split_for(v)
    torch.manual_seed(0)
    m = Forecaster(hidden_size=8)
    data = SeriesData(torch.as_tensor(v, dtype=torch.float32), 20)
    val = torch.as_tensor(split.origins("val"))
    st = fit(m, data, torch.as_tensor(split.origins("train")), val,
             FitSettings(epochs=4, patience=0, ema_decay=0.9))
    # the returned weights are the best epoch's average, whose val loss was recorded
    assert mse_on(m, data, val) == pytest.approx(st.best_val, rel=1e-6)
    assert st.best_val == min(st.history["val_loss"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_step_matches_the_plain_step():
    v = series(n=400)
    split = split_for(v)
    cuda = torch.device("cuda")
    # batch 48 leaves a short last batch, which the graph pads with zero weights
    cfg = FitSettings(epochs=5, patience=0, batch_size=48)
    _, plain = train_model(v, split, MODEL, dataclasses.replace(cfg, cuda_graphs=False), cuda)
    _, graph = train_model(v, split, MODEL, dataclasses.replace(cfg, cuda_graphs=True), cuda)
    np.testing.assert_allclose(graph.history["train_loss"], plain.history["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(graph.history["val_loss"], plain.history["val_loss"], rtol=1e-4)


def test_models_built_side_by_side_in_threads_get_the_weights_they_get_alone(monkeypatch):
    """Sweep members on the local runner train in threads of one process, and torch's RNG is
    global: seeding and drawing the initial weights must be one step, or members interleave."""
    import threading
    import time

    from tasks.components import fit
    from tasks.components.specs import NetworkSpec

    real = fit.build_model

    def slow_build(spec):  # draws, yields the GIL to the other thread, draws again
        first = torch.rand(3)
        time.sleep(0.05)
        model = real(spec)
        with torch.no_grad():
            next(model.parameters()).view(-1)[:3] += first
        return model

    monkeypatch.setattr(fit, "build_model", slow_build)
    spec = NetworkSpec(hidden_size=4)
    alone = fit.seeded_model(spec, 7, torch.device("cpu")).state_dict()
    built: dict[int, dict] = {}
    start = threading.Barrier(2)

    def member(k: int, seed: int) -> None:
        start.wait()
        built[k] = fit.seeded_model(spec, seed, torch.device("cpu")).state_dict()

    threads = [threading.Thread(target=member, args=(k, seed)) for k, seed in enumerate((7, 8))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(alone[k], built[0][k]) for k in alone)


def test_epoch_lines_name_the_model_so_parallel_members_can_be_told_apart():
    from tasks.components.fit import FitState
    from tasks.components.specs import NetworkSpec
    from tasks.config import TrainConfig
    from tasks.train import model_label, progress_reporter

    assert model_label(NetworkSpec(cell="gru", hidden_size=32, skip_lag=12), 24, 43) == "gru-32 L24 skip12 seed 43"
    assert model_label(NetworkSpec(cell="gru", hidden_size=32, skip_lag=1), 24, 43) == "gru-32 L24 skip1 seed 43"
    label = model_label(NetworkSpec(cell="gru", hidden_size=32), 24, 43)
    assert label == "gru-32 L24 seed 43"
    on_epoch = progress_reporter(TrainConfig(epochs=2, log_every=1), label)
    st = FitState(history={"train_loss": [0.5], "val_loss": [0.25]})
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # the "tasks" loggers may not propagate (Prefect's logging config)
    logger = logging.getLogger("tasks.train")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        on_epoch(1, st)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert [r.getMessage() for r in records] == ["gru-32 L24 seed 43: epoch 1/2  train 5.000e-01  val 2.500e-01"]


def _adam_run(make, steps: int = 30, decay_at: int = 15):
    """Weights and optimiser state after `steps` Adam steps of a GRU with a head and a parameter
    that never gets a gradient; the learning rate halved in place at `decay_at` (as a plateau does)."""
    torch.manual_seed(0)
    gru, head, unused = torch.nn.GRU(2, 16, batch_first=True), torch.nn.Linear(16, 1), torch.nn.Linear(3, 3)
    params = [*gru.parameters(), *head.parameters(), *unused.parameters()]
    opt = make(params)
    g = torch.Generator().manual_seed(1)
    for t in range(steps):
        if t == decay_at:
            opt.param_groups[0]["lr"] *= 0.5
        loss = head(gru(torch.randn(8, 5, 2, generator=g))[0][:, -1]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return params, opt


def test_fused_adam_is_torchs_fused_adam_to_the_bit_and_shares_its_checkpoint_format():
    from tasks.components.steps import FusedAdam

    ours, ours_opt = _adam_run(lambda p: FusedAdam(p, lr=1e-2))
    theirs, theirs_opt = _adam_run(lambda p: torch.optim.Adam(p, lr=1e-2, fused=True))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    a, b = ours_opt.state_dict(), theirs_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert sorted(a["state"]) == sorted(b["state"]) and len(a["state"]) == len(ours) - 2  # `unused` has none
    for i, state in a["state"].items():
        assert state.keys() == b["state"][i].keys()
        assert all(torch.equal(v, b["state"][i][k]) and v.dtype == b["state"][i][k].dtype for k, v in state.items())
    # a checkpoint of either resumes in the other: ten more steps from each give the same bits
    for blob, other in ((b, lambda p: FusedAdam(p, lr=1.0)), (a, lambda p: torch.optim.Adam(p, lr=1.0, fused=True))):
        resumed = []
        for make in (other, lambda p: torch.optim.Adam(p, lr=1.0, fused=True)):
            params = [p.detach().clone().requires_grad_(True) for p in ours]
            opt = make(params)
            opt.load_state_dict(copy.deepcopy(blob))  # torch's Adam steps a loaded state's tensors in place
            for _ in range(10):
                opt.zero_grad(set_to_none=True)
                (params[0].sum() ** 2 + params[-3].pow(2).sum()).backward()
                opt.step()
            resumed.append(params)
        assert all(torch.equal(x, y) for x, y in zip(*resumed))
    with pytest.raises(ValueError, match="parameter"):
        FusedAdam(ours[:3], lr=1e-2).load_state_dict(a)
