"""evaluate: metrics.json and predictions.parquet of the backtest."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.formats import read_json, write_json

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.parquet"


def write_scores(directory: Path, predictions: pd.DataFrame, result: dict) -> None:
    """predictions.parquet and metrics.json of a backtest."""
    predictions.to_parquet(Path(directory) / PREDICTIONS_FILE, index=False)
    write_json(Path(directory) / METRICS_FILE, result)


def read_metrics(directory: Path) -> dict:
    """metrics.json: metrics, per_lead, intervals, gate, horizon, n_test, season_length, train, ..."""
    return read_json(Path(directory) / METRICS_FILE)


def read_predictions(directory: Path) -> pd.DataFrame:
    """predictions.parquet: series_id, step, origin, lead, actual, one column per forecaster, bands."""
    return pd.read_parquet(Path(directory) / PREDICTIONS_FILE)
