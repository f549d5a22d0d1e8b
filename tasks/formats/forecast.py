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


def range_words(outside: dict) -> str:
    """'2 series forecast outside [min - span, max + span] of their history: 'a' (forecast -3 to 4,
    history 0 to 1), ...' for the summary; outside: the forecast stage's {"n", "series": [rows]}."""
    shown = ", ".join(f"{r['series_id']!r} (forecast {r['lowest']:.4g} to {r['highest']:.4g}, history "
                      f"{r['min']:.4g} to {r['max']:.4g})" for r in outside["series"])
    more = f" and {outside['n'] - len(outside['series'])} more" if outside["n"] > len(outside["series"]) else ""
    return (f"{outside['n']} series forecast outside [min - span, max + span] of their history (span = max - min): "
            f"{shown}{more}")
