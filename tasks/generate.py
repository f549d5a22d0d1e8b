"""Stage 1: the series, generated (the tutorial's sine by default) or ingested from a source,
partitioned into hash buckets of series_id so that every later stage can work bucket by bucket.

    generate   one entry: the source streamed into buckets/<b>.arrow (rows as read; bounded memory)
    ingest     one entry per bucket: its series validated and sorted (series.parquet), with its calendar

Both paths write the same layout (tasks/formats/series.py), so every later stage is the same for
generated and real data. A file's key is its content (`source_digest`), never its path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
from prefect import task

from tasks.components import ingest, scan, series_ids
from tasks.components.buckets import bucket_count, buckets_of
from tasks.components.calendar import check_forecast_range
from tasks.components.frequency import seasons_for
from tasks.components.synthetic import panel_ids, panel_values, sine_frame
from tasks.config import DataConfig
from tasks.errors import InputError
from tasks.formats import read_json, write_json
from tasks.formats.series import SERIES_FILE, BucketWriter, read_bucket, write_series
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

# where the file is, not what it holds: its content is keyed by `source_digest` instead
_NOT_KEYED = frozenset({"data_path"})
STAGE = StageSpec("generate", base="data", packages=("numpy", "pandas", "pyarrow"), run_only=_NOT_KEYED)
INGEST = StageSpec("ingest", base="data", phase="generate", packages=("numpy", "pandas", "pyarrow"),
                   run_only=_NOT_KEYED)
FILE_FIELDS = ("data_path", "time_column", "value_column", "id_column", "group_column", "fill", "fill_missing_dates",
               "time_zone", "holidays", "dayfirst")


def source_digest(cfg: DataConfig) -> str:
    """What the series is read from: sha256 of the data file's bytes (of every file, for a
    directory of Parquet files), or "generated"."""
    if cfg.data_path is None:
        return "generated"
    try:
        return store.sha256_path(cfg.data_path)
    except OSError as exc:
        raise InputError("data_path", cfg.data_path, f"cannot read file ({exc.strerror or exc})") from None


def generator_params(cfg: DataConfig) -> dict:
    """The generator's settings (the data section without the file fields)."""
    return cfg.model_dump(mode="json", exclude=set(FILE_FIELDS) | {"series_per_bucket", "n_series"})


def partition_generated(w: store.EntryWriter, cfg: DataConfig) -> dict:
    """Generate the panel bucket by bucket (one bucket of series in memory at a time, its file
    closed before the next one is made)."""
    ids = panel_ids(cfg.n_series)
    n_buckets = bucket_count(len(ids), cfg.series_per_bucket)
    where = buckets_of(ids, n_buckets)
    members: list[list[int]] = [[] for _ in range(n_buckets)]
    for i, sid in enumerate(ids):
        members[where[sid]].append(i)
    params = generator_params(cfg)
    writer = BucketWriter(w.dir, n_buckets)
    for b, index in enumerate(members):
        if index:
            values = [panel_values(i, **params) for i in index]
            lengths = [len(v) for v in values]
            writer.write(b, pd.DataFrame({
                "series_id": np.repeat(np.array([ids[i] for i in index], dtype=object), lengths),
                "step": np.concatenate([np.arange(n, dtype=np.int64) for n in lengths]),
                "value": np.concatenate(values).astype(np.float64),
            }))
            writer.finish(b)
    rows = writer.close()
    return {"source": "generate", "n_buckets": n_buckets, "n_series": len(ids), "rows": rows}


def partition_file(w: store.EntryWriter, cfg: DataConfig) -> dict:
    """Stream the source's columns into buckets, in Arrow batches: the ids first (one pass over the
    id column), then every row to its series' bucket (the id normalised as validation reads it)."""
    source = scan.open_source(cfg.data_path)
    columns = scan.check_columns(source, time_column=cfg.time_column, value_column=cfg.value_column,
                                 id_column=cfg.id_column, group_column=cfg.group_column)
    ids = series_ids.distinct_ids(source, cfg.id_column)
    n_buckets = bucket_count(len(ids), cfg.series_per_bucket)
    where = buckets_of(ids, n_buckets)
    if len(source.files) > 1:  # a dataset: refusals name each row's file (ingest_task reads this)
        write_json(w.path(scan.FILES_NOTE), {"files": [[first, source.file_name(i)] for i, first
                                                       in enumerate(source.first_rows())]})
    writer = BucketWriter(w.dir, n_buckets)
    row = 1
    for table in scan.batches(source, columns):
        table = table.append_column(ingest.SOURCE_ROW, pa.array(np.arange(row, row + table.num_rows, dtype=np.int64)))
        if cfg.id_column is None:
            writer.write_table(0, table)
        else:
            uniques, codes = series_ids.encoded_ids(table.column(cfg.id_column), cfg.id_column, row)
            text = uniques.take(pa.array(codes))
            table = table.set_column(table.column_names.index(cfg.id_column), cfg.id_column, text)
            lookup = np.array([where[u] for u in uniques.to_pylist()], dtype=np.int64)
            bucket = lookup[codes]
            order = np.argsort(bucket, kind="stable")  # rows keep their file order within a bucket
            cuts = np.flatnonzero(np.diff(bucket[order])) + 1
            for part in np.split(order, cuts):
                writer.write_table(int(bucket[part[0]]), table.take(pa.array(part)))
        row += table.num_rows
    rows = writer.close()
    log.info("generate: %s: %d series partitioned into %d bucket(s)", cfg.data_path, len(ids), n_buckets)
    return {"source": "file", "n_buckets": n_buckets, "n_series": len(ids), "rows": rows}


