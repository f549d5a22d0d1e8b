"""6. Peers: darts and neuralforecast on the default task, against our run of section 2 (b).

Same series, same 20-point windows, hidden size 64, batch 32, Adam 1e-3, MSE, seed 42, as many
epochs as section 2 (b) gave the tutorial, one CPU thread: training time and the test MSE on
the same 200 one-step test targets. A peer that is not installed (benchmarks/requirements.txt)
or whose API has drifted is reported as such; the benchmark carries on.
"""

from __future__ import annotations

import importlib.util
import logging
import time
import warnings

import numpy as np
import torch

from benchmarks.sections.common import L, fmt_s, fmt_x, print_lines, print_table, project_split, ratio
from tasks.components.metrics import mse
from tasks.components.synthetic import sine_values


def run(epochs: int, ours: dict) -> dict:
    """darts / neuralforecast on the same task with one CPU thread, where installed (benchmarks/requirements.txt).

    ours: {"train_s", "test_mse"} of our default run in section 2, for the ratio columns."""
    out, rows = {}, []
    values = sine_values()
    test = project_split(values).origins("test") + L
    torch.set_num_threads(1)
    for name, runner in (("darts", _run_darts), ("neuralforecast", _run_neuralforecast)):
        if importlib.util.find_spec(name) is None:
            out[name] = "not installed"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t, pred = runner(values, int(test[0]), epochs)
        except Exception as exc:  # a peer's API drift must not sink the benchmark
            out[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
            continue
        r = out[name] = {"train_s": t, "test_mse": mse(values[test], pred), "epochs": epochs}
        rows += [(f"{name}: training time", fmt_s(ours["train_s"]), fmt_s(t), fmt_x(ratio(t, ours["train_s"]))),
                 (f"{name}: test MSE", f"{ours['test_mse']:.2e}", f"{r['test_mse']:.2e}", fmt_x(ratio(r["test_mse"], ours["test_mse"])))]
    missing = [f"{k}: {v}" for k, v in out.items() if isinstance(v, str)]
    if not rows:
        print_lines("6. peers", missing)
        return out
    print_table(f"6. peers on the default task ({epochs} epochs, batch 32, 1 thread)", ("ours", "peer"), rows, missing + [
        "ours: the (b) run of section 2; darts: BlockRNNModel(RNN, 64), MSE; neuralforecast: RNN(64) with its MLP "
        "decoder, MSE, 32 windows a step; its time includes the 200 test forecasts"])
    return out


def _quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)  # after their import, which sets INFO


def _run_darts(values, test_start: int, epochs: int):
    from darts import TimeSeries
    from darts.models import BlockRNNModel

    _quiet_lightning()
    series = TimeSeries.from_values(values.astype(np.float32))
    model = BlockRNNModel(input_chunk_length=L, output_chunk_length=1, model="RNN", hidden_dim=64, n_rnn_layers=1,
                          batch_size=32, n_epochs=epochs, optimizer_kwargs={"lr": 1e-3}, random_state=42,
                          pl_trainer_kwargs={"accelerator": "cpu", "enable_progress_bar": False, "logger": False,
                                             "enable_model_summary": False})
    t = time.perf_counter()
    model.fit(series[:test_start])
    t = time.perf_counter() - t
    fc = model.historical_forecasts(series, start=test_start, forecast_horizon=1, retrain=False, verbose=False)
    return t, fc.values()[:, 0].astype(np.float64)


def _run_neuralforecast(values, test_start: int, epochs: int):
    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.losses.pytorch import MSE
    from neuralforecast.models import RNN

    _quiet_lightning()
    df = pd.DataFrame({"unique_id": "sine", "ds": np.arange(len(values)), "y": values})
    model = RNN(h=1, input_size=L, encoder_hidden_size=64, encoder_n_layers=1, loss=MSE(), scaler_type="identity",
                max_steps=epochs * ((test_start - L) // 32), batch_size=1, windows_batch_size=32, learning_rate=1e-3,
                random_seed=42, accelerator="cpu", enable_progress_bar=False, logger=False, enable_model_summary=False)
    t = time.perf_counter()  # training and the test forecasts together: cross_validation does both
    cv = NeuralForecast(models=[model], freq=1).cross_validation(df, n_windows=len(values) - test_start, step_size=1, refit=False)
    return time.perf_counter() - t, cv["RNN"].to_numpy(np.float64)
