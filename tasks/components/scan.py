"""The one reader of a user's series source: a CSV file (compressed or not), a Parquet file, or a
directory (dataset) of Parquet files, streamed in bounded batches. Nothing here holds more than
one batch of rows; `read_all` is the whole of a small source, as the same reader reads it.

    open_source(path)        what the source is: its kind, its columns as rnnflow names them, its
                             files (a dataset's, in order) and, for CSV, delimiter and fields per row
    check_columns(path, ..)  the columns a run reads, each present exactly once in every file
    batches(path, columns)   their rows as Arrow tables, in file order, one type per column

Columns are resolved unambiguously, or refused in one line:

    duplicate names     two columns called 'sales': refused naming both positions (pandas would
                        keep one and rename the other 'sales.1')
    a pandas index      stored in a Parquet file as a column: read as the column it is (a named
                        index by its name, an unnamed one as 'index')
    trailing delimiter  data rows with one more, empty, field than the header ("2016-01-01,1.5,"):
                        read as the header says (pandas would shift every column by one)
    a dataset           every file holds every column read (a hive partition key, a directory
                        named key=value, is a column of its files' rows), checked on the files'
                        footers before any row is read: a file without one is refused naming it;
                        a column stored with different types in different files (numbers in
                        one, text with an 'n/a' in another) is read as text from every file and
                        parsed row by row by validation, whose refusals name the file and its row

CSV cells are read as text, split by the delimiter the file uses (`,`, `;`, tab or `|`, sniffed);
validation parses them later, row by row, with messages that name the row. Parquet keeps its
column types. Every problem is an InputError naming --data-path or the column option.

One concern, about 550 lines: one streaming reader for every kind of source (CSV dialects and
compressions, Parquet files and datasets, the columns resolved the same way in each); splitting
it would split that reader. Series ids as validation sees them: tasks/components/series_ids.py.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.components.ingest import _check_column
from tasks.errors import InputError

BATCH_ROWS = 262_144
CSV_SUFFIXES = frozenset({".csv", ".txt"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip", ".zst": "zstd"}
DELIMITERS = ",;\t|"
SAMPLE_BYTES = 65536
FILES_NOTE = "files.json"  # a generate entry's record of a dataset's files and their first rows
_INDEX_RE = re.compile(r"__index_level_(\d+)__")
_PARTITION_RE = re.compile(r"([^=]+)=(.*)")


@dataclass(frozen=True)
class Source:
    """What a source is, read from a CSV's first lines or the Parquet footers (no rows).

    names: every column as rnnflow names it, in file order (a Parquet file's unnamed pandas index
    as 'index'); stored: each one's name in the file(s); files: a dataset's files in order (the
    file itself otherwise); rows: each file's row count (Parquet; () for CSV); partitions: each
    file's hive partition keys (directories named key=value: columns of every row of the file);
    CSV: delimiter, compression (pandas' name or None) and `fields`, the fields of a data row (the
    header's plus any trailing empty ones).
    """

    path: str
    kind: str  # "csv" | "parquet"
    names: tuple[str, ...]
    stored: tuple[str, ...]
    files: tuple[str, ...]
    rows: tuple[int, ...] = ()
    delimiter: str = ","
    compression: str | None = None
    fields: int = 0
    partitions: tuple[tuple[tuple[str, str | None], ...], ...] = ()  # each file's hive keys: ((key, value), ...)

    @property
    def dataset(self) -> bool:
        """A directory of Parquet files."""
        return Path(self.path).is_dir()

    def file_name(self, i: int) -> str:
        """File i as a message names it: its path within the dataset (the source itself for a file)."""
        return str(Path(self.files[i]).relative_to(self.path)) if self.dataset else self.path

    def first_rows(self) -> list[int]:
        """The 1-based row, counted over the whole source, at which each file starts."""
        return [1, *(1 + np.cumsum(self.rows[:-1], dtype=np.int64)).tolist()] if self.rows else [1]


# --------------------------------------------------------------------------- what a source is


def source_kind(path: str | Path) -> str:
    """"csv" or "parquet" (a file, or a directory of Parquet files); InputError otherwise."""
    p, shown = Path(path), str(path)
    if not p.exists():
        raise InputError("data_path", shown, "file not found")
    if p.is_dir():
        if not any(q.suffix.lower() in PARQUET_SUFFIXES for q in p.rglob("*") if q.is_file()):
            raise InputError("data_path", shown, "a directory without .parquet files")
        return "parquet"
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] in COMPRESSIONS:
        suffixes = suffixes[:-1]
        if suffixes and suffixes[-1] in CSV_SUFFIXES:
            return "csv"
        raise InputError("data_path", shown, f"a compressed {suffixes[-1] if suffixes else 'file'!r}; expected a "
                         f"compressed CSV ({', '.join('.csv' + c for c in COMPRESSIONS)})")
    suffix = p.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise InputError("data_path", shown, f"unknown file type {suffix or '(none)'!r}; expected .csv, .txt, .parquet "
                     "or .pq (a CSV may be compressed: .csv.gz, .csv.zip, ...), or a directory of Parquet files")


def open_source(path: str | Path) -> Source:
    """The Source of `path` (InputError for anything that cannot be read as one)."""
    if source_kind(path) == "parquet":
        return _parquet_source(path)
    return _csv_source(path)


def compression_of(path: str | Path) -> str | None:
    """pandas' name of a CSV's compression from its suffix (None: plain text)."""
    return COMPRESSIONS.get(Path(path).suffix.lower())


def _read_text(path: Path, compression: str | None, size: int) -> str:
    """The first `size` characters of a CSV file's (decompressed) text, BOM dropped, undecodable
    bytes replaced (a sample: pandas reads the file itself)."""
    def head(binary) -> str:
        with io.TextIOWrapper(binary, encoding="utf-8-sig", errors="replace", newline="") as text:
            return text.read(size)

    if compression == "zip":
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise InputError("data_path", str(path), f"a zip archive holding {len(names)} files; expected one CSV")
            return head(archive.open(names[0]))
    if compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise InputError("data_path", str(path), "reading .zst needs the zstandard package (pip install "
                             "zstandard), or decompress the file") from None
        return head(zstandard.open(path, "rb"))
    opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}.get(compression, open)
    return head(opener(path, "rb"))


def _csv_sample(path: Path, compression: str | None) -> str:
    """The first SAMPLE_BYTES of text, without a last line cut short."""
    try:
        sample = _read_text(path, compression, SAMPLE_BYTES)
    except (OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise InputError("data_path", str(path), "cannot read file: " + " ".join(str(exc).split())[:200]) from None
    lines = sample.splitlines(keepends=True)
    if len(lines) > 1 and len(sample) == SAMPLE_BYTES:
        sample = "".join(lines[:-1])
    return sample


def sniff_delimiter(path: Path, sample: str | None = None) -> str:
    """The delimiter of a CSV file: `,` unless its header and first rows are consistently split by
    one of `;`, tab or `|` (csv.Sniffer), as in many European exports. Rows ending in a delimiter
    (an empty last field) count as split consistently."""
    if sample is None:
        sample = _csv_sample(Path(path), compression_of(path))
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        pass
    for delimiter in DELIMITERS:  # the Sniffer wants every line equally long: trailing delimiters fail it
        try:
            rows = [_trimmed(r) for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if r]
        except csv.Error:
            continue
        if rows and len(rows[0]) > 1 and all(len(r) == len(rows[0]) for r in rows[:100]):
            return delimiter
    return ","


def _trimmed(row: list[str]) -> list[str]:
    """A row without its trailing empty fields."""
    end = len(row)
    while end > 1 and not row[end - 1].strip():
        end -= 1
    return row[:end]


def _csv_source(path: str | Path) -> Source:
    p = Path(path)
    compression = compression_of(p)
    sample = _csv_sample(p, compression)
    delimiter = sniff_delimiter(p, sample)
    try:
        rows = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter, skipinitialspace=True) if r]
    except csv.Error:
        rows = []  # a quote left open in the sample: pandas says where
    if not rows:
        if not sample.strip():
            raise InputError("data_path", str(path), "empty file")
        first = next(line for line in sample.splitlines() if line.strip())
        try:
            rows = [next(csv.reader([first], delimiter=delimiter, skipinitialspace=True), [first])]
        except csv.Error:
            rows = [first.split(delimiter)]
    header = rows[0]
    fields = len(header)
    for i, row in enumerate(rows[1:], start=1):  # trailing delimiters: more fields than the header, all empty
        if len(row) > len(header) and any(x.strip() for x in row[len(header):]):
            extra = next(x for x in row[len(header):] if x.strip())
            raise InputError("data_path", str(path), f"row {i} has a value past the header's {len(header)} columns "
                             f"({_listed(header)}): {extra[:20]!r}")
        fields = max(fields, len(row))
    names = tuple(str(h) for h in header)
    return Source(str(path), "csv", names, names, (str(path),), delimiter=delimiter, compression=compression,
                  fields=fields)


def _listed(names, limit: int = 8) -> str:
    shown = [n if n.isprintable() else repr(n) for n in map(str, names)]
    return ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


def _display_names(stored: list[str]) -> list[str]:
    """Column names as rnnflow shows them: a pandas index stored as __index_level_N__ is 'index'
    (alone) or 'level_N' (as pandas' reset_index names them), unless a column already has that name."""
    levels = [n for n in stored if _INDEX_RE.fullmatch(n)]
    out = []
    for n in stored:
        m = _INDEX_RE.fullmatch(n)
        name = n if m is None else ("index" if len(levels) == 1 else f"level_{m[1]}")
        out.append(n if m is not None and name in stored else name)
    return out


def _parquet_files(path: Path) -> list[Path]:
    """A dataset's files in path order: every file but hidden ones ('.' or '_' first: _SUCCESS,
    .crc files), each of which must be Parquet."""
    if path.is_file():
        return [path]
    files = sorted(q for q in path.rglob("*") if q.is_file()
                   and not any(part.startswith((".", "_")) for part in q.relative_to(path).parts))
    return files


def _schema(path: Path, shown: str) -> pa.Schema:
    try:
        return pq.read_schema(str(path))
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise InputError("data_path", shown, "cannot read Parquet: " + " ".join(str(exc).split())[:200]) from None


def _partitions(root: Path, file: Path) -> tuple[tuple[str, str | None], ...]:
    """A dataset file's hive partition keys: its directories named key=value, in order (URL-decoded,
    as Hive and Spark write them; __HIVE_DEFAULT_PARTITION__ is a missing value)."""
    if not root.is_dir():
        return ()
    keys = []
    for part in file.relative_to(root).parts[:-1]:
        if m := _PARTITION_RE.fullmatch(part):
            value = unquote(m[2])
            keys.append((unquote(m[1]), None if value == "__HIVE_DEFAULT_PARTITION__" else value))
    return tuple(keys)


def _file_columns(source: Source, i: int) -> list[tuple[str, str | None, pa.DataType]]:
    """File i's columns as (name as rnnflow shows it, name stored in the file or None for a
    partition key, type), read from its footer."""
    schema = _schema(Path(source.files[i]), f"{source.path} ({source.file_name(i)})")
    out = [(n, s, schema.field(j).type) for j, (n, s) in enumerate(zip(_display_names(list(schema.names)),
                                                                       schema.names))]
    keys = source.partitions[i] if source.partitions else ()
    return out + [(k, None, pa.string()) for k, _ in keys if k not in schema.names]


def _parquet_source(path: str | Path) -> Source:
    p = Path(path)
    files = _parquet_files(p)
    shown = [str(f.relative_to(p)) if p.is_dir() else str(path) for f in files]
    schema = _schema(files[0], f"{path} ({shown[0]})" if p.is_dir() else str(path))
    partitions = tuple(_partitions(p, f) for f in files)
    stored = list(schema.names) + [k for k, _ in partitions[0] if k not in schema.names]
    rows = []
    for f, name in zip(files, shown):
        try:
            rows.append(int(pq.ParquetFile(str(f)).metadata.num_rows))
        except (OSError, ValueError, pa.ArrowInvalid) as exc:
            where = f"{name}: " if p.is_dir() else ""
            raise InputError("data_path", str(path), f"cannot read Parquet: {where}"
                             + " ".join(str(exc).split())[:200]) from None
    return Source(str(path), "parquet", tuple(_display_names(stored)), tuple(stored), tuple(map(str, files)),
                  tuple(rows), partitions=partitions)


def parquet_rows(path: str | Path) -> int:
    """Rows of a Parquet file or directory, read from the footers (no values are read)."""
    return sum(_parquet_source(path).rows)


def source_columns(path: str | Path) -> list[str]:
    """The column names of a source (a CSV's header, a Parquet schema; a pandas index as 'index')."""
    return list(open_source(path).names)


# --------------------------------------------------------------------------- resolving columns


def check_columns(path: str | Path | Source, **columns: str | None) -> list[str]:
    """The named columns ({option field: column or None}) that exist in the source, in order;
    InputError for one that does not (with the closest name), one that appears twice (naming
    both positions), and, in a dataset, one that a file lacks (naming the file)."""
    source = path if isinstance(path, Source) else open_source(path)
    header = pd.DataFrame(columns=list(source.names))
    wanted = []
    for field, name in columns.items():
        if name is not None:
            if name not in source.names and len(source.files) > 1:  # the first file lacks it: does another?
                owner = next((i for i in range(1, len(source.files))
                              if name in [c[0] for c in _file_columns(source, i)]), None)
                if owner is not None:
                    raise InputError(field, name, f"{source.file_name(0)} of the dataset {source.path} has no column "
                                     f"{name!r} (its columns: {_listed(source.names)}), which "
                                     f"{source.file_name(owner)} has: every file of a dataset needs the same columns")
            _check_column(header, field, name)
            wanted.append(name)
    wanted = list(dict.fromkeys(wanted))
    if source.kind == "parquet" and len(source.files) > 1:
        _column_types(source, wanted, columns)
    return wanted


def _column_types(source: Source, wanted: list[str], fields: dict[str, str | None]) -> dict[str, pa.DataType]:
    """The type each of `wanted` is read as from every file of a dataset: its type where the files
    agree (integers and floats: float64), else text. InputError naming the first file that lacks
    one, or stores it twice, before any row is read."""
    field_of = {name: field for field, name in fields.items() if name is not None}
    found: dict[str, list[pa.DataType]] = {n: [] for n in wanted}
    for i in range(len(source.files)):
        columns = _file_columns(source, i)
        names = [c[0] for c in columns]
        for n in wanted:
            count = names.count(n)
            if count != 1:
                where = (f"has no column {n!r} (its columns: {_listed(names)})" if count == 0 else
                         f"has {count} columns named {n!r} (positions "
                         f"{', '.join(str(j + 1) for j, x in enumerate(names) if x == n)})")
                field = field_of.get(n)
                raise InputError(field or "data_path", n if field else source.path,
                                 f"{source.file_name(i)} of the dataset {source.path} {where}, which "
                                 f"{source.file_name(0)} has: every file of a dataset needs the same columns")
            found[n].append(columns[names.index(n)][2])
    return {n: _common_type(types) for n, types in found.items()}


def _common_type(types: list[pa.DataType]) -> pa.DataType:
    """One type for a column stored as `types` in a dataset's files: theirs where they agree
    (nulls aside), float64 for numbers of several kinds, else text (validation parses it)."""
    plain = [t.value_type if pa.types.is_dictionary(t) else t for t in types]
    kinds = {t for t in plain if not pa.types.is_null(t)}
    if not kinds:
        return pa.null()
    if len(kinds) == 1:
        return kinds.pop()
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) for t in kinds):
        return pa.float64()
    return pa.string()


