import pytest
import torch

from tasks.components.network import Forecaster, resolve_device
from tasks.components.specs import NetworkSpec
from tasks.components.split import Scaler
from tasks.errors import InputError
from tasks.formats.ensemble import load_model_file
from tasks.formats.model import ModelFile, load_model, save_model


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_output_shape(cell, layers):
    m = Forecaster(cell=cell, hidden_size=8, num_layers=layers, dropout=0.1, n_outputs=3)
    assert m(torch.randn(5, 20, 1)).shape == (5, 3)
    assert isinstance(m.rnn, {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell])


def test_device_resolution_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    assert resolve_device("cpu").type == "cpu"
    for name in ("cuda", "mps"):
        with pytest.raises(InputError) as err:
            resolve_device(name)
        assert err.value.field == "device" and err.value.value == name


def test_save_and_load_weights_only(tmp_path):
    spec = NetworkSpec(cell="gru", hidden_size=4, n_outputs=3, skip_lag=2)
    m = Forecaster(**spec.as_dict())
    record = ModelFile(spec, seq_length=20, horizon=3, strategy="direct", normalize="standard",
                       scalers=(Scaler(1.0, 2.0),), trained={"epochs_run": 5, "threads": 1})
    save_model(tmp_path, m, record)
    back, meta = load_model(tmp_path)
    x = torch.randn(2, 20, 1)
    assert torch.equal(back(x), m.eval()(x)) and meta == record
    assert meta.network.n_outputs == 3 and meta.horizon == 3  # the head's width and the horizon, each named


def test_a_model_file_written_before_the_typed_record_still_loads(tmp_path):
    m = Forecaster(cell="gru", hidden_size=4)
    spec = {"cell": "gru", "hidden_size": 4, "num_layers": 1, "dropout": 0.0, "horizon": 1}  # head width as "horizon"
    torch.save({"state_dict": m.state_dict(), "model": spec, "seq_length": 20, "epochs_run": 7,
                "scaler": [{"mean": 0.5, "std": 2.0, "fit_range": [0, 10]}], "normalize": "standard"}, tmp_path / "m.pt")
    back, meta = load_model_file(tmp_path / "m.pt")
    x = torch.randn(2, 20, 1)
    assert torch.equal(back(x), m.eval()(x)) and meta.seq_length == 20
    assert meta.network.n_outputs == 1 and meta.scalers == (Scaler(0.5, 2.0),) and meta.trained["epochs_run"] == 7
