"""Files of the shapes people bring (issue 22), generated: each is read right and forecast, or
refused in one line. Kinds, not files: every kind takes a level, a length, a frequency and a seed.

    make(kind, directory, rng, ...) -> Shape: the file (or dataset) written, the options that
    read it, the values of each series as written, and what must happen (forecast or refusal).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import strategies as st

FORECAST = ("constant", "zeros", "intermittent", "late_start", "level", "negative_season", "seasonal",
            "trailing_delimiter", "parquet_index", "dayfirst", "dst_offsets", "mathtext_ids", "compressed",
            "dataset_text_filled")
REFUSED = {  # kind -> what its one error line must say
    "duplicate_column": "columns 2 and 3",
    "ambiguous_dates": "--dayfirst",
    "mixed_formats": "dates written in 2 ways",
    "past_2262": "--horizon",
    "dataset_renamed": "part-1.parquet",
    "dataset_text_na": "of part-2.parquet",
    "value_past_header": "past the header",
}
ZONES = ("Europe/Berlin", "America/New_York", "Australia/Sydney", "Europe/London")


@dataclass
class Shape:
    kind: str
    path: Path
    args: list[str]
    series: dict[str, np.ndarray] = field(default_factory=dict)  # the values as written, by series id
    refusal: str | None = None  # what the error line must contain; None: a forecast

    @property
    def argv(self) -> list[str]:
        return ["--data-path", str(self.path), *self.args]


def times(freq: str, n: int, start: str = "2015-01-01", tz: str | None = None) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=n, freq=freq, tz=tz)


def season_of(freq: str) -> int:
    return {"MS": 12, "D": 7, "h": 24}[freq]


def seasonal(rng: np.random.Generator, n: int, m: int, level: float = 100.0, swing: float = 10.0) -> np.ndarray:
    t = np.arange(n)
    return level + swing * np.sin(2 * np.pi * t / m) + rng.normal(0, swing / 10, n)


def values_of(kind: str, rng: np.random.Generator, n: int, m: int, level: float) -> np.ndarray:
    t = np.arange(n)
    if kind == "constant":
        return np.full(n, float(round(level, 2)))
    if kind == "zeros":
        return np.zeros(n)
    if kind == "intermittent":
        return (rng.poisson(0.3, n) * rng.integers(1, 5, n)).astype(float)
    if kind == "late_start":
        v = np.zeros(n)
        start = int(n * 0.85)
        v[start:] = rng.poisson(3, n - start)
        return v
    if kind == "level":
        return abs(level) * 1e5 + 1.2e8 + 2 * np.sin(2 * np.pi * t / m) + rng.normal(0, 0.3, n)
    if kind == "negative_season":
        return -(abs(level) + 100 + t) * (1 + 0.3 * np.sin(2 * np.pi * t / m)) + rng.normal(0, 2, n)
    return seasonal(rng, n, m, level)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def make(kind: str, directory: Path, rng: np.random.Generator, freq: str = "D", n: int = 120,
         level: float = 100.0) -> Shape:
    """One file of `kind` under `directory` (which it may create), `n` points at `freq`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    m = season_of(freq)
    cols = ["--time-column", "date", "--value-column", "sales"]
    if kind in ("constant", "zeros", "intermittent", "late_start", "level", "negative_season", "seasonal"):
        v = values_of(kind, rng, n, m, level)
        path = write_csv(pd.DataFrame({"date": times(freq, n).strftime("%Y-%m-%d %H:%M"), "sales": v}),
                         directory / f"{kind}.csv")
        return Shape(kind, path, cols, {"series": v})
    if kind in ("trailing_delimiter", "value_past_header"):
        v = np.round(seasonal(rng, n, m, level), 4)
        sep = ";" if rng.random() < 0.5 else ","
        rows = [f"date{sep}sales"] + [f"{t:%Y-%m-%d %H:%M}{sep}{x}{sep}" for t, x in zip(times(freq, n), v)]
        if kind == "value_past_header":
            rows[1 + int(rng.integers(0, min(n, 50)))] += "7"
        path = directory / f"{kind}.csv"
        path.write_text("\n".join(rows) + "\n")
        return Shape(kind, path, cols, {"series": v}, REFUSED.get(kind))
    if kind == "compressed":
        v = seasonal(rng, n, m, level)
        path = directory / "sales.csv.gz"
        with gzip.open(path, "wt") as fh:
            pd.DataFrame({"date": times(freq, n).strftime("%Y-%m-%d %H:%M"), "sales": v}).to_csv(fh, index=False)
        return Shape(kind, path, cols, {"series": v})
    if kind == "parquet_index":
        v = seasonal(rng, n, m, level)
        name = "date" if rng.random() < 0.5 else None
        path = directory / "indexed.parquet"
        pd.DataFrame({"sales": v}, index=pd.Index(times(freq, n), name=name)).to_parquet(path)
        return Shape(kind, path, ["--time-column", name or "index", "--value-column", "sales"], {"series": v})
    if kind == "dayfirst":
        n = max(n, 40)
        v = seasonal(rng, n, 7, level)
        fmt = str(rng.choice(["%d/%m/%Y", "%d.%m.%Y", "%m/%d/%Y"]))
        path = write_csv(pd.DataFrame({"date": times("D", n).strftime(fmt), "sales": v}), directory / "dates.csv")
        return Shape(kind, path, cols, {"series": v})
    if kind == "ambiguous_dates":
        v = seasonal(rng, n, m, level)
        path = write_csv(pd.DataFrame({"date": times("MS", max(n, 40)).strftime("%d/%m/%Y"),
                                       "sales": seasonal(rng, max(n, 40), 12, level)}), directory / "dates.csv")
        return Shape(kind, path, cols, {"series": v}, REFUSED[kind])
    if kind == "mixed_formats":
        v = seasonal(rng, n, m, level)
        t = times("D", n)
        cut = int(rng.integers(1, n - 1))
        other = str(rng.choice(["%d/%m/%Y", "%m/%d/%Y", "%d %b %Y"]))
        dates = list(t[:cut].strftime("%Y-%m-%d")) + list(t[cut:].strftime(other))
        path = write_csv(pd.DataFrame({"date": dates, "sales": v}), directory / "dates.csv")
        return Shape(kind, path, cols, {"series": v}, REFUSED[kind])
    if kind == "dst_offsets":
        zone = str(rng.choice(ZONES))
        t = times("D", n, start=str(rng.choice(["2023-02-20", "2023-09-15", "2024-03-01"])), tz=zone)
        v = seasonal(rng, n, 7, level)
        path = write_csv(pd.DataFrame({"date": [x.isoformat(timespec="minutes") for x in t], "sales": v}),
                         directory / "local.csv")
        return Shape(kind, path, cols, {"series": v})
    if kind == "past_2262":
        if freq == "MS":  # (pandas' date_range(end=...) itself fails this close to its bound)
            t = pd.date_range(pd.Timestamp("2262-04-01") - pd.DateOffset(months=n - 1), periods=n, freq="MS")
        else:
            t = pd.date_range(pd.Timestamp("2262-04-11") - pd.Timedelta(days=n - 1), periods=n, freq="D")
        v = seasonal(rng, n, m if freq == "MS" else 7, level)
        path = write_csv(pd.DataFrame({"date": t.strftime("%Y-%m-%d"), "sales": v}), directory / "far.csv")
        return Shape(kind, path, [*cols, "--horizon", "2"], {"series": v}, REFUSED[kind])
    if kind == "mathtext_ids":
        ids = [r"$\invalidmathcmd$", "a$b$c", "50% $x^2$"][: int(rng.integers(2, 4))]
        parts, series = [], {}
        for sid in ids:
            v = seasonal(rng, n, m, level)
            series[sid] = v
            parts.append(pd.DataFrame({"id": sid, "date": times(freq, n).strftime("%Y-%m-%d %H:%M"), "sales": v}))
        path = write_csv(pd.concat(parts), directory / "ids.csv")
        return Shape(kind, path, [*cols, "--id-column", "id"], series)
    if kind == "duplicate_column":
        v = seasonal(rng, n, m, level)
        rows = ["date,sales,sales"] + [f"{t:%Y-%m-%d %H:%M},{x},{i}" for i, (t, x) in enumerate(zip(times(freq, n), v))]
        path = directory / "dup.csv"
        path.write_text("\n".join(rows) + "\n")
        return Shape(kind, path, cols, {"series": v}, REFUSED[kind])
    if kind.startswith("dataset"):
        v = seasonal(rng, n, m, level)
        frame = pd.DataFrame({"date": times(freq, n), "sales": v})
        root = directory / "ds"
        root.mkdir(exist_ok=True)
        cuts = np.array_split(np.arange(n), 3)
        for i, rows in enumerate(cuts):
            part = frame.iloc[rows].copy()
            if kind == "dataset_renamed" and i == 1:
                part = part.rename(columns={"sales": "revenue"})
            if kind in ("dataset_text_na", "dataset_text_filled") and i == 2:
                part["sales"] = part["sales"].map(lambda x: f"{x:.6f}").astype(object)
                part.iloc[len(part) // 2, 1] = str(rng.choice(["n/a", "NA", ""]))
            part.to_parquet(root / f"part-{i}.parquet", index=False)
        extra = ["--fill", "interpolate"] if kind == "dataset_text_filled" else []
        return Shape(kind, root, [*cols, *extra], {"series": v}, REFUSED.get(kind))
    raise ValueError(f"unknown kind {kind!r}")


# --------------------------------------------------------------------------- through the command line

TINY = ["--epochs", "2", "--hidden-size", "4", "--search-seeds", "1", "--references", "none", "--patience", "0",
        "--fig-dpi", "30", "--fig-width", "4", "--fig-height", "3", "--until", "forecast"]
LENGTHS = {"MS": (72, 96), "D": (120, 200), "h": (200, 260)}


def shapes(kinds) -> st.SearchStrategy:
    @st.composite
    def one(draw):
        kind = draw(st.sampled_from(sorted(kinds)))
        freq = draw(st.sampled_from(sorted(LENGTHS)))
        n = draw(st.integers(*LENGTHS[freq]))
        level = draw(st.sampled_from([0.0, 3.5, 250.0, -40.0, 1e6]))
        seed = draw(st.integers(0, 2**16))
        horizon = draw(st.sampled_from([1, 3]))
        return kind, freq, n, level, seed, horizon
    return one()


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def run_cli(capsys, shape, root: Path, horizon: int, extra: list[str]):
    from flows.commands import main

    out = ["--output-dir", str(root / "out"), "--data-dir", str(root / "data")]
    if "--horizon" not in shape.args:
        out += ["--horizon", str(horizon)]
    code = main([*shape.argv, *out, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err
