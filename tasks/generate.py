"""Stage 1: the series. Generated (the tutorial's sine by default) or ingested from a file.

Both write the same Parquet layout (tasks/formats.py), so every later stage is the same for
generated and real data. A file's key is its content (`source_digest`), never its path.
"""

from __future__ import annotations

import logging

import pandas as pd
from prefect import task

from tasks.components import ingest
from tasks.components.calendar import seasons_for
from tasks.components.synthetic import sine_frame, sine_values
from tasks.config import DataConfig
from tasks.errors import InputError
from tasks.formats.series import SERIES_FILE, write_series
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

STAGE = StageSpec(
    "generate", base="data", packages=("numpy", "pandas", "pyarrow"),
    # where the file is, not what it holds: its content is keyed by `source_digest` instead
    run_only=frozenset({"data_path"}),
)
FILE_FIELDS = ("data_path", "time_column", "value_column", "id_column", "fill", "fill_missing_dates", "time_zone",
               "holidays")


def source_digest(cfg: DataConfig) -> str:
    """What the series is read from: sha256 of the data file's bytes, or "generated"."""
    if cfg.data_path is None:
        return "generated"
    try:
        return store.sha256_file(cfg.data_path)
    except OSError as exc:
        raise InputError("data_path", cfg.data_path, f"cannot read file ({exc.strerror or exc})") from None


def load_source(cfg: DataConfig) -> tuple[pd.DataFrame, dict]:
    """The series (long frame) and its metadata: from `cfg.data_path` when set, else generated.

    A file's metadata holds its calendar (frequency, time_zone) and the seasons it implies
    (season_length, the main one; seasons, all that its series are long enough for).
    """
    if cfg.data_path is None:
        params = cfg.model_dump(mode="json", exclude=set(FILE_FIELDS))
        return sine_frame(sine_values(**params)), {"source": "generate", "params": params, "frequency": "1",
                                                   "season_length": None}
    df, info = ingest.prepare_series(
        ingest.read_table(cfg.data_path), time_column=cfg.time_column, value_column=cfg.value_column,
        id_column=cfg.id_column, fill=cfg.fill, fill_missing_dates=cfg.fill_missing_dates, time_zone=cfg.time_zone,
        holidays=cfg.holidays,
    )
    if info.get("utc_offsets"):
        log.warning("the times carry UTC offsets %s: read as UTC instants; --time-zone names their zone",
                    ", ".join(info["utc_offsets"]))
    if info.get("added"):
        log.info("added %d missing dates on the %s calendar (--fill-missing-dates)", info["added"], info["frequency"])
    if info.get("filled"):
        log.info("filled %d missing values (%s)", info["filled"], cfg.fill)
    seasons = seasons_for(info["frequency"], min(info["lengths"].values()))
    log.info("read %s: %d series, inferred frequency %s%s (%s)", cfg.data_path, info["n_series"], info["frequency"],
             f" in time zone {info['time_zone']}" if info.get("time_zone") else "", season_words(seasons))
    params = cfg.model_dump(mode="json", include=set(FILE_FIELDS) - {"data_path"})
    return df, {"source": "file", "params": params, **info, "season_length": seasons[0] if seasons else None,
                "seasons": list(seasons)}


def season_words(seasons: tuple[int, ...]) -> str:
    """'season length 48; second season 336' (or 'no season')."""
    if not seasons:
        return "season length None"
    more = "".join(f"; further season {s}" for s in seasons[1:])
    return f"season length {seasons[0]}{more}"


@task(**stage_task(STAGE))
def generate_task(plan, data_cfg: DataConfig, source: str) -> dict:
    """Write series.parquet; return the entry's StageRef.

    source: `source_digest(data_cfg)` as planned; a file that changed since is refused.
    """

    def compute(w: store.EntryWriter) -> dict:
        if source_digest(data_cfg) != source:
            raise InputError("data_path", data_cfg.data_path, "the file changed while the run started; run again")
        df, meta = load_source(data_cfg)
        write_series(w.dir, df, meta)
        w.describe(SERIES_FILE, rows=len(df), schema={c: str(t) for c, t in df.dtypes.items()})
        log.info("generate: %d points in %d series", len(df), df["series_id"].nunique())
        return meta

    return build(plan, compute)
