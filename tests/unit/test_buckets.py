"""Many series: stable buckets, streamed ingestion, the global model's sampling and streaming,
combined scores, grids and failure drills."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tasks.components import series_ids
from tasks.components.aggregate import aggregate, series_metrics
from tasks.components.backtest import backtest
from tasks.components.baselines import series_scales
from tasks.components.buckets import bucket_count, buckets_of, stable_hash
from tasks.components.fit import epoch_origins, fit, train_buckets, train_model
from tasks.components.network import Forecaster
from tasks.components.series_data import series_data
from tasks.components.specs import FitSettings, NetworkSpec
from tasks.components.split import build_split, concat_splits
from tasks.components.synthetic import panel_ids, panel_values, sine_values
from tasks.config import DataConfig, PipelineConfig
from tasks.errors import InputError
from tasks.formats.series import read_bucket
from tasks.generate import load_source, partition_file, series_groups
from tasks.runtime import faults
from tasks.runtime.store import EntryWriter
from tests.helpers import split_for

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


def test_the_bucket_of_a_series_is_the_same_in_every_process():
    ids = [f"store-{i}" for i in range(50)]
    here = [stable_hash(i) % 7 for i in ids]
    code = "from tasks.components.buckets import stable_hash; print([stable_hash(f'store-{i}') % 7 for i in range(50)])"
    other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": ""})  # another salt for hash(): no effect
    assert other.stdout.strip() == str(here)
    assert bucket_count(1, 1000) == 1 and bucket_count(2500, 1000) == 3 and bucket_count(0, 10) == 1
    table = buckets_of(ids, 7)
    assert set(table) == set(ids) and set(table.values()) <= set(range(7)) and len(set(table.values())) > 3


def write_panel(path: Path, n_series: int = 12, n_points: int = 30, parquet: bool = False) -> pd.DataFrame:
    dates = pd.date_range("2021-01-01", periods=n_points, freq="D").strftime("%Y-%m-%d")
    df = pd.concat([pd.DataFrame({"shop": f" s{i:02d} ", "day": dates, "sales": np.arange(n_points) + 100.0 * i})
                    for i in range(n_series)], ignore_index=True).sample(frac=1.0, random_state=0)  # rows shuffled
    if parquet:
        path.mkdir()
        for k in range(3):
            part = df.iloc[k * len(df) // 3:(k + 1) * len(df) // 3]
            pq.write_table(pa.Table.from_pandas(part, preserve_index=False), path / f"part-{k}.parquet")
    else:
        df.to_csv(path, index=False)
    return df


@pytest.mark.parametrize("parquet", [False, True])
def test_a_source_is_streamed_into_buckets_holding_whole_series(tmp_path, parquet):
    path = tmp_path / ("dataset" if parquet else "panel.csv")
    write_panel(path, parquet=parquet)
    cfg = DataConfig(data_path=str(path), time_column="day", value_column="sales", id_column="shop",
                     series_per_bucket=4)
    w = EntryWriter(tmp_path / "out", "generate", "k")
    meta = partition_file(w, cfg)
    assert meta["n_buckets"] == 3 and meta["n_series"] == 12 and sum(meta["rows"]) == 360
    seen = []
    for b in range(3):
        part = read_bucket(w.dir, b)
        ids = set(part["shop"])
        assert all(buckets_of(ids, 3)[i] == b for i in ids)  # every row of a series in its one bucket
        seen += sorted(ids)
    assert sorted(seen) == [f"s{i:02d}" for i in range(12)]  # ids as validation reads them (stripped)


def test_a_semicolon_csv_is_streamed_into_buckets_as_a_comma_one(tmp_path):
    write_panel(tmp_path / "comma.csv")
    (tmp_path / "semi.csv").write_text((tmp_path / "comma.csv").read_text().replace(",", ";"))
    parts = {}
    for name in ("comma", "semi"):
        cfg = DataConfig(data_path=str(tmp_path / f"{name}.csv"), time_column="day", value_column="sales",
                         id_column="shop", series_per_bucket=4)
        w = EntryWriter(tmp_path / name, "generate", "k")
        assert partition_file(w, cfg)["n_series"] == 12
        parts[name] = [read_bucket(w.dir, b) for b in range(3)]
    for a, b in zip(parts["comma"], parts["semi"]):
        pd.testing.assert_frame_equal(a, b)


def test_a_missing_id_is_refused_naming_the_row(tmp_path):
    df = write_panel(tmp_path / "p.csv", n_series=3)
    df.iloc[4, 0] = ""
    df.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(InputError, match="missing ids in row 5"):
        series_ids.distinct_ids(tmp_path / "p.csv", "shop")



def test_errors_found_in_a_bucket_name_the_rows_of_the_users_file(tmp_path):
    """A staged bucket holds rows from all over the file: a refusal must name the file's rows."""
    from tasks.generate import check_frame
    from tasks.formats.series import read_bucket

    df = write_panel(tmp_path / "p.csv")  # 12 shuffled series, 360 rows
    df = pd.concat([df, df.iloc[[7]]], ignore_index=True)  # file rows 8 and 361: the same shop and day
    df["sales"] = df["sales"].astype(object)
    df.loc[20, "sales"] = "lots"  # file row 21
    df.to_csv(tmp_path / "p.csv", index=False)
    cfg = DataConfig(data_path=str(tmp_path / "p.csv"), time_column="day", value_column="sales", id_column="shop",
                     series_per_bucket=4)
    w = EntryWriter(tmp_path / "out", "generate", "k")
    partition_file(w, cfg)
    found = []
    for b in range(3):
        try:
            check_frame(read_bucket(w.dir, b), cfg)
        except InputError as err:
            found.append(str(err))
    assert any("duplicate times in series 's" in f and "(rows 8, 361)" in f for f in found), found
    assert any("non-numeric values in row 21 ('lots')" in f for f in found), found

