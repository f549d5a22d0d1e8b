"""generate: series.parquet, the long frame of every series, with its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SERIES_FILE = "series.parquet"
_META_KEY = b"rnnflow"


def write_series(directory: Path, df: pd.DataFrame, meta: dict) -> Path:
    """series.parquet from a long frame, `meta` in the key-value metadata; returns the file.

    series_id is stored as plain `string` (pandas 3 would otherwise give `large_string`).
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.set_column(0, "series_id", table.column("series_id").cast(pa.string()))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()})
    path = Path(directory) / SERIES_FILE
    pq.write_table(table, str(path))
    return path


def read_series(directory: Path, columns: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """The long frame of a generate entry (only `columns` when given) and its metadata (source,
    frequency, season_length, params: the file's column names, ...)."""
    table = pq.read_table(str(Path(directory) / SERIES_FILE), columns=columns)
    meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    return table.to_pandas(), meta


def read_series_schema(directory: Path) -> tuple[list[str], dict]:
    """The column names of series.parquet and its metadata, without reading any values."""
    schema = pq.read_schema(str(Path(directory) / SERIES_FILE))
    return list(schema.names), json.loads((schema.metadata or {}).get(_META_KEY, b"{}"))
