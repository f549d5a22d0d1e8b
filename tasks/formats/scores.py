"""evaluate: the backtest, per bucket and over all series.

    backtest entry (one per bucket)   predictions.parquet, metrics.json, metrics_by_series.parquet
    evaluate entry (all buckets)      metrics.json (combined), metrics_by_series.parquet (every
                                      series, with its bucket), predictions.parquet (one bucket only)
    validate entry (a sweep member)   scores.json: its validation-range metrics
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.formats import read_json, write_json

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"
BY_SERIES_FILE = "metrics_by_series.parquet"
VALIDATION_FILE = "scores.json"  # validate entry: a sweep member's scores on the validation range
MEMBER_FORECASTS_FILE = "forecasts.parquet"  # validate entry of a statistical member: its calibration and test forecasts


def write_scores(directory: Path, predictions: pd.DataFrame | None, result: dict,
                 by_series: pd.DataFrame | None = None) -> None:
    """metrics.json, and predictions.parquet and metrics_by_series.parquet where given."""
    if predictions is not None:
        predictions.to_parquet(Path(directory) / PREDICTIONS_FILE, index=False)
    if by_series is not None:
        by_series.to_parquet(Path(directory) / BY_SERIES_FILE, index=False)
    write_json(Path(directory) / METRICS_FILE, result)


def read_by_series(directory: Path) -> pd.DataFrame:
    """metrics_by_series.parquet: series_id, n, <forecaster>_<metric> (mse, rmse, mae, smape, mase)[, bucket]."""
    return pd.read_parquet(Path(directory) / BY_SERIES_FILE)


def append_by_series(directory: Path, buckets: Sequence[Path], keep: Sequence[str]) -> pd.DataFrame:
    """metrics_by_series.parquet of an evaluate entry, written one bucket's table at a time (each
    with its `bucket` number): memory holds one bucket's table, not every series'. Returns the
    `keep` columns of every row, (n_series, len(keep)), for what needs all series at once.

    Raises ValueError when a bucket's columns differ from the first one's.
    """
    writer, kept = None, []
    try:
        for b, src in enumerate(buckets):
            table = pq.read_table(Path(src) / BY_SERIES_FILE).replace_schema_metadata(None)
            table = table.append_column("bucket", pa.array(np.full(table.num_rows, b, dtype=np.int64)))
            if writer is None:
                writer = pq.ParquetWriter(str(Path(directory) / BY_SERIES_FILE), table.schema)
            writer.write_table(table.cast(writer.schema))
            kept.append(table.select(list(keep)).to_pandas())
    finally:
        if writer is not None:
            writer.close()
    return pd.concat(kept, ignore_index=True)


def read_metrics(directory: Path) -> dict:
    """metrics.json: metrics, per_lead, intervals, gate, horizon, n_test, season_length, train, ..."""
    return read_json(Path(directory) / METRICS_FILE)


def read_predictions(directory: Path, series: list[str] | None = None) -> pd.DataFrame:
    """predictions.parquet: series_id, step, origin, lead, actual, one column per forecaster, bands
    (only the rows of `series` when given)."""
    filters = [("series_id", "in", list(series))] if series is not None else None
    return pd.read_parquet(Path(directory) / PREDICTIONS_FILE, filters=filters)


def write_validation(directory: Path, scores: dict) -> None:
    write_json(Path(directory) / VALIDATION_FILE, scores)


def write_member_forecasts(directory: Path, frame: pd.DataFrame) -> None:
    """forecasts.parquet of a statistical member's validate entry: series_id, part ("cal" or
    "test"), last (the origin's last observed point, local to its series), lead, forecast."""
    frame.to_parquet(Path(directory) / MEMBER_FORECASTS_FILE, index=False)


def read_member_forecasts(directory: Path, series: Sequence[str]) -> pd.DataFrame | None:
    """The rows of `series` of a validate entry's forecasts.parquet; None when it has none (a
    network's entry, or one written before statistical members kept their forecasts)."""
    path = Path(directory) / MEMBER_FORECASTS_FILE
    if not path.is_file():
        return None
    return pd.read_parquet(path, filters=[("series_id", "in", [str(x) for x in series])])


def read_validation(directory: Path) -> dict:
    """scores.json: metrics and per_lead of the model and baselines on the validation origins, n_val, train."""
    return read_json(Path(directory) / VALIDATION_FILE)
