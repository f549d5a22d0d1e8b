"""Every file people bring is forecast right (issue 22), as a property over generated files of each
shape (tests/helpers/shapes.py), through the command line in this process:

    exit 0   (or 3, when the summary says the model did not pass the baseline gate)
             a forecast in which every series' bands nest (lower_95 <= lower_80 <= forecast <=
             upper_80 <= upper_95), a series without negative values is forecast at 0 and above
             (bands too), a constant one forecasts itself, and every forecast stays within
             [min - span, max + span] of its history unless the summary says otherwise

The forecasts run the default search on tiny networks (2 epochs, 4 units, one seed): slow, so few
examples, each kind named once. The shapes refused in one line: tests/unit/test_shapes_refused.py.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings

from tests.helpers.cli import finished
from tests.helpers.shapes import FORECAST, TINY, make, run_cli, shapes


def check_forecast(shape, stdout: str) -> None:
    run_dir = Path([x for x in stdout.splitlines() if x.startswith("outputs: ")][-1].split("outputs: ", 1)[1])
    fc = pd.read_parquet(run_dir / "forecast.parquet")
    warned = "\n".join(x for x in stdout.splitlines() if x.startswith("forecast warning:"))
    assert set(fc["series_id"]) == set(shape.series)
    for sid, history in shape.series.items():
        f = fc[fc["series_id"] == sid].sort_values("lead")
        cols = [c for c in ("lower_95", "lower_80", "forecast", "upper_80", "upper_95") if c in f]
        bands = f[cols].to_numpy(float)
        ok = ~np.isnan(bands).any(axis=1)
        assert (np.diff(bands[ok], axis=1) >= 0).all(), (shape.kind, sid, f[cols])  # nested at every lead
        lo, hi = float(np.min(history)), float(np.max(history))
        span = hi - lo
        if span == 0:
            assert (f["forecast"] == lo).all(), (shape.kind, f["forecast"].tolist())  # a constant forecasts itself
        if lo >= 0:
            assert (bands[ok] >= 0).all() and (f["forecast"] >= 0).all(), (shape.kind, f[cols])
        inside = f["forecast"].between(lo - span - 1e-9 * max(1, abs(lo), abs(hi)), hi + span + 1e-9 * max(1, abs(hi)))
        assert inside.all() or repr(sid) in warned, (shape.kind, sid, f["forecast"].tolist(), lo, hi)


@pytest.mark.filterwarnings("error::RuntimeWarning:tasks")  # quiet: no numpy warning from our code either
@settings(max_examples=2, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(case=shapes(FORECAST))
@example(case=("constant", "MS", 72, 50.0, 1, 3))
@example(case=("zeros", "D", 150, 0.0, 2, 1))
@example(case=("late_start", "D", 150, 0.0, 3, 3))
@example(case=("intermittent", "h", 220, 0.0, 4, 3))
@example(case=("level", "D", 150, 0.0, 5, 3))
@example(case=("negative_season", "MS", 96, 0.0, 6, 3))
def test_a_file_of_every_shape_is_forecast_by_the_default_search_within_the_rules(capsys, case):
    kind, freq, n, level, seed, horizon = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shape = make(kind, root / "in", np.random.default_rng(seed), freq, n, level)
        code, out, err = run_cli(capsys, shape, root, horizon, TINY)
        assert finished(code, out), (kind, code, err.strip().splitlines()[-3:])  # 0, or 3: the gate did not pass
        assert "Traceback" not in out + err and "Logging error" not in err
        check_forecast(shape, out)


@pytest.mark.filterwarnings("error::RuntimeWarning:tasks")
@pytest.mark.parametrize("kind", ["trailing_delimiter", "parquet_index", "dayfirst", "dst_offsets", "mathtext_ids",
                                  "compressed", "dataset_text_filled", "seasonal"])
def test_each_readable_shape_is_forecast(capsys, tmp_path, kind):
    """Each kind the issue read wrong, once, with search off (its reading is the point here)."""
    shape = make(kind, tmp_path / "in", np.random.default_rng(7), "D", 150, 100.0)
    code, out, err = run_cli(capsys, shape, tmp_path, 3, [*TINY, "--search", "off"])
    assert finished(code, out), (kind, code, err.strip().splitlines()[-3:])
    check_forecast(shape, out)


def test_a_forecast_past_2262_is_refused_by_the_run_before_anything_is_trained(tmp_path):
    """A source too large for `check` to read whole is checked by the run itself, after ingestion
    and before training (the flow is called here without the command line's checks)."""
    from flows.rnn_flow import rnn_pipeline
    from tasks.errors import InputError
    from tests.helpers import tiny_config

    shape = make("past_2262", tmp_path / "in", np.random.default_rng(0), "MS", 72)
    cfg = tiny_config(tmp_path, data={"data_path": str(shape.path), "time_column": "date", "value_column": "sales"},
                      window={"horizon": 2, "seq_length": 12})
    with pytest.raises(InputError) as info:
        rnn_pipeline(config=cfg, until="forecast")
    assert info.value.field == "window.horizon" and "ends at 2262-04-01" in str(info.value)
    assert "no forecast past it fits" in str(info.value)
    assert not list((tmp_path / "artifacts").rglob("model.pt"))  # nothing trained