def test_a_generated_panel_starts_with_the_tutorials_sine():
    assert panel_ids(1) == ["sine"] and panel_ids(3) == ["sine-00000", "sine-00001", "sine-00002"]
    assert np.array_equal(panel_values(0, n_points=50), sine_values(n_points=50))
    a, b = panel_values(1, n_points=50, seed=3), panel_values(1, n_points=50, seed=3)
    assert np.array_equal(a, b) and not np.allclose(a, panel_values(2, n_points=50, seed=3))
    df, meta = load_source(DataConfig(n_series=3, n_points=40))
    assert df["series_id"].nunique() == 3 and meta["n_series"] == 3


def test_groups_come_from_the_group_column_and_a_series_has_one(tmp_path):
    frame = pd.DataFrame({"item": ["a", "a", "b"], "store": ["x", "x ", "y"], "t": [1, 2, 1], "v": [1.0, 2, 3]})
    cfg = DataConfig(data_path="f.csv", time_column="t", value_column="v", id_column="item", group_column="store")
    assert series_groups(frame, cfg) == {"a": "x", "b": "y"}
    with pytest.raises(InputError, match="series 'a' is in more than one group"):
        series_groups(frame.assign(store=["x", "z", "y"]), cfg)


def test_splits_of_buckets_concatenate_and_subset():
    a, b = np.arange(50.0), np.arange(60.0) + 100
    sa = build_split([50], ["a"], 5).with_scalers(a)
    sb = build_split([30, 30], ["b", "c"], 5, groups=["g1", "g2"]).with_scalers(b)
    values, split = concat_splits([(a, sa), (b, sb)])
    assert len(values) == 110 and split.series == build_split([50, 30, 30], ["a", "b", "c"], 5,
                                                             groups=[None, "g1", "g2"]).series
    assert [s.series_id for s in sb.subset("g2").series] == ["c"] and sb.groups == ["g1", "g2"]


def test_an_epoch_samples_series_first_then_windows():
    starts, counts = torch.tensor([0, 1000]), torch.tensor([900, 10])  # a long and a short series
    gen = torch.Generator().manual_seed(0)
    origins = epoch_origins(torch.arange(910), gen, (starts, counts))
    short = (origins >= 1000).float().mean().item()
    assert abs(short - 0.5) < 0.05  # each series drawn about half the time, whatever its length
    assert ((origins < 900) | ((origins >= 1000) & (origins < 1010))).all()
    gen = torch.Generator().manual_seed(0)
    assert sorted(epoch_origins(torch.arange(10), gen).tolist()) == list(range(10))  # one series: a permutation


def test_streaming_buckets_trains_one_model_loading_one_bucket_at_a_time():
    values = [panel_values(i, n_points=120) for i in range(4)]
    splits = [build_split([120], [f"s{i}"], 10).with_scalers(v) for i, v in enumerate(values)]
    loads = []

    def loader(i):
        def load():
            loads.append(i)
            return values[i]
        return load

    settings = FitSettings(epochs=3, patience=0, lr=1e-2)
    model, st = train_buckets([(loader(i), sp) for i, sp in enumerate(splits)], NetworkSpec(hidden_size=8),
                              settings, CPU)
    assert st.epoch == 3 and st.history["train_loss"][-1] < st.history["train_loss"][0]
    assert len(loads) == 3 * 4 * 2  # each epoch: every bucket once to train, once to validate
    reads = []

    def reader(sp):
        return lambda: reads.append(sp) or sp

    _, lazy = train_buckets([(loader(i), reader(sp)) for i, sp in enumerate(splits)], NetworkSpec(hidden_size=8),
                            settings, CPU)
    assert lazy.history == st.history  # a split read at each visit trains the same model
    assert len(reads) == 4 + 3 * 4 * 2  # once for its counts, then at every visit: none is held in between
    one, st1 = train_buckets([(lambda: values[0], splits[0])], NetworkSpec(hidden_size=8), settings, CPU)
    ref, st2 = train_model(values[0], splits[0], NetworkSpec(hidden_size=8), settings, CPU)
    assert st1.history == st2.history  # one bucket is the plain single-part loop, exactly


