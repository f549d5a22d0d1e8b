"""Stage 2: sliding windows as views, and a chronological split with no leakage.

Windows are never materialised. The entry holds the series (1-D, all series end to end) and,
per series, the ranges of forecast *origins* (window starts) for train / val / test:

    values:  s0 s1 s2 ... s(n-1) | t0 t1 ... (next series)
    origin i of a series at offset o:  inputs values[o+i : o+i+L], targets values[o+i+L : o+i+L+H]

    origins: [ train ............ | val ..... | test ......... ]
             0                    a           b                 n - L - H + 1
    val is carved from the end of the training range (purged of H - 1 origins on each side when
    H > 1, tasks/split.py); every test target comes after every training and validation target,
    and no window crosses a series boundary.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from prefect import task

from tasks import store
from tasks.caching import STAGE_CACHE_POLICY, StagePlan
from tasks.config import WindowConfig, resolve_auto
from tasks.generate import SERIES_FILE, read_series
from tasks.retry import RETRY_OPTIONS
from tasks.split import fit_ranges, min_series_length, n_windows, split_ranges  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

VALUES_FILE = "values.npy"
SPLIT_FILE = "split.json"


def window_view(values: np.ndarray, seq_length: int) -> np.ndarray:
    """All windows of a 1-D series as a read-only view, no copy: (n - seq_length + 1, seq_length)."""
    return sliding_window_view(values, seq_length)


def make_windows(values: np.ndarray, seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-value targets: X (n - L, L) as a view, y (n - L,)."""
    n = len(values) - seq_length
    if n <= 0:
        raise ValueError(f"series of {len(values)} points is too short for windows of {seq_length}")
    return window_view(values, seq_length)[:n], values[seq_length:]


def build_split(lengths: list[int], ids: list[str], cfg: WindowConfig) -> dict:
    """Global origin ranges per series, plus the training range a scaler may see."""
    L, H = cfg.seq_length, cfg.horizon
    series, offset = [], 0
    for sid, n in zip(ids, lengths):
        ranges = split_ranges(n_windows(n, L, H), cfg.train_fraction, cfg.val_fraction, H)
        series.append(series_entry(sid, offset, n, ranges, L, H))
        offset += n
    return {"seq_length": L, "horizon": H, "series": series,
            "train_fraction": cfg.train_fraction, "val_fraction": cfg.val_fraction}


def series_entry(sid: str, offset: int, n: int, ranges: dict, seq_length: int, horizon: int = 1) -> dict:
    """One series of split.json: its place in `values`, its origin ranges and the scaler's fit range."""
    fit_end = ranges["train"][1] - 1 + seq_length + horizon - 1  # index of the last training target
    return {
        "series_id": sid, "offset": offset, "length": n,
        **{k: [offset + a, offset + b] for k, (a, b) in ranges.items()},
        "fit_range": [offset, offset + max(fit_end, 0) + 1],
    }


def resolve_normalize(normalize: str, source: str | None) -> str:
    """normalize="auto": none for generated data (the tutorial), window for a user's file."""
    return resolve_auto(WindowConfig(normalize=normalize), source).normalize


def fit_scaler(values: np.ndarray, split: dict, normalize: str) -> list[dict]:
    """Per-series (mean, std) from each series' fit_range only; identity when normalize='none'."""
    out = []
    for s in split["series"]:
        a, b = s["fit_range"]
        if normalize == "standard":
            fit = values[a:b]
            std = float(fit.std())
            out.append({"mean": float(fit.mean()), "std": std if std > 0 else 1.0, "fit_range": [a, b]})
        else:
            out.append({"mean": 0.0, "std": 1.0, "fit_range": [a, b]})
    return out


def season_info(meta: dict, split: dict) -> dict:
    """The series' frequency and season length (from the series metadata), also per series.

    meta: the series file's metadata ("frequency", "season_length" as the generate stage found
    them; None for generated data). Returns {"frequency", "season_length"} and sets each
    split["series"][i]["season_length"].
    """
    season = meta.get("season_length")
    for s in split["series"]:
        s["season_length"] = season
    return {"frequency": meta.get("frequency"), "season_length": season}


def ranges_to_index(split: dict, part: str) -> np.ndarray:
    """All window starts of one part (train/val/test) across series: (n_part,) int64."""
    return np.concatenate([np.arange(*s[part], dtype=np.int64) for s in split["series"]])


@task(name="window", cache_policy=STAGE_CACHE_POLICY, **RETRY_OPTIONS)
def window_task(plan: StagePlan, cfg: WindowConfig, series: dict) -> dict:
    """Write values.npy (the series, end to end) and split.json; return the StageRef."""

    def compute(w: store.EntryWriter) -> dict:
        df, meta = read_series(store.StageRef(**series).file(SERIES_FILE))
        groups = df.groupby("series_id", sort=False)["value"]
        ids = [str(k) for k in groups.groups]
        values = np.ascontiguousarray(df["value"].to_numpy(np.float64))
        split = build_split([int(n) for n in groups.size().loc[ids]], ids, cfg)
        split["source"] = meta.get("source")
        split["normalize"] = resolve_normalize(cfg.normalize, meta.get("source"))
        split["scaler"] = fit_scaler(values, split, split["normalize"])
        split.update(season_info(meta, split))
        np.save(w.path(VALUES_FILE), values)
        store.write_json(w.path(SPLIT_FILE), split)
        w.describe(VALUES_FILE, shape=list(values.shape), dtype="float64")
        counts = {p: int(sum(s[p][1] - s[p][0] for s in split["series"])) for p in ("train", "val", "test")}
        log.info("window: seq_length %d, horizon %d, origins %s, normalize %s, frequency %s, season length %s",
                 cfg.seq_length, cfg.horizon, counts, split["normalize"], split["frequency"], split["season_length"])
        return {"windows": counts}

    return store.build_entry(plan.base, plan.stage, plan.key, plan.key_inputs, compute, force=plan.forced).model_dump()
