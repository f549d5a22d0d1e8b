"""Stage 1: the series. Generated (the tutorial's sine by default) or ingested from a file.

Both write the same Parquet layout, so every later stage is the same for generated and real data:
long format with columns series_id (string), step (int64), value (float64) and, for files,
timestamp; the parameters, source and frequency go into the file's key-value metadata.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task

from tasks import store
from tasks.caching import STAGE_CACHE_POLICY, StagePlan
from tasks.config import DataConfig
from tasks.retry import RETRY_OPTIONS

log = logging.getLogger(__name__)

SERIES_FILE = "series.parquet"
META_KEY = b"rnnflow"


def generate_values(cfg: DataConfig) -> np.ndarray:
    """y(x) = amplitude*sin(2*pi*x/period) + sum of components + trend*x + noise; (n_points,)."""
    x = np.linspace(0.0, cfg.x_max, cfg.n_points)
    # 2*pi/period is exactly 1.0 for the default period, so the default is bit-for-bit sin(x).
    y = cfg.amplitude * np.sin(x * (2 * np.pi / cfg.period))
    for c in cfg.components:
        y = y + c.amplitude * np.sin(x * (2 * np.pi / c.period) + c.phase)
    if cfg.trend:
        y = y + cfg.trend * x
    if cfg.noise:
        y = y + np.random.default_rng(cfg.seed).normal(0.0, cfg.noise, size=cfg.n_points)
    return y


def generated_frame(cfg: DataConfig) -> pd.DataFrame:
    """The generated series in the long layout (one series, id 'sine')."""
    values = generate_values(cfg)
    return pd.DataFrame(
        {
            "series_id": pd.Series(["sine"] * len(values), dtype="string"),
            "step": np.arange(len(values), dtype=np.int64),
            "value": values.astype(np.float64),
        }
    )


def write_series(df: pd.DataFrame, path: str | Path, meta: dict) -> None:
    """Write a long-format frame to Parquet (pyarrow) with `meta` as key-value metadata.

    series_id is stored as plain `string` (pandas 3 would otherwise give `large_string`).
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table.set_column(0, "series_id", table.column("series_id").cast(pa.string()))
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()})
    pq.write_table(table, str(path))


def read_series(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """Read a series file back: (frame, metadata)."""
    table = pq.read_table(str(path))
    meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
    return table.to_pandas(), meta


def load_source(cfg: DataConfig, min_length: int = 1) -> tuple[pd.DataFrame, dict]:
    """The series and its metadata: from `cfg.data_path` when set, else generated."""
    if cfg.data_path is None:
        params = cfg.model_dump(mode="json", exclude={"data_path", "time_column", "value_column", "id_column", "fill"})
        return generated_frame(cfg), {"source": "generate", "params": params, "frequency": "1", "season_length": None}
    from tasks import ingest  # only file runs pay for it

    raw = ingest.read_table(cfg.data_path)
    df, info = ingest.prepare_series(
        raw,
        time_column=cfg.time_column,
        value_column=cfg.value_column,
        id_column=cfg.id_column,
        fill=cfg.fill,
        min_length=min_length,
    )
    if info.get("filled"):
        log.info("filled %d missing values (%s)", info["filled"], cfg.fill)
    season = ingest.infer_season_length(info["frequency"])
    log.info("read %s: %d series, inferred frequency %s (season length %s)",
             cfg.data_path, info["n_series"], info["frequency"], season)
    params = cfg.model_dump(mode="json", include={"data_path", "time_column", "value_column", "id_column", "fill"})
    return df, {"source": "file", "params": params, **info, "season_length": season}


@task(name="generate", cache_policy=STAGE_CACHE_POLICY, **RETRY_OPTIONS)
def generate_task(plan: StagePlan, cfg: DataConfig, min_length: int = 1) -> dict:
    """Write the series entry (series.parquet) and return its StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        df, meta = load_source(cfg, min_length)
        write_series(df, w.path(SERIES_FILE), meta)
        w.describe(SERIES_FILE, rows=len(df), schema={c: str(t) for c, t in df.dtypes.items()})
        log.info("generate: %d points in %d series", len(df), df["series_id"].nunique())
        return meta

    return store.build_entry(plan.base, plan.stage, plan.key, plan.key_inputs, compute, force=plan.forced).model_dump()