# --------------------------------------------------------------------------- reading rows


def batches(path: str | Path | Source, columns: list[str], batch_rows: int = BATCH_ROWS) -> Iterator[pa.Table]:
    """The source's `columns` (checked: check_columns), `batch_rows` rows at a time, in file order,
    as Arrow tables: Parquet with each column's type (one type over a dataset's files), CSV text
    as strings. InputError when the source has no rows."""
    source = path if isinstance(path, Source) else open_source(path)
    empty = True
    reader = _parquet_batches if source.kind == "parquet" else _csv_batches
    for table in reader(source, columns, batch_rows):
        if table.num_rows:
            empty = False
            yield table
    if empty:
        raise InputError("data_path", source.path, "no rows")


def _parquet_batches(source: Source, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
    types = _column_types(source, columns, {}) if len(source.files) > 1 else {}
    for i, f in enumerate(source.files):
        layout = {name: stored for name, stored, _ in _file_columns(source, i)}
        read = [c for c in columns if layout[c] is not None]
        keys = dict(source.partitions[i]) if source.partitions else {}
        try:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=[layout[c] for c in read]):
                table = pa.Table.from_batches([batch]).rename_columns(read)
                for c in columns:  # a partition key: the same value on every row of the file
                    if layout[c] is None:
                        table = table.append_column(c, pa.array([keys[c]] * table.num_rows, pa.string()))
                table = table.select(columns)
                if types:
                    table = _cast(table, types)
                yield table
        except (OSError, ValueError, pa.ArrowInvalid) as exc:
            raise InputError("data_path", source.path, f"cannot read Parquet ({source.file_name(i)}): "
                             + " ".join(str(exc).split())[:200]) from None


