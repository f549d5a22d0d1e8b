"""Stream a user's series source in bounded batches: a CSV file, a Parquet file, or a directory
(dataset) of Parquet files. Nothing here holds more than one batch of rows.

CSV cells are read as text, split by the delimiter the file uses (`,`, `;`, tab or `|`, sniffed);
validation parses them later, row by row, with messages that name the row. Parquet keeps its
column types. Every problem is an InputError naming --data-path or
the column option.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from tasks.components.ingest import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    SINGLE_SERIES_ID,
    _check_column,
    _parse_ids,
    sniff_delimiter,
)
from tasks.errors import InputError

BATCH_ROWS = 262_144


def source_kind(path: str | Path) -> str:
    """"csv" or "parquet" (a file, or a directory of Parquet files); InputError otherwise."""
    p, shown = Path(path), str(path)
    if not p.exists():
        raise InputError("data_path", shown, "file not found")
    if p.is_dir():
        if not any(q.suffix.lower() in PARQUET_SUFFIXES for q in p.rglob("*") if q.is_file()):
            raise InputError("data_path", shown, "a directory without .parquet files")
        return "parquet"
    suffix = p.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise InputError("data_path", shown, f"unknown file type {suffix or '(none)'!r}; expected .csv, .txt, .parquet "
                     "or .pq (or a directory of Parquet files)")


def _dataset(path: str | Path) -> ds.Dataset:
    try:
        return ds.dataset(str(path), format="parquet")
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise InputError("data_path", str(path), "cannot read Parquet: " + " ".join(str(exc).split())[:200]) from None


def parquet_rows(path: str | Path) -> int:
    """Rows of a Parquet file or directory, read from the footers (no values are read)."""
    return int(_dataset(path).count_rows())


def source_columns(path: str | Path) -> list[str]:
    """The column names of a source (a CSV's header, a Parquet schema)."""
    if source_kind(path) == "parquet":
        return list(_dataset(path).schema.names)
    try:
        return [str(c) for c in pd.read_csv(path, dtype=str, nrows=0, skipinitialspace=True,
                                            sep=sniff_delimiter(Path(path))).columns]
    except pd.errors.EmptyDataError:
        raise InputError("data_path", str(path), "empty file") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError("data_path", str(path), "cannot read file: " + " ".join(str(exc).split())[:200]) from None


def check_columns(path: str | Path, **columns: str | None) -> list[str]:
    """The named columns ({option field: column or None}) that exist in the source, in order; an
    InputError (with the closest name) for one that does not."""
    header = pd.DataFrame(columns=source_columns(path))
    wanted = []
    for field, name in columns.items():
        if name is not None:
            _check_column(header, field, name)
            wanted.append(name)
    return list(dict.fromkeys(wanted))


def scan(path: str | Path, columns: list[str], batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """The source's `columns`, `batch_rows` rows at a time, in file order (InputError if it has none)."""
    empty = True
    if source_kind(path) == "parquet":
        for batch in _dataset(path).to_batches(columns=columns, batch_size=batch_rows):
            if batch.num_rows:
                empty = False
                yield batch.to_pandas()
    else:
        try:
            reader = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, usecols=columns,
                                 chunksize=batch_rows, sep=sniff_delimiter(Path(path)))
            for chunk in reader:
                if len(chunk):
                    empty = False
                    yield chunk[columns]
        except pd.errors.EmptyDataError:
            raise InputError("data_path", str(path), "empty file") from None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise InputError("data_path", str(path), "cannot read file: " + " ".join(str(exc).split())[:200]) from None
    if empty:
        raise InputError("data_path", str(path), "no rows")


def batches(path: str | Path, columns: list[str], batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """`scan`, as Arrow tables (Parquet batches as they are; CSV text columns as strings)."""
    if source_kind(path) == "parquet":
        empty = True
        for batch in _dataset(path).to_batches(columns=columns, batch_size=batch_rows):
            if batch.num_rows:
                empty = False
                yield pa.Table.from_batches([batch])
        if empty:
            raise InputError("data_path", str(path), "no rows")
    else:
        for chunk in scan(path, columns, batch_rows):
            yield pa.Table.from_pandas(chunk, preserve_index=False)


def id_text(column: pa.ChunkedArray | pa.Array, name: str, first_row: int = 1) -> pa.Array:
    """Series ids as validation sees them: text without surrounding white space (integral numbers
    without a decimal point). InputError naming the rows (`first_row` is the batch's first row,
    1-based) where an id is missing."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_floating(arr.type):
        finite = pc.drop_null(arr)
        if len(finite) and pc.all(pc.equal(pc.floor(finite), finite)).as_py():
            arr = arr.cast(pa.int64())
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    text = pc.utf8_trim_whitespace(arr if pa.types.is_string(arr.type) else arr.cast(pa.string()))
    missing = pc.or_kleene(pc.is_null(text), pc.equal(text, "")).fill_null(True)
    if pc.any(missing).as_py():
        rows = first_row + np.flatnonzero(missing.to_numpy(zero_copy_only=False))
        shown = ", ".join(str(r) for r in rows[:5]) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
        raise InputError("id_column", name, f"missing ids in row{'s' * (len(rows) != 1)} {shown}")
    return text


def series_ids(batch: pd.DataFrame, id_column: str | None) -> pd.Series:
    """Each row's series id exactly as validation will see it (text, stripped; one id without an
    id column), so that all rows of a series land in the same bucket."""
    return pd.Series(_parse_ids(batch.reset_index(drop=True), id_column), index=batch.index, dtype=object)


def encoded_ids(column: pa.ChunkedArray | pa.Array, name: str, first_row: int = 1) -> tuple[pa.Array, np.ndarray]:
    """A batch's ids as (distinct ids as validation sees them, (n_distinct,) string; each row's
    index into them, (n_rows,) int64). Cleaning (`id_text`) runs once per distinct raw value, so a
    batch of many rows of few series costs one hash pass; InputError as `id_text`."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_floating(arr.type) or pa.types.is_dictionary(arr.type):
        text = id_text(arr, name, first_row)  # float ids are cleaned by what the whole batch holds
        arr = text
    codes = pc.dictionary_encode(arr)
    try:
        if codes.null_count:
            raise InputError("id_column", name, "missing ids")
        uniques = id_text(codes.dictionary, name, first_row)
    except InputError:
        id_text(arr, name, first_row)  # the same refusal, naming the batch's rows
        raise
    return uniques, codes.indices.to_numpy(zero_copy_only=False).astype(np.int64)


def distinct_ids(path: str | Path, id_column: str | None, batch_rows: int = BATCH_ROWS) -> list[str]:
    """Every distinct series id of a source (as validation sees them), in order of first appearance."""
    if id_column is None:
        return [SINGLE_SERIES_ID]
    seen: dict[str, None] = {}
    row = 1
    for table in batches(path, [id_column], batch_rows):
        uniques, _ = encoded_ids(table.column(0), id_column, row)
        seen.update(dict.fromkeys(uniques.to_pylist()))
        row += table.num_rows
    return list(seen)
