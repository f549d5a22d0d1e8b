import pytest
import torch

from tasks.errors import InputError
from tasks.model import Forecaster, load_model, resolve_device


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_output_shape(cell, layers):
    m = Forecaster(cell=cell, hidden_size=8, num_layers=layers, dropout=0.1, horizon=3)
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
    m = Forecaster(cell="gru", hidden_size=4)
    spec = {"cell": "gru", "hidden_size": 4, "num_layers": 1, "dropout": 0.0, "horizon": 1}
    torch.save({"state_dict": m.state_dict(), "model": spec, "seq_length": 20}, tmp_path / "m.pt")
    back, meta = load_model(str(tmp_path / "m.pt"))
    x = torch.randn(2, 20, 1)
    assert torch.equal(back(x), m.eval()(x)) and meta["seq_length"] == 20