def _cast(table: pa.Table, types: dict[str, pa.DataType]) -> pa.Table:
    """Each column of `table` as its dataset-wide type (text where the files disagree)."""
    out = []
    for name, col in zip(table.column_names, table.columns):
        target = types[name]
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if col.type != target:
            col = col.cast(target) if not pa.types.is_null(target) else col
        out.append(col)
    return pa.table(out, names=table.column_names)


def _csv_frames(source: Source, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Every column of a CSV as text, `batch_rows` rows at a time, named by position ("0", "1", ...):
    the header's names may repeat. Fields past the header (trailing delimiters) must be empty."""
    names = [str(i) for i in range(source.fields)]
    try:
        with pd.read_csv(source.path, dtype=str, keep_default_na=False, skipinitialspace=True, header=0,
                         names=names, index_col=False, chunksize=batch_rows, sep=source.delimiter,
                         compression=source.compression, encoding="utf-8-sig") as reader:
            first = 1
            while (chunk := _next_chunk(reader)) is not None:
                extra = chunk.iloc[:, len(source.names):]
                if extra.shape[1]:
                    filled = (extra.fillna("").map(str.strip) != "").to_numpy().any(axis=1)
                    if filled.any():
                        i = int(np.argmax(filled))
                        extra = next(x for x in extra.iloc[i].fillna("") if str(x).strip())
                        raise InputError("data_path", source.path, f"row {first + i} has a value past the header's "
                                         f"{len(source.names)} columns ({_listed(source.names)}): {extra[:20]!r}")
                first += len(chunk)
                yield chunk.iloc[:, :len(source.names)]
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError("data_path", source.path, "empty file") from None
    except pd.errors.ParserWarning:  # a row with more fields than any row of the sample (its data would be lost)
        raise InputError("data_path", source.path, f"rows with more fields than the header names columns "
                         f"({_listed(source.names)})") from None
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        why = (f"line {m[2]} has {m[3]} fields but the header names {len(source.names)} columns "
               f"({_listed(source.names)})") if m else "cannot read file: " + " ".join(str(exc).split())[:200]
        raise InputError("data_path", source.path, why) from None
    except (OSError, ValueError, UnicodeDecodeError, EOFError, zipfile.BadZipFile, lzma.LZMAError) as exc:
        raise InputError("data_path", source.path, "cannot read file: " + " ".join(str(exc).split())[:200]) from None


def _next_chunk(reader) -> pd.DataFrame | None:
    """The reader's next chunk (None at the end), pandas' ParserWarning raised: with index_col=False
    it warns of a row whose extra fields it drops, a loss this reader refuses."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        return next(reader, None)


def _csv_batches(source: Source, columns: list[str], batch_rows: int) -> Iterator[pa.Table]:
    positions = [source.names.index(c) for c in columns]  # check_columns made them unique
    for chunk in _csv_frames(source, batch_rows):
        frame = chunk.iloc[:, positions]
        frame.columns = columns
        yield pa.Table.from_pandas(frame, preserve_index=False)


def scan(path: str | Path | Source, columns: list[str], batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """`batches` as pandas frames (Parquet with its types; CSV text)."""
    for table in batches(path, columns, batch_rows):
        yield table.to_pandas(ignore_metadata=True)


def read_table(path: str | Path) -> pd.DataFrame:
    """A whole (small) source as one frame, read by the one reader of every source
    (read_all): CSV (compressed too) as text, Parquet (a file or a dataset)
    with its types, a pandas index as the column it is; any problem is an InputError."""
    df = read_all(path)
    if df.shape[1] == 0:
        raise InputError("data_path", str(path), "no columns")
    if len(df) == 0:
        raise InputError("data_path", str(path), "no rows")
    return df


def read_all(path: str | Path) -> pd.DataFrame:
    """Every column and row of a (small) source, as the stages read it bucket by bucket: CSV as
    text ('' for an empty cell), Parquet with its types (a dataset's as `batches` unifies them),
    a pandas index as its column. A dataset's frame carries SOURCE_ROW, each row's place in the
    whole source, and in attrs["source_files"] the first row and name of each file, so that
    refusals name the file and its row."""
    from tasks.components.ingest import SOURCE_FILES, SOURCE_ROW

    source = open_source(path)
    if source.kind == "csv":
        frames = list(_csv_frames(source, BATCH_ROWS))
        if not frames or not sum(map(len, frames)):
            raise InputError("data_path", source.path, "no rows")
        df = pd.concat(frames, ignore_index=True)
        df.columns = list(source.names)
        return df
    names = list(dict.fromkeys(source.names))
    if len(names) != len(source.names):  # a name twice: read the first file as it is, check_column says which
        return _read_parquet_file(Path(source.files[0]), source)
    tables = list(batches(source, names))
    df = pa.concat_tables(tables).to_pandas(ignore_metadata=True)
    if source.dataset and len(source.files) > 1:
        df[SOURCE_ROW] = np.arange(1, len(df) + 1, dtype=np.int64)
        df.attrs[SOURCE_FILES] = list(zip(source.first_rows(), map(source.file_name, range(len(source.files)))))
    return df


def _read_parquet_file(path: Path, source: Source) -> pd.DataFrame:
    try:
        table = pq.ParquetFile(str(path)).read()
    except (OSError, ValueError, pa.ArrowInvalid) as exc:
        raise InputError("data_path", source.path, "cannot read Parquet: " + " ".join(str(exc).split())[:200]) from None
    df = table.to_pandas(ignore_metadata=True)
    df.columns = list(source.names)
    return df


# --------------------------------------------------------------------------- series ids