def season_words(seasons: tuple[int, ...]) -> str:
    """'season length 48; second season 336' (or 'no season')."""
    if not seasons:
        return "season length None"
    more = "".join(f"; further season {s}" for s in seasons[1:])
    return f"season length {seasons[0]}{more}"


@task(**stage_task(STAGE))
def generate_task(plan, data_cfg: DataConfig, source: str) -> dict:
    """Write the source into buckets/<b>.arrow; return the entry's StageRef.

    source: `source_digest(data_cfg)` as planned; a file that changed since is refused.
    """

    def compute(w: store.EntryWriter) -> dict:
        if source_digest(data_cfg) != source:
            raise InputError("data_path", data_cfg.data_path, "the file changed while the run started; run again")
        return partition_file(w, data_cfg) if data_cfg.data_path else partition_generated(w, data_cfg)

    return build(plan, compute)


def buckets(raw: store.StageRef | None) -> list[dict] | None:
    """One item per bucket of a generate entry, for `run.map`: [{"bucket": 0}, {"bucket": 1}, ...]."""
    if raw is None:
        return None
    return [{"bucket": b} for b in range(raw.manifest()["meta"]["n_buckets"])]


def check_frame(frame: pd.DataFrame, cfg: DataConfig, where: str = "", files: list | None = None
                ) -> tuple[pd.DataFrame, dict]:
    """Rows of series (a bucket, or a whole small source) as a checked long frame and its metadata.

    Generated rows are already clean; a file's rows go through ingest.prepare_series (InputError
    naming the column and the rows on bad data). The metadata holds the calendar (frequency,
    time_zone) and "shortest", the length of the shortest series; the seasons are decided over
    every bucket (`shared_calendar`). files: a dataset's [(first source row, file name)], so that
    refusals name the file and its row.
    """
    if cfg.data_path is None:
        return frame, {"source": "generate", "params": generator_params(cfg), "frequency": "1",
                       "n_series": int(frame["series_id"].nunique()),
                       "shortest": int(frame.groupby("series_id").size().min()) if len(frame) else 0}
    df, info = ingest.prepare_series(
        frame, time_column=cfg.time_column, value_column=cfg.value_column, id_column=cfg.id_column, fill=cfg.fill,
        fill_missing_dates=cfg.fill_missing_dates, time_zone=cfg.time_zone, holidays=cfg.holidays, files=files,
        dayfirst=cfg.dayfirst,
    )
    if cfg.group_column:
        groups = series_groups(frame, cfg)
        df = df.assign(group=df["series_id"].map(groups))
        info["groups"] = sorted(set(groups.values()))
    if found := info.get("zone_from_offsets"):
        log.info("the times carry UTC offsets %s, which follow the daylight saving of %s: read as local times there "
                 "(every zone with these offsets reads them alike; --time-zone names yours)",
                 ", ".join(found["offsets"]), found["zone"])
    if info.get("utc_offsets"):
        log.warning("the times carry UTC offsets %s: read as UTC instants; --time-zone names their zone",
                    ", ".join(info["utc_offsets"]))
    if info.get("added"):
        log.info("added %d missing dates on the %s calendar (--fill-missing-dates)", info["added"], info["frequency"])
    if info.get("filled"):
        log.info("filled %d missing values (%s)", info["filled"], cfg.fill)
    log.debug("read %s%s: %d series, inferred frequency %s", cfg.data_path, where, info["n_series"],
              info["frequency"])
    params = cfg.model_dump(mode="json", include=set(FILE_FIELDS) - {"data_path"})
    return df, {"source": "file", "params": params, **info, "shortest": min(info["lengths"].values())}


def calendar(metas: Sequence[dict]) -> dict:
    """The calendar of all series from the metadata of every bucket (or of a whole source): the
    one frequency, and the seasons it implies for the shortest series (main one first)."""
    frequency = next((m["frequency"] for m in metas if m.get("n_series")), None)
    shortest = min((m["shortest"] for m in metas if m.get("n_series")), default=0)
    seasons = seasons_for(frequency, shortest) if metas and metas[0].get("source") == "file" else ()
    return {"frequency": frequency, "time_zone": metas[0].get("time_zone") if metas else None,
            "season_length": seasons[0] if seasons else None, "seasons": list(seasons)}


