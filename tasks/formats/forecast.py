"""forecast: forecast.parquet (one row per series and lead past the end) and its figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FORECAST_FILE = "forecast.parquet"
FORECAST_FIGURE = "figures/forecast.png"


def write_forecast(directory: Path, frame: pd.DataFrame) -> Path:
    path = Path(directory) / FORECAST_FILE
    frame.to_parquet(path, index=False)
    return path


def read_forecast(directory: Path) -> pd.DataFrame:
    """forecast.parquet: series_id, lead, step[, timestamp], forecast, lower_<level>, upper_<level>."""
    return pd.read_parquet(Path(directory) / FORECAST_FILE)
