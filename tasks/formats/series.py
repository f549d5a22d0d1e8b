"""generate: the series, partitioned into hash buckets of series_id.

    generate entry   buckets/00000.arrow ...     the source's rows, unvalidated, one Arrow IPC file
                                                  per bucket (rows of one series are all in one file;
                                                  a staging format: written and read ~10x faster
                                                  than Parquet, LZ4-compressed)
    ingest entry     series.parquet               one bucket's series, validated: long format
    (one per bucket)                              series_id (string), step (int64), value (float64)
                                                  [, timestamp], sorted by series and time; source,
                                                  parameters and calendar in the key-value metadata
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

SERIES_FILE = "series.parquet"
BUCKETS_DIR = "buckets"
_META_KEY = b"rnnflow"


def bucket_file(bucket: int) -> str:
    """The raw file of bucket `bucket` within a generate entry."""
    return f"{BUCKETS_DIR}/{bucket:05d}.arrow"


class BucketWriter:
    """Appends row batches to one Arrow IPC file per bucket, opening each file on its first rows.

    Every file gets the schema of the first batch written (with series_id as plain string);
    buckets that receive no rows get an empty file of that schema when closed.
    """

    OPTIONS = ipc.IpcWriteOptions(compression="lz4")

    def __init__(self, directory: Path, n_buckets: int) -> None:
        self.directory, self.n_buckets = Path(directory), n_buckets
        (self.directory / BUCKETS_DIR).mkdir(parents=True, exist_ok=True)
        self.writers: dict[int, tuple[pa.OSFile, ipc.RecordBatchFileWriter]] = {}
        self.schema: pa.Schema | None = None
        self.rows = [0] * n_buckets
        self.done: set[int] = set()

    def write(self, bucket: int, frame: pd.DataFrame) -> None:
        self.write_table(bucket, pa.Table.from_pandas(frame, preserve_index=False))

    def write_table(self, bucket: int, table: pa.Table) -> None:
        table = _with_string_ids(table)
        if self.schema is None:
            self.schema = table.schema
        if bucket not in self.writers:
            self.writers[bucket] = self._open(bucket)
        self.writers[bucket][1].write_table(table.cast(self.schema))
        self.rows[bucket] += table.num_rows

    def _open(self, bucket: int) -> tuple[pa.OSFile, ipc.RecordBatchFileWriter]:
        sink = pa.OSFile(str(self.directory / bucket_file(bucket)), "wb")
        return sink, ipc.new_file(sink, self.schema, options=self.OPTIONS)

    def finish(self, bucket: int) -> None:
        """Close one bucket's file now (it takes no more rows): many buckets, few open files."""
        sink, writer = self.writers[bucket]
        writer.close()
        sink.close()
        self.done.add(bucket)

    def close(self) -> list[int]:
        """Close every file (empty ones for buckets without rows); rows per bucket."""
        if self.schema is not None:
            for b in range(self.n_buckets):
                if b not in self.writers:
                    self.writers[b] = self._open(b)
        for b, (sink, writer) in self.writers.items():
            if b not in self.done:
                writer.close()
                sink.close()
        return self.rows


def read_bucket(directory: Path, bucket: int) -> pd.DataFrame:
    """The raw rows of one bucket of a generate entry."""
    with pa.OSFile(str(Path(directory) / bucket_file(bucket)), "rb") as source:
        return ipc.open_file(source).read_all().to_pandas()


def _with_string_ids(table: pa.Table) -> pa.Table:
    """series_id as plain `string` (pandas 3 would otherwise give `large_string`)."""
    if "series_id" not in table.column_names:
        return table
    i = table.column_names.index("series_id")
    return table.set_column(i, "series_id", table.column(i).cast(pa.string()))


def write_series(directory: Path, df: pd.DataFrame, meta: dict) -> Path:
    """series.parquet from a long frame, `meta` in the key-value metadata; returns the file."""
    table = _with_string_ids(pa.Table.from_pandas(df, preserve_index=False))
    meta_json = json.dumps(meta, allow_nan=False).encode()  # strict JSON, as every file of a run
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: meta_json})
    path = Path(directory) / SERIES_FILE
    pq.write_table(table, str(path))
    return path


def read_series(directory: Path, columns: list[str] | None = None,
                series: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """The long frame of an ingest entry (only `columns`, only the rows of `series`, when given) and
    its metadata (source, frequency, season_length, params: the file's column names, ...)."""
    filters = [("series_id", "in", list(series))] if series is not None else None
    table = pq.read_table(str(Path(directory) / SERIES_FILE), columns=columns, filters=filters)
    meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    return table.to_pandas(), meta


def read_series_schema(directory: Path) -> tuple[list[str], dict]:
    """The column names of series.parquet and its metadata, without reading any values."""
    schema = pq.read_schema(str(Path(directory) / SERIES_FILE))
    return list(schema.names), json.loads((schema.metadata or {}).get(_META_KEY, b"{}"))
