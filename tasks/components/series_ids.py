"""Series ids as validation sees them: text, stripped (integral numbers without a decimal point),
one id for a source without an id column; per batch encoded once per distinct raw value, and every
distinct id of a source, read by the one reader (tasks/components/scan.py). What the generate
stage hashes series into buckets by.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tasks.components.ingest import SINGLE_SERIES_ID, _parse_ids
from tasks.components.scan import BATCH_ROWS, Source, batches
from tasks.errors import InputError


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


def distinct_ids(path: str | Path | Source, id_column: str | None, batch_rows: int = BATCH_ROWS) -> list[str]:
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