def test_fit_with_a_step_cap_runs_that_many_batches():
    v = sine_values(n_points=400)
    split = split_for(v)
    data = series_data(v, split)
    steps = []
    model = Forecaster(hidden_size=4)
    fit(model, data, torch.as_tensor(split.origins("train")), torch.as_tensor(split.origins("val")),
        FitSettings(epochs=1, patience=0, batch_size=8, steps_per_epoch=5),
        on_epoch=lambda e, st: steps.append(st.epoch))
    assert steps == [1]


def test_combined_buckets_score_like_all_series_together():
    values = [panel_values(i, n_points=100, noise=0.1) + 5 for i in range(4)]
    model = Forecaster(hidden_size=4).eval()
    whole_v, whole = concat_splits([(v, build_split([100], [f"s{i}"], 8, 3).with_scalers(v))
                                    for i, v in enumerate(values)])
    df, result = backtest(model, whole_v, whole, levels=(0.8,), season_length=7)
    parts = [backtest(model, v, build_split([100], [f"s{i}"], 8, 3).with_scalers(v), levels=(0.8,),
                      season_length=7)[1] for i, v in enumerate(values)]
    combined = aggregate(parts)
    for name in ("model", "naive", "seasonal_naive"):
        for metric in ("mse", "mae", "mase", "smape"):
            assert combined["metrics"][name][metric] == pytest.approx(result["metrics"][name][metric], rel=1e-9)
    assert combined["n_test"] == result["n_test"] and combined["n_buckets"] == 4
    assert combined["gate"]["passed"] == result["gate"]["passed"]
    by = series_metrics(df, dict(zip(whole.ids, series_scales(whole_v, whole))))
    assert len(by) == 4 and (by["n"] == result["n_test"] // 4 * 3).all()
    assert by["model_mse"].mean() == pytest.approx(result["metrics"]["model"]["mse"], rel=1e-9)



def test_the_combined_by_series_table_is_every_bucket_in_order_written_one_at_a_time(tmp_path):
    from tasks.formats.scores import append_by_series, read_by_series, write_scores

    rng = np.random.default_rng(0)
    frames = []
    for b in range(3):
        k = 4 + b
        frame = pd.DataFrame({"series_id": [f"s{b}-{i}" for i in range(k)], "n": np.full(k, 10),
                              "model_mase": rng.uniform(0.5, 2, k), "naive_mase": np.ones(k)})
        frame.loc[0, "model_mase"] = np.nan  # an undefined MASE stays a missing float
        (tmp_path / f"b{b}").mkdir()
        write_scores(tmp_path / f"b{b}", None, {}, frame)
        frames.append(frame.assign(bucket=b))
    (tmp_path / "all").mkdir()
    kept = append_by_series(tmp_path / "all", [tmp_path / f"b{b}" for b in range(3)], keep=("series_id", "model_mase"))
    expected = pd.concat(frames, ignore_index=True)
    pd.testing.assert_frame_equal(read_by_series(tmp_path / "all"), expected)
    pd.testing.assert_frame_equal(kept, expected[["series_id", "model_mase"]])
    (tmp_path / "odd").mkdir()
    write_scores(tmp_path / "odd", None, {}, frames[0].drop(columns=["bucket", "naive_mase"]))
    (tmp_path / "x").mkdir()
    with pytest.raises(ValueError):  # a bucket with other columns is refused, not silently mixed
        append_by_series(tmp_path / "x", [tmp_path / "b0", tmp_path / "odd"], keep=("series_id",))

def test_grid_members_are_the_product_and_bad_ones_are_one_line():
    from flows.options import grid_members

    members = grid_members(PipelineConfig(), ["cell=rnn,gru", "hidden_size=8,16", "seq_length=12"], None)
    assert members == [{"model.cell": c, "model.hidden_size": h, "window.seq_length": "12"}
                       for c in ("rnn", "gru") for h in ("8", "16")]
    with pytest.raises(InputError, match="not a setting"):
        grid_members(PipelineConfig(), ["colour=red"], None)
    with pytest.raises(InputError) as err:
        grid_members(PipelineConfig(), ["hidden_size=0"], None)
    assert err.value.field == "grid" and "hidden_size" in str(err.value.value)


def test_a_failure_drill_fails_only_the_entries_it_names():
    params = {"model": {"cell": "gru", "hidden_size": 8}, "train": {"lr": 0.01}}
    faults.check("train", params, "")
    faults.check("train", params, "train:model.cell=rnn")
    faults.check("window", params, "train:model.cell=gru")
    with pytest.raises(faults.InjectedFault):
        faults.check("train", params, "train:model.cell=gru,model.hidden_size=8")
    with pytest.raises(faults.InjectedFault):
        faults.check("train", params, "train:")
