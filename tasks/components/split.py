"""The split of forecast origins, and the origin arithmetic every stage shares (pure, no I/O).

All series are stored end to end in one 1-D array `values`; a series starts at its `offset`.
An origin o (a window start, a global index into `values`) reads L inputs and forecasts H targets:

    values:  ... | o .. o+L-1 | o+L .. o+L+H-1 | ...
                   inputs       targets           last observed point T = o+L-1, lead h -> T+h

Per series the origins are split in time order. With H > 1 neighbouring parts are purged of
H - 1 origins, so no target is in two parts:

    origins: [ train ......... | gap | val ..... | gap | cal .... | gap | test ............ ]
             0                 a-H+1 a                                   b                  n_windows

val picks the epoch (early stopping) and ranks models; cal, when asked for (files: up to 20
origins, never more than a quarter of the series' pre-test origins), is seen by neither and
calibrates the prediction intervals; without it the intervals calibrate on val.

`fit_range` is what a scaler may see: the series' points up to its last training target.
Every other split (refit blocks of the backtest, all origins for a final refit, a champion's
view of a holdout) is built from these same pieces, by the methods below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

Range = tuple[int, int]
PARTS = ("train", "val", "cal", "test")


# --------------------------------------------------------------------------- ranges of one series


def n_windows(length: int, seq_length: int, horizon: int = 1) -> int:
    """Origins of a series of `length` points with room for L inputs and H targets."""
    return length - seq_length - horizon + 1


def fit_ranges(n_windows: int, val_fraction: float, horizon: int = 1) -> tuple[Range, Range]:
    """Local train and val origin ranges over `n_windows` origins (val from the end, purged gap before it)."""
    n_val = int(round(n_windows * val_fraction))
    a = n_windows - n_val
    return ((0, a - (horizon - 1)) if n_val else (0, a)), (a, n_windows)


def split_ranges(n_windows: int, train_fraction: float, val_fraction: float, horizon: int = 1,
                 calibration: int = 0) -> dict[str, Range]:
    """Local [start, end) origin ranges for train, val, cal and test (horizon 1, no calibration
    range: the tutorial's split).

    calibration: origins to hold out for the intervals, at most a quarter of the pre-test ones.
    Raises ValueError when the origins cannot give at least one train and one test origin.
    """
    b = int(n_windows * train_fraction)  # the tutorial's int(len(X) * 0.8)
    before = b - (horizon - 1)  # origins whose targets all come before the test range
    n_cal = min(calibration, max(before, 0) // 4)
    cal = (before - n_cal, before)
    train, val = fit_ranges(before - n_cal - (horizon - 1) if n_cal else before, val_fraction, horizon)
    if train[1] < 1 or b >= n_windows:
        raise ValueError(
            f"{n_windows} windows cannot be split into train, val and test "
            f"(train_fraction={train_fraction}, val_fraction={val_fraction}, horizon={horizon})"
        )
    return {"train": train, "val": val, "cal": cal, "test": (b, n_windows)}


def anchored_ranges(length: int, seq_length: int, anchor: int, horizon: int, train_fraction: float,
                    val_fraction: float, calibration: int = 0) -> dict[str, Range]:
    """Local origin ranges of a model reading `seq_length` points whose val, cal and test targets
    are exactly those of a model reading `anchor` points (anchor >= seq_length): the split of the
    longest window, shifted by anchor - seq_length, its training range stretched back to origin 0.

    Members of a search with different window lengths are thus early-stopped, ranked, calibrated
    and tested on the same targets, and none trains on a target another member holds out.
    """
    ranges = split_ranges(n_windows(length, anchor, horizon), train_fraction, val_fraction, horizon, calibration)
    d = anchor - seq_length
    return {k: ((0 if k == "train" else a + d), b + d) for k, (a, b) in ranges.items()}


def min_series_length(seq_length: int, horizon: int = 1, train_fraction: float = 0.8, val_fraction: float = 0.1) -> int:
    """The shortest series that still gives at least one train and one test origin."""
    n = 2
    while True:
        try:
            split_ranges(n, train_fraction, val_fraction, horizon)
            return n + seq_length + horizon - 1
        except ValueError:
            n += 1


# --------------------------------------------------------------------------- the typed contract


@dataclass(frozen=True)
class Scaler:
    """A per-series affine map fitted on the training range: z = (y - mean) / std; with window
    scaling, `floor` is the least std a window is scaled by, in z units (tasks.components.scaling;
    0: none)."""

    mean: float = 0.0
    std: float = 1.0
    floor: float = 0.0


IDENTITY = Scaler()
# Window scaling: the least std a window is scaled by, in in-sample naive MAEs of its series (mean
# |y[t] - y[t-1]| over the training range; tasks.components.scaling).
WINDOW_FLOOR = 0.1
# A tenth: at 1.0 the floor bound on most windows of real seasonal series (ausbeer 90%, elecequip
# 92%, UKgas 74%: a season's swing makes the one-step naive MAE larger than a short window's std)
# and the quality panel lost (geometric mean of model/AutoETS MASE 0.937 -> 0.941 at one step,
# 0.898 -> 0.902 at one season, 3 seeds); at 0.1 it binds on no window of the panel's series
# (0.9373, 0.8979) and still floors a flat window of a series that moves.


@dataclass(frozen=True)
class SeriesSplit:
    """One series' place in `values` and its global origin ranges ([start, end), offset included)."""

    series_id: str
    offset: int
    length: int
    train: Range
    val: Range
    test: Range
    fit_range: Range
    scaler: Scaler = IDENTITY
    group: str | None = None  # the group whose model forecasts it (--group-column), if any
    cal: Range = (0, 0)  # calibration origins (empty: the intervals calibrate on val)

    def part(self, name: str) -> Range:
        """The origin range of part "train", "val", "cal" or "test"."""
        return getattr(self, name)

    def count(self, name: str) -> int:
        """Number of origins in a part."""
        a, b = self.part(name)
        return max(b - a, 0)


def series_split(series_id: str, offset: int, length: int, ranges: dict[str, Range], seq_length: int,
                 horizon: int = 1, scaler: Scaler = IDENTITY) -> SeriesSplit:
    """A SeriesSplit from local origin ranges: made global, with the scaler's fit range.

    fit_range ends one past the last training target, local index train_end - 1 + L + H - 1.
    """
    fit_end = ranges["train"][1] - 1 + seq_length + horizon - 1
    glob = {k: (offset + a, offset + b) for k, (a, b) in ranges.items()}
    return SeriesSplit(series_id, offset, length, glob["train"], glob["val"], glob["test"],
                       (offset, offset + max(fit_end, 0) + 1), scaler, cal=glob.get("cal", (offset, offset)))


@dataclass(frozen=True)
class Split:
    """What the window stage hands on: window geometry, every series' origin ranges and scalers.

    normalize: "none" | "standard" (the series' scaler) | "window" (each window by its own stats);
    source: "generate" | "file"; frequency: a pandas alias or an integer step as text;
    season_length: inferred from the frequency (None when unknown); seasons: all of the calendar's
    seasons that every series of the data is long enough for (the same in every bucket).
    """

    seq_length: int
    horizon: int
    series: tuple[SeriesSplit, ...]
    train_fraction: float = 0.8
    val_fraction: float = 0.1
    normalize: str = "none"
    source: str | None = None
    frequency: str | None = None
    season_length: int | None = None
    seasons: tuple[int, ...] = ()  # every season of the calendar, main one first (sub-daily: the day, the week)

    # ---------------------------------------------------------------- origin arithmetic

    def origins(self, part: str) -> np.ndarray:
        """Every origin of one part ("train", "val", "cal" or "test") across series: (n_part,) int64."""
        ranges = [np.arange(*s.part(part), dtype=np.int64) for s in self.series]
        return np.concatenate(ranges) if ranges else np.empty(0, dtype=np.int64)

    def count(self, part: str) -> int:
        """Number of origins in a part, over all series."""
        return sum(s.count(part) for s in self.series)

    def series_index(self, origins: np.ndarray) -> np.ndarray:
        """Position in `series` of the series each origin (or any global index) belongs to: (n,)."""
        offsets = np.array([s.offset for s in self.series])
        return np.searchsorted(offsets, np.asarray(origins), side="right") - 1

    def last_observed(self, origins: np.ndarray) -> np.ndarray:
        """T = o + L - 1, the last point each origin's window reads: (n,)."""
        return np.asarray(origins, dtype=np.int64) + self.seq_length - 1

    def input_index(self, origins: np.ndarray) -> np.ndarray:
        """Indices o .. o+L-1 of each origin's inputs: (n, L)."""
        return np.asarray(origins, dtype=np.int64)[:, None] + np.arange(self.seq_length)

    def target_index(self, origins: np.ndarray, steps: int | None = None) -> np.ndarray:
        """Indices o+L .. o+L+steps-1 of each origin's targets (steps defaults to the horizon): (n, steps)."""
        return self.last_observed(origins)[:, None] + np.arange(1, (steps or self.horizon) + 1)

    def local(self, index: np.ndarray) -> np.ndarray:
        """Global indices as positions within their own series (0 = the series' first point): (n,)."""
        index = np.asarray(index)
        return index - np.array([s.offset for s in self.series], dtype=np.int64)[self.series_index(index)]

    def last_origins(self) -> np.ndarray:
        """The origin of each series' last window (its last L points): (n_series,)."""
        return np.array([s.offset + s.length - self.seq_length for s in self.series], dtype=np.int64)

    def subset(self, group: str | None) -> "Split":
        """Only the series of `group` (all of them for None); values and offsets are unchanged."""
        if group is None:
            return self
        return dataclasses.replace(self, series=tuple(s for s in self.series if s.group == group))

    @property
    def groups(self) -> list[str]:
        """The groups of its series, in order of first appearance (empty without groups)."""
        return list(dict.fromkeys(s.group for s in self.series if s.group is not None))

    @property
    def scalers(self) -> tuple[Scaler, ...]:
        return tuple(s.scaler for s in self.series)

    @property
    def ids(self) -> list[str]:
        return [s.series_id for s in self.series]

    # ---------------------------------------------------------------- derived splits

    def with_scalers(self, values: np.ndarray, normalize: str | None = None) -> "Split":
        """This split with every series' scaler fitted on its own fit_range only.

        normalize "standard": mean and std of the fit range (std 1 when it is 0); "window": its mean, a
        power of two and the window floor (see fit_scaler); otherwise identity.
        """
        normalize = normalize or self.normalize
        return dataclasses.replace(self, normalize=normalize, series=tuple(
            dataclasses.replace(s, scaler=fit_scaler(values, s.fit_range, normalize)) for s in self.series))

    def rebuilt(self, ranges: Sequence[dict[str, Range]], seq_length: int | None = None) -> "Split":
        """The same series with new local origin ranges (and window length), scalers kept."""
        L = seq_length or self.seq_length
        return dataclasses.replace(self, seq_length=L, series=tuple(
            dataclasses.replace(series_split(s.series_id, s.offset, s.length, r, L, self.horizon, s.scaler),
                                group=s.group)
            for s, r in zip(self.series, ranges)))

    def all_origins(self, values: np.ndarray) -> "Split":
        """Every origin of every series in train (no val, no test), scalers refitted on all of it."""
        ranges = []
        for s in self.series:
            n = n_windows(s.length, self.seq_length, self.horizon)
            ranges.append({"train": (0, n), "val": (n, n), "cal": (n, n), "test": (n, n)})
        return self.rebuilt(ranges).with_scalers(values)

    def refit_blocks(self, values: np.ndarray, every: int) -> list[tuple["Split", np.ndarray]]:
        """(training split, origins) per block of `every` test origins of each series.

        A block's split has train/val ranges over the points strictly before each series' first
        target in the block (purged as above) and scalers refitted on them; a series with no
        origin in the block has empty ranges. Raises ValueError when a block leaves no history.
        """
        L, H = self.seq_length, self.horizon
        longest = max(s.count("test") for s in self.series)
        empty = {"train": (0, 0), "val": (0, 0), "cal": (0, 0), "test": (0, 0)}
        blocks = []
        for start in range(0, longest, every):
            ranges, origins = [], []
            for s in self.series:
                a, b = s.test[0] + start, min(s.test[0] + start + every, s.test[1])
                if a >= b:
                    ranges.append(empty)
                    continue
                train, val = fit_ranges(n_windows(a + L - s.offset, L, H), self.val_fraction, H)
                if train[1] < 1:
                    raise ValueError(f"series {s.series_id!r}: too little history to refit before origin {a - s.offset}")
                ranges.append({"train": train, "val": val, "cal": (val[1], val[1]),
                               "test": (a - s.offset, b - s.offset)})
                origins.append(np.arange(a, b, dtype=np.int64))
            blocks.append((self.rebuilt(ranges).with_scalers(values), np.concatenate(origins)))
        return blocks

    def seen_by(self, seq_length: int, history: int, scalers: Sequence[Scaler], normalize: str) -> "Split":
        """This split's val, cal and test targets as a model with its own window length and scalers
        reads them (its train range is empty).

        Only targets with at least `history` points before them in their series are kept, so
        models with different window lengths are scored on the same targets:

            targets of a part of this split:  [part[0] + L, part[1] + L)
            a window of length L' for target t starts at t - L' (and needs t - L' >= offset)
        """
        ranges = []
        for s in self.series:
            parts = {"train": (0, 0)}
            for name in ("val", "cal", "test"):
                a, b = s.part(name)
                first, end = max(a + self.seq_length, s.offset + history), b + self.seq_length
                parts[name] = (first - seq_length - s.offset, max(first, end) - seq_length - s.offset)
            ranges.append(parts)
        view = self.rebuilt(ranges, seq_length)
        return dataclasses.replace(view, normalize=normalize, series=tuple(
            dataclasses.replace(s, scaler=sc) for s, sc in zip(view.series, scalers)))


def fit_scaler(values: np.ndarray, fit_range: Range, normalize: str) -> Scaler:
    """The scaler of one series, from values[fit_range] in float64.

    "standard": its mean and std (std 1 when it is 0). "window": its mean, and a power of two
    near its largest distance from the mean (1 when there is none), with the window floor
    (WINDOW_FLOOR times its in-sample naive MAE, mean |y[t] - y[t-1]|, in those units). Each
    window is then scaled by its own statistics, which a shift and a power of two leave
    unchanged, so the forecast in the series' units is the same; the shift, in float64 before
    the float32 window arithmetic, keeps a series' variation in float32's precision whatever its
    level (a meter at 1.2e8 swinging by +-2 is, uncentred, below float32's resolution of 8
    there), and the power of two keeps the squares far from overflow. "none": identity.
    """
    if normalize not in ("standard", "window"):
        return IDENTITY
    fit = np.asarray(values[slice(*fit_range)], dtype=np.float64)
    if normalize == "window":
        finite = fit[np.isfinite(fit)]
        if not finite.size:
            return IDENTITY
        centre = float(finite.mean())
        top = float(np.abs(finite - centre).max())
        unit = float(np.ldexp(1.0, int(np.frexp(top)[1]))) if top > 0 else 1.0
        steps = np.abs(np.diff(finite))
        spread = float(steps.mean()) if steps.size else 0.0  # the in-sample naive MAE: blind to a trend
        return Scaler(centre, unit, WINDOW_FLOOR * spread / unit)
    std = float(fit.std())
    return Scaler(float(fit.mean()), std if std > 0 else 1.0)


def build_split(lengths: Iterable[int], ids: Iterable[str], seq_length: int, horizon: int = 1,
                train_fraction: float = 0.8, val_fraction: float = 0.1, groups: Sequence[str | None] | None = None,
                calibration: int = 0, anchor: int | None = None, **info) -> Split:
    """The split of series of `lengths` stored end to end (identity scalers; see Split.with_scalers).

    `groups`: each series' group (for per-group models); `calibration`: origins per series held out
    for the intervals (see split_ranges); `anchor`: the window length whose val/cal/test targets
    this split shares (anchored_ranges; a search's longest window), None: its own;
    `info`: normalize, source, frequency, season_length.
    Raises ValueError naming the series that is too short to split.
    """
    if anchor is not None and anchor < seq_length:
        raise ValueError(f"the anchor window ({anchor}) is shorter than the window ({seq_length})")
    series, offset = [], 0
    ids = list(ids)
    groups = list(groups) if groups is not None else [None] * len(ids)
    for sid, n, group in zip(ids, lengths, groups):
        try:
            ranges = (split_ranges(n_windows(n, seq_length, horizon), train_fraction, val_fraction, horizon, calibration)
                      if anchor is None else
                      anchored_ranges(n, seq_length, anchor, horizon, train_fraction, val_fraction, calibration))
        except ValueError as exc:
            raise ValueError(f"series {sid!r} ({n} points): {exc}") from None
        series.append(dataclasses.replace(series_split(sid, offset, n, ranges, seq_length, horizon), group=group))
        offset += n
    return Split(seq_length, horizon, tuple(series), train_fraction, val_fraction, **info)


def concat_splits(parts: Sequence[tuple[np.ndarray, Split]]) -> tuple[np.ndarray, Split]:
    """Several (values, Split) pairs (buckets of series) as one: values end to end, offsets shifted.

    The parts must share window geometry and calendar (seq_length, horizon, normalize, frequency,
    season); raises ValueError otherwise. One part is returned as it is.
    """
    if len(parts) == 1:
        return parts[0]
    first = parts[0][1]
    keys = ("seq_length", "horizon", "normalize", "frequency", "season_length")
    for _, sp in parts[1:]:
        if any(getattr(sp, k) != getattr(first, k) for k in keys):
            raise ValueError("buckets disagree on " + ", ".join(
                f"{k} ({getattr(first, k)} vs {getattr(sp, k)})" for k in keys if getattr(sp, k) != getattr(first, k)))
    series, shift = [], 0
    for values, sp in parts:
        for s in sp.series:
            series.append(dataclasses.replace(
                s, offset=s.offset + shift, **{k: (a + shift, b + shift) for k in (*PARTS, "fit_range")
                                               for a, b in [s.part(k) if k in PARTS else s.fit_range]}))
        shift += len(values)
    return np.concatenate([v for v, _ in parts]), dataclasses.replace(first, series=tuple(series))