def series_groups(frame: pd.DataFrame, cfg: DataConfig) -> dict[str, str]:
    """The group of each series (its --group-column value, as text); InputError for a series in
    two groups or a row without a group."""
    ids = series_ids.series_ids(frame, cfg.id_column).to_numpy(object)
    texts = frame[cfg.group_column].astype(object).map(lambda v: "" if pd.isna(v) else str(v).strip())
    if (texts == "").any():
        rows = ingest.source_rows(frame)[(texts == "").to_numpy()]
        raise InputError("group_column", cfg.group_column, f"missing groups in rows {', '.join(map(str, rows[:5]))}")
    pairs = pd.DataFrame({"series_id": ids, "group": texts.to_numpy(object)}).drop_duplicates()
    twice = pairs[pairs["series_id"].duplicated(keep=False)]
    if len(twice):
        sid = twice["series_id"].iloc[0]
        found = ", ".join(repr(g) for g in twice.loc[twice["series_id"] == sid, "group"])
        raise InputError("group_column", cfg.group_column, f"series {sid!r} is in more than one group ({found})")
    return dict(zip(pairs["series_id"], pairs["group"]))


def load_source(cfg: DataConfig) -> tuple[pd.DataFrame, dict]:
    """A whole (small) source in memory, as the generate and ingest stages see it bucket by bucket."""
    if cfg.data_path is None:
        params = generator_params(cfg)
        frame = pd.concat([sine_frame(panel_values(i, **params)).assign(series_id=sid)
                           for i, sid in enumerate(panel_ids(cfg.n_series))], ignore_index=True)
        df, meta = check_frame(frame, cfg)
    else:
        df, meta = check_frame(scan.read_table(cfg.data_path), cfg)
    cal = calendar([meta])
    if meta["source"] == "file":
        log.info("read %s: %s", cfg.data_path, calendar_words(meta["n_series"], cal))
    return df, {**meta, **cal}


def calendar_words(n_series: int, cal: dict) -> str:
    """'3 series, inferred frequency 30min in time zone Europe/Berlin (season length 48; further season 336)'."""
    zone = f" in time zone {cal['time_zone']}" if cal.get("time_zone") else ""
    return (f"{n_series} series, inferred frequency {cal['frequency']}{zone} "
            f"({season_words(tuple(cal['seasons']))})")


@task(**stage_task(INGEST))
def ingest_task(plan, data_cfg: DataConfig, raw: store.StageRef, bucket: int) -> dict:
    """Validate one bucket's series and write series.parquet; return the entry's StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        note = raw.path / scan.FILES_NOTE
        files = [tuple(f) for f in read_json(note)["files"]] if note.exists() else None
        df, meta = check_frame(read_bucket(raw.path, bucket), data_cfg, f" (bucket {bucket})", files)
        write_series(w.dir, df, {**meta, "bucket": bucket})
        w.describe(SERIES_FILE, rows=len(df), schema={c: str(t) for c, t in df.dtypes.items()})
        last = max(meta.get("end", {}).items(), key=lambda kv: pd.Timestamp(kv[1]), default=None) \
            if meta["source"] == "file" and meta["n_series"] else None
        return {"bucket": bucket, "n_series": meta["n_series"], "frequency": meta["frequency"],
                "shortest": meta["shortest"], "points": len(df), "time_zone": meta.get("time_zone"),
                "source": meta["source"], "groups": meta.get("groups", []), "last": dict([last]) if last else {}}

    return build(plan, compute)


def shared_calendar(series: Sequence[store.StageRef] | None, cfg: DataConfig) -> dict | None:
    """The calendar every bucket shares: frequency, time_zone, season_length and seasons (over all
    series); InputError naming the buckets that disagree on the frequency."""
    if not series:
        return None
    metas = [ref.manifest()["meta"] for ref in series]
    found = {m["frequency"] for m in metas if m["n_series"]}
    if len(found) > 1:
        listed = ", ".join(f"bucket {m['bucket']}: {m['frequency']}" for m in metas[:5])
        raise InputError("time_column", cfg.time_column, f"series have different frequencies ({listed})")
    out = calendar(metas)
    if cfg.data_path:
        log.info("read %s: %s", cfg.data_path, calendar_words(sum(m["n_series"] for m in metas), out))
    return out


def check_forecast_range_of(series: Sequence[store.StageRef] | None, cal: dict | None, cfg: DataConfig,
                            horizon: int) -> None:
    """Refuse, before anything is trained, a forecast past the last time pandas can hold
    (calendar.check_forecast_range) over every bucket's latest series: what `check` says of a
    file small enough to read whole, said here of any source."""
    if not series or not cal or not cfg.data_path:
        return
    ends = {k: v for ref in series for k, v in ref.manifest()["meta"].get("last", {}).items()}
    check_forecast_range(ends, cal.get("frequency"), horizon, cfg.data_path)


def series_groups_of(series: Sequence[store.StageRef] | None) -> list[str]:
    """Every group of series (--group-column) over all buckets, sorted (empty without groups)."""
    return sorted({g for ref in series or () for g in ref.manifest()["meta"].get("groups", [])})
