import numpy as np
import pyarrow.parquet as pq

from tasks.components.synthetic import sine_frame, sine_values
from tasks.config import DataConfig, SineComponent
from tasks.formats.series import SERIES_FILE, read_series, write_series


def generate_values(cfg: DataConfig) -> np.ndarray:
    """What the generate stage computes from a DataConfig."""
    return sine_values(**cfg.model_dump())


def test_default_is_the_tutorial_sine_exactly():
    x = np.linspace(0, 10 * np.pi, 1020)
    assert np.array_equal(generate_values(DataConfig()), np.sin(x))
    assert np.array_equal(sine_values(), np.sin(x))


def test_options_change_the_series_as_documented():
    base = DataConfig(n_points=200)
    x = np.linspace(0, base.x_max, 200)
    trended = generate_values(base.model_copy(update={"trend": 0.5}))
    np.testing.assert_allclose(trended - generate_values(base), 0.5 * x)
    two = generate_values(base.model_copy(update={"components": (SineComponent(amplitude=2, period=3.0),)}))
    np.testing.assert_allclose(two - generate_values(base), 2 * np.sin(x * 2 * np.pi / 3.0))
    scaled = generate_values(base.model_copy(update={"amplitude": 3.0, "period": 4.0}))
    np.testing.assert_allclose(scaled, 3 * np.sin(x * 2 * np.pi / 4.0))


def test_noise_is_seeded():
    a = generate_values(DataConfig(noise=0.1, seed=1))
    b = generate_values(DataConfig(noise=0.1, seed=1))
    c = generate_values(DataConfig(noise=0.1, seed=2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.05 < np.std(a - generate_values(DataConfig())) < 0.15


def test_parquet_layout_and_metadata_round_trip(tmp_path):
    df = sine_frame(sine_values(n_points=50))
    write_series(tmp_path, df, {"source": "generate", "params": {"n_points": 50}})
    schema = pq.read_schema(tmp_path / SERIES_FILE)
    assert [(f.name, str(f.type)) for f in schema] == [
        ("series_id", "string"), ("step", "int64"), ("value", "double")
    ]
    back, meta = read_series(tmp_path)
    assert meta["params"] == {"n_points": 50}
    assert back["step"].tolist() == list(range(50))
    np.testing.assert_array_equal(back["value"].to_numpy(), df["value"].to_numpy())
