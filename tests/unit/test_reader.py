"""The one reader of every source (issue 22): CSV (compressed too), Parquet file, Parquet dataset;
columns resolved unambiguously or refused in one line naming the option, the file, the row."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.components import scan, series_ids
from tasks.components.ingest import prepare_series
from tasks.components.scan import read_table
from tasks.config import DataConfig
from tasks.errors import InputError
from tasks.formats.series import read_bucket
from tasks.generate import check_frame, partition_file
from tasks.runtime.store import EntryWriter

MONTHS = pd.date_range("2016-01-01", periods=48, freq="MS")
VALUES = 100 + 10 * np.sin(np.arange(48) * 2 * np.pi / 12)


def monthly() -> pd.DataFrame:
    return pd.DataFrame({"month": MONTHS, "sales": VALUES})


def csv_text(sep: str = ",", trailing: str = "") -> str:
    rows = [f"month{sep}sales"] + [f"{t:%Y-%m-%d}{sep}{v:.4f}{trailing}" for t, v in zip(MONTHS, VALUES)]
    return "\n".join(rows) + "\n"


def prep(df: pd.DataFrame, **kw):
    return prepare_series(df, time_column="month", value_column="sales", **kw)


def refused(field: str, *fragments: str):
    class Expect:
        def __enter__(self):
            return self

        def __exit__(self, kind, err, tb):
            assert kind is InputError, f"expected an InputError, got {kind}"
            assert err.field == field, str(err)
            for f in fragments:
                assert f in str(err), (f, str(err))
            assert "\n" not in str(err)
            return True

    return Expect()


# --------------------------------------------------------------------------- CSV


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_a_trailing_delimiter_on_every_data_row_is_read_as_the_header_says(tmp_path, sep):
    path = tmp_path / "trailing.csv"
    path.write_text(csv_text(sep, trailing=sep))
    long, info = prep(read_table(path))
    assert info["frequency"] == "MS" and np.allclose(long["value"], VALUES, atol=1e-4)
    assert scan.check_columns(path, time_column="month", value_column="sales") == ["month", "sales"]
    table = pa.concat_tables(scan.batches(path, ["month", "sales"]))
    assert table.column("month").to_pylist()[0] == "2016-01-01"  # not shifted by one


def test_a_value_past_the_header_is_refused_naming_its_row(tmp_path):
    text = csv_text(trailing=",").splitlines()
    text[5] = text[5] + "7"  # data row 5: "2016-05-01,108.6603,7"
    path = tmp_path / "extra.csv"
    path.write_text("\n".join(text) + "\n")
    with refused("data_path", "row 5 has a value past the header's 2 columns (month, sales): '7'"):
        read_table(path)
    text = csv_text().splitlines()
    text[40] = text[40] + ",9"  # no trailing delimiter elsewhere: a field more than any other row
    path.write_text("\n".join(text) + "\n")
    with refused("data_path", "row 40 has a value past the header's 2 columns", "'9'"):
        read_table(path)
    # past the sniffed sample (64 KiB): pandas reads the rows, the same refusals
    many = ["month,sales"] + [f"{d:%Y-%m-%d},{i}," for i, d in enumerate(pd.date_range("1700-01-01", periods=6000))]
    many[5000] += "x"
    path.write_text("\n".join(many) + "\n")
    with refused("data_path", "row 5000 has a value past the header's 2 columns", "'x'"):
        read_table(path)
    many = [m.rstrip(",x") for m in many[:-1]] + [many[-1] + "5"]  # now only the last row has a third field
    path.write_text("\n".join(many) + "\n")
    with refused("data_path", "line 6001 has 3 fields but the header names 2 columns"):
        read_table(path)


@pytest.mark.parametrize("sep", [",", ";"])
def test_duplicate_column_names_are_refused_naming_both_positions(tmp_path, sep):
    rows = [f"month{sep}sales{sep}sales"] + [f"{t:%Y-%m-%d}{sep}{v:.2f}{sep}{i}" for i, (t, v) in
                                             enumerate(zip(MONTHS, VALUES))]
    path = tmp_path / "dup.csv"
    path.write_text("\n".join(rows) + "\n")
    with refused("value_column", "columns 2 and 3", "rename one"):
        prep(read_table(path))
    with refused("value_column", "columns 2 and 3"):
        scan.check_columns(path, time_column="month", value_column="sales")
    # a duplicated column the run does not read is no ambiguity
    rows = [f"month{sep}sales{sep}note{sep}note"] + [f"{t:%Y-%m-%d}{sep}{v:.2f}{sep}a{sep}b" for t, v in
                                                     zip(MONTHS, VALUES)]
    path.write_text("\n".join(rows) + "\n")
    assert prep(read_table(path))[1]["frequency"] == "MS"
    assert scan.check_columns(path, time_column="month", value_column="sales") == ["month", "sales"]
    # nor is a column named like pandas' renaming of a duplicate
    rows = ["month,sales,sales.1"] + [f"{t:%Y-%m-%d},1,{v:.2f}" for t, v in zip(MONTHS, VALUES)]
    path.write_text("\n".join(rows) + "\n")
    long, _ = prepare_series(read_table(path), time_column="month", value_column="sales.1")
    assert np.allclose(long["value"], VALUES, atol=0.01)


@pytest.mark.parametrize("suffix, opener", [(".csv.gz", gzip.open), (".csv.bz2", bz2.open), (".csv.xz", lzma.open),
                                            (".csv.zip", None)])
def test_compressed_csv_is_read_like_plain_csv(tmp_path, suffix, opener):
    path = tmp_path / f"sales{suffix}"
    text = csv_text(";", trailing=";").encode()
    if opener is None:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("sales.csv", text)
    else:
        with opener(path, "wb") as fh:
            fh.write(text)
    long, info = prep(read_table(path))
    assert info["frequency"] == "MS" and len(long) == 48
    assert [t.num_rows for t in scan.batches(path, ["sales"])] == [48]


def test_a_compressed_file_that_is_not_csv_is_refused(tmp_path):
    path = tmp_path / "sales.parquet.gz"
    path.write_bytes(gzip.compress(b"x"))
    with refused("data_path", "compressed CSV"):
        scan.source_kind(path)


# --------------------------------------------------------------------------- Parquet


@pytest.mark.parametrize("name", ["month", None])
def test_a_pandas_index_in_parquet_is_read_as_the_column_it_is(tmp_path, name):
    path = tmp_path / "indexed.parquet"
    pd.DataFrame({"sales": VALUES}, index=pd.Index(MONTHS, name=name)).to_parquet(path)
    column = name or "index"
    assert scan.source_columns(path) == ["sales", column]
    long, info = prepare_series(read_table(path), time_column=column, value_column="sales")
    assert info["frequency"] == "MS" and long["timestamp"].iloc[0] == MONTHS[0]
    assert scan.check_columns(path, time_column=column, value_column="sales") == [column, "sales"]
    table = pa.concat_tables(scan.batches(path, [column, "sales"]))
    assert table.column_names == [column, "sales"] and table.num_rows == 48


def test_duplicate_names_in_a_parquet_file_are_refused_naming_both_positions(tmp_path):
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array(MONTHS), pa.array(VALUES), pa.array(VALUES * 2)],
                            names=["month", "sales", "sales"]), path)
    with refused("value_column", "columns 2 and 3"):
        scan.check_columns(path, time_column="month", value_column="sales")
    with refused("value_column", "columns 2 and 3"):
        prep(read_table(path))


def dataset(tmp_path: Path, parts: list[pd.DataFrame]) -> Path:
    root = tmp_path / "ds"
    root.mkdir()
    for i, part in enumerate(parts):
        part.to_parquet(root / f"part-{i}.parquet", index=False)
    (root / "_SUCCESS").write_text("")  # a writer's marker: not data
    return root


def thirds() -> list[pd.DataFrame]:
    df = monthly()
    return [df.iloc[:16].copy(), df.iloc[16:32].copy(), df.iloc[32:].copy()]


def test_a_dataset_file_without_a_column_is_refused_naming_file_and_column_before_any_row(tmp_path):
    parts = thirds()
    parts[1] = parts[1].rename(columns={"sales": "revenue"})
    root = dataset(tmp_path, parts)
    with refused("value_column", "part-1.parquet", "no column 'sales'", "month, revenue", "part-0.parquet"):
        scan.check_columns(root, time_column="month", value_column="sales")
    with refused("data_path", "part-1.parquet", "no column 'sales'"):  # before the first batch of rows
        next(scan.batches(root, ["month", "sales"]))
    cfg = DataConfig(data_path=str(root), time_column="month", value_column="sales", fill="interpolate")
    with refused("value_column", "part-1.parquet", "'sales'"):  # --fill or not: nothing is filled or staged
        partition_file(EntryWriter(tmp_path / "entry", "generate", "k"), cfg)


def test_a_dataset_file_storing_numbers_as_text_is_parsed_and_its_bad_cell_named_by_file_and_row(tmp_path):
    parts = thirds()
    parts[2]["sales"] = parts[2]["sales"].map(lambda x: f"{x:.4f}").astype(object)
    parts[2].iloc[5, 1] = "n/a"
    root = dataset(tmp_path, parts)
    df = read_table(root)
    with refused("value_column", "row 6 of part-2.parquet", "--fill"):
        prep(df)
    long, info = prep(read_table(root), fill="interpolate")
    assert info["filled"] == 1 and np.isclose(long["value"].iloc[37], (VALUES[36] + VALUES[38]) / 2, atol=1e-3)
    parts[2].iloc[5, 1] = "12,5"  # not a number at all
    (tmp_path / "b").mkdir()
    root2 = dataset(tmp_path / "b", parts)
    with refused("value_column", "row 6 of part-2.parquet", "'12,5'"):
        prep(read_table(root2))
    # the run's own path: staged into buckets, validated bucket by bucket, the same refusal
    cfg = DataConfig(data_path=str(root2), time_column="month", value_column="sales")
    w = EntryWriter(tmp_path / "entry", "generate", "k")
    partition_file(w, cfg)
    files = [tuple(f) for f in json.loads(w.path(scan.FILES_NOTE).read_text())["files"]]
    with refused("value_column", "row 6 of part-2.parquet", "'12,5'"):
        check_frame(read_bucket(w.dir, 0), cfg, files=files)


def test_a_dataset_with_integers_in_one_file_and_floats_in_another_is_read_as_floats(tmp_path):
    parts = thirds()
    parts[0]["sales"] = parts[0]["sales"].round().astype(np.int64)
    root = dataset(tmp_path, parts)
    long, info = prep(read_table(root))
    assert len(long) == 48 and long["value"].iloc[0] == round(VALUES[0]) and long["value"].iloc[20] == VALUES[20]
    assert {t.schema.field("sales").type for t in scan.batches(root, ["month", "sales"])} == {pa.float64()}


def test_a_file_in_a_dataset_that_is_not_parquet_is_refused_naming_it(tmp_path):
    root = dataset(tmp_path, thirds())
    (root / "notes.txt").write_text("not data")
    with refused("data_path", "notes.txt"):
        scan.open_source(root)


def test_a_hive_partitioned_dataset_reads_its_keys_as_columns(tmp_path):
    """store=a/part-0.parquet, store=b%2Fc/part-0.parquet: the key is a column of every row of its files."""
    root = tmp_path / "hive"
    for store in ("a", "b/c"):
        d = root / f"store={store.replace('/', '%2F')}"
        d.mkdir(parents=True)
        monthly().to_parquet(d / "part-0.parquet", index=False)
    assert scan.source_columns(root) == ["month", "sales", "store"]
    long, info = prepare_series(read_table(root), time_column="month", value_column="sales", id_column="store")
    assert info["lengths"] == {"a": 48, "b/c": 48}
    assert series_ids.distinct_ids(root, "store") == ["a", "b/c"]
    (root / "part-9.parquet").write_bytes((root / "store=a" / "part-0.parquet").read_bytes())  # a file with no key
    with refused("id_column", "part-9.parquet", "no column 'store'"):
        scan.check_columns(root, time_column="month", value_column="sales", id_column="store")
