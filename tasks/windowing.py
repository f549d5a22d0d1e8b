"""Stage 2: the split of forecast origins, with scalers fitted on the training range only.

Windows are never materialised: the entry holds the series (every series end to end) and the
Split (tasks/components/split.py), which owns the origin arithmetic and the train/val/test ranges.
"""

from __future__ import annotations

import logging

import numpy as np
from prefect import task

from tasks.components.split import build_split
from tasks.config import WindowConfig
from tasks.errors import InputError
from tasks.formats.series import read_series
from tasks.formats.window import VALUES_FILE, write_window
from tasks.runtime import store
from tasks.runtime.stages import StageSpec, build, stage_task

log = logging.getLogger(__name__)

STAGE = StageSpec("window", packages=("numpy",), words=(("anchor", "anchor (the search's longest window)"),))


def split_series(df, meta: dict, cfg: WindowConfig, calendar: dict | None = None, anchor: int | None = None):
    """(values (n_total,), Split) of a long series frame: ranges per series, scalers fitted.

    meta: the series file's metadata; calendar: frequency and seasons decided over every bucket
    (generate.shared_calendar; default: those in `meta`). cfg.normalize must be resolved (not
    "auto"); an unresolved calibration means none (as for generated data); anchor: the window
    length whose val/cal/test targets the split shares (a search's longest). Raises InputError
    naming the series that is too short for the windows, and (with cfg.val_fraction > 0) naming
    the window length that leaves no validation origin, with the longest one that does.
    """
    cal = {**meta, **(calendar or {})}
    by_series = df.groupby("series_id", sort=False)
    ids = [str(k) for k in by_series.groups]
    values = np.ascontiguousarray(df["value"].to_numpy(np.float64))
    groups = by_series["group"].first().loc[ids].astype(str).tolist() if "group" in df else None
    lengths = [int(n) for n in by_series.size().loc[ids]]
    calibration = 0 if cfg.calibration == "auto" else cfg.calibration
    try:
        split = build_split(
            lengths, ids, cfg.seq_length, cfg.horizon, cfg.train_fraction, cfg.val_fraction, groups=groups,
            calibration=calibration, anchor=anchor, normalize=cfg.normalize, source=meta.get("source"),
            frequency=cal.get("frequency"), season_length=cal.get("season_length"),
            seasons=tuple(cal.get("seasons") or ()),
        )
    except ValueError as exc:
        raise InputError("seq_length", cfg.seq_length, f"{exc}; lower --seq-length or --horizon") from None
    if cfg.val_fraction > 0 and not split.count("val"):  # early stopping and a search would have nothing to go by
        raise no_validation_error(lengths, cfg, calibration, anchor)
    return values, split.with_scalers(values)


def validation_origins(lengths: list[int], cfg: WindowConfig, calibration: int, seq_length: int) -> int:
    """Validation origins of series of `lengths` read through windows of `seq_length` (cfg's
    horizon and fractions, `calibration` origins per series held out). Raises ValueError as
    build_split does when the series are too short for any split."""
    return build_split(lengths, [str(i) for i in range(len(lengths))], seq_length, cfg.horizon, cfg.train_fraction,
                       cfg.val_fraction, calibration=calibration).count("val")


def no_validation_error(lengths: list[int], cfg: WindowConfig, calibration: int, anchor: int | None = None,
                        where: str = "") -> InputError:
    """The error for windows that leave series of `lengths` (points each) no validation origin
    (cfg.val_fraction > 0): it names --seq-length and, without an `anchor`, the longest window
    length whose split (same horizon, fractions and `calibration` origins per series) has one.
    where: " in FILE", to name the data file."""

    def has_val(seq_length: int) -> bool:
        try:
            return validation_origins(lengths, cfg, calibration, seq_length) > 0
        except ValueError:
            return False

    fits = None if anchor else next((L for L in range(cfg.seq_length - 1, 0, -1) if has_val(L)), None)
    what = "the series" if len(lengths) == 1 else f"the {len(lengths)} series"
    return InputError("seq_length", cfg.seq_length,
                      f"the windows leave {what}{where} ({sum(lengths)} points) no validation origins, which early "
                      "stopping and a search rank by: " + (f"--seq-length {fits} fits" if fits else
                                                           "lower --seq-length or --horizon")
                      + " (or --val-fraction 0: no validation)")


@task(**stage_task(STAGE))
def window_task(plan, window_cfg: WindowConfig, series: store.StageRef, calendar: dict,
                anchor: int | None = None) -> dict:
    """Write one bucket's values.npy and split.json; return the entry's StageRef.

    calendar: the frequency and seasons of all series (generate.shared_calendar); anchor: for a
    search, the longest window of its members (every member's val/cal/test targets are its).
    """

    def compute(w: store.EntryWriter) -> dict:
        values, split = split_series(*read_series(series.path), window_cfg, calendar, anchor)
        write_window(w.dir, values, split)
        w.describe(VALUES_FILE, shape=list(values.shape), dtype="float64")
        counts = {p: split.count(p) for p in ("train", "val", "cal", "test")}
        log.info("window: seq_length %d, horizon %d, origins %s, normalize %s, frequency %s, season length %s",
                 split.seq_length, split.horizon, counts, split.normalize, split.frequency, split.season_length)
        return {"windows": counts}

    return build(plan, compute)
