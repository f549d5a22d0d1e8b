"""Split-conformal prediction intervals, per lead time: pure numpy.

Calibrate on validation (calibration) residuals, never on a target not yet observed: for level
1 - alpha, the half-width at lead h is the ceil((n + 1)(1 - alpha))-th smallest |residual| at
that lead. Under exchangeability the interval y_hat +- q covers the truth with probability
>= 1 - alpha. In a rolling-origin backtest (sequential_halfwidths) each later origin adds the
scores of the earlier test targets already observed at it to the calibration scores, the
sequential update of Xu & Xie (2021), "Conformal prediction interval for dynamic time-series",
ICML (EnbPI); its k-th smallest is found without sorting the union (kth_of_union).
"""

from __future__ import annotations

import math

import numpy as np


def conformal_halfwidths(residuals: np.ndarray, levels: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Half-widths per level and lead from calibration residuals (n, horizon) -> {level: (horizon,)}."""
    r = np.abs(np.asarray(residuals, dtype=float))
    if r.ndim == 1:
        r = r[:, None]
    n = r.shape[0]
    out = {}
    for level in levels:
        k = math.ceil((n + 1) * level)
        if n == 0:
            q = np.full(r.shape[1], np.nan)
        elif k > n:  # too few calibration points for this level: the interval is unbounded
            q = np.full(r.shape[1], np.inf)
        else:
            q = np.sort(r, axis=0)[k - 1]
        out[level_name(level)] = q
    return out


def nested(widths: dict[str, np.ndarray], levels: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Half-widths made nested across levels: each level's at least every lower level's, per
    lead (and origin): {level name: array}, the same shapes as `widths`.

    The levels are calibrated each on its own (calibrate: the 80% quantile per lead, the 95% one
    pooled over leads when the origins are too few for it per lead), so a higher level's estimate
    can come out narrower at some lead (an all-negative monthly series with a multiplicative
    season, the 95% band fell inside the 80% one at some leads). Taking the running maximum from the lowest level up
    only widens an interval, which keeps each level's coverage guarantee, and gives
    lower_95 <= lower_80 <= forecast <= upper_80 <= upper_95 at every lead by construction. A NaN
    (no calibration) stays NaN; an infinite half-width passes on up.
    """
    out = dict(widths)
    below = None
    for level in sorted(levels):
        name = level_name(level)
        if name not in out:
            continue
        q = np.asarray(out[name], dtype=float)
        if below is not None:
            q = np.where(np.isnan(q) | np.isnan(below), q, np.maximum(q, below))
        out[name] = q
        below = q
    return out


def level_name(level: float) -> str:
    """0.8 -> '80' (the key used in tables and files)."""
    return f"{round(level * 100):d}"


def interval_stats(y: np.ndarray, yhat: np.ndarray, halfwidth: np.ndarray) -> dict[str, float]:
    """Empirical coverage and mean width of yhat +- halfwidth over y, both (n, horizon)."""
    y, yhat = np.asarray(y, dtype=float), np.asarray(yhat, dtype=float)
    inside = np.abs(y - yhat) <= halfwidth
    return {"coverage": float(inside.mean()), "mean_width": float(np.mean(2 * np.broadcast_to(halfwidth, y.shape)))}


def calibrate(scores: np.ndarray, levels: tuple[float, ...]) -> dict:
    """Score half-widths {level: (horizon,)} from calibration scores (n, horizon), and how they were found.

    Each level on its own: per lead when there are enough points for it (n >= level / (1 - level):
    4 for 80%, 19 for 95%); else the scores are divided by each lead's mean score and pooled over
    leads (n * horizon points), the quantile scaled back per lead. A level still out of reach is
    clipped at the largest score and named in "clipped" (the exact split-conformal interval would
    be unbounded). "method" is "per lead", "pooled over leads", or both with the pooled levels
    named ("per lead, 95% pooled over leads"). The levels are then nested (`nested`): a higher
    level's half-width is never below a lower one's at any lead. Deciding per level keeps the exact per-lead
    quantile for a level the points suffice for: on the quality panel's one-season horizons
    (benchmarks/RESULTS.md, 3 seeds) 80% coverage rose from 0.748 to 0.758 (pooling every level
    whenever 95% needed it had given the short series narrower 80% intervals).
    """
    s = np.abs(np.asarray(scores, dtype=float))
    s = s[:, None] if s.ndim == 1 else s
    n, h = s.shape
    profile = lead_profile(s)
    widths, clipped, pooled_levels = {}, [], []
    for level in levels:
        name = level_name(level)
        if pooled_over_leads(s, level):
            pooled = (s / profile).reshape(-1, 1)
            q, scale = conformal_halfwidths(pooled, (level,))[name], profile
            pooled_levels.append(name)
        else:
            pooled, scale = s, np.ones(h)
            q = conformal_halfwidths(pooled, (level,))[name]
        if np.isinf(q).any():
            q = np.where(np.isinf(q), pooled.max(axis=0), q)
            clipped.append(name)
        widths[name] = q * scale
    widths = nested(widths, levels)
    if not pooled_levels:
        method = "per lead"
    elif len(pooled_levels) == len(levels):
        method = "pooled over leads"
    else:
        method = f"per lead, {'/'.join(pooled_levels)}% pooled over leads"
    return {"method": method, "n_calibration": int(n), "halfwidths": widths, "clipped": clipped}


def lead_profile(scores: np.ndarray) -> np.ndarray:
    """Each lead's mean score over the calibration origins (1 where it is 0 or there are none): (horizon,).

    What calibrate() divides the scores by before pooling them over leads; scores: |scores| (n, horizon).
    """
    n, h = scores.shape
    profile = scores.mean(axis=0) if n else np.ones(h)
    return np.where(profile > 0, profile, 1.0)


def pooled_over_leads(scores: np.ndarray, level: float) -> bool:
    """Whether calibrate() pools the calibration scores (n, horizon) over leads for `level`: too few
    origins for the per-lead quantile (ceil((n + 1) level) > n) and more than one lead."""
    n, h = scores.shape
    return bool(n and math.ceil((n + 1) * level) > n and h > 1)


def kth_of_union(base: np.ndarray, extra: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The k-th smallest (1-based) of base and one row of extra, for every row, without sorting the union: (r,).

    base: sorted ascending (n,); extra: (r, m), NaN where a row has no value; k: (r,) (or a scalar)
    with 1 <= k <= n + that row's number of values. A binary search, for all rows at once, on t,
    the number of the row's values among the k smallest of the union (the k-th smallest of two
    sorted arrays): O(m log m) per row to sort its own values, never the base.
    """
    base = np.asarray(base, dtype=float)
    e = np.sort(np.asarray(extra, dtype=float).reshape(len(extra), -1), axis=1)  # NaN last
    r, n = e.shape[0], len(base)
    count = (~np.isnan(e)).sum(axis=1)
    k = np.broadcast_to(np.asarray(k, dtype=np.int64), (r,))
    if r and ((k < 1) | (k > n + count)).any():
        raise ValueError("k must lie between 1 and the size of each row's union")
    e = np.concatenate([np.where(np.isnan(e), np.inf, e), np.full((r, 1), np.inf)], axis=1)  # e[:, t]: (t+1)-th
    b = np.concatenate([[-np.inf], base])  # b[j]: the j-th smallest of base (b[0] below everything)
    rows = np.arange(r)
    lo, hi = np.maximum(0, k - n), np.minimum(k, count)
    while (active := lo < hi).any():  # the smallest t whose (t+1)-th value is not below base's (k-t)-th
        mid = (lo + hi) // 2
        ok = e[rows, mid] >= b[k - mid]
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)
    last = np.where(lo > 0, e[rows, np.maximum(lo - 1, 0)], -np.inf)  # the t-th value of the row
    return np.maximum(last, b[k - lo])


def sequential_halfwidths(scores: np.ndarray, levels: tuple[float, ...], later: np.ndarray, start: np.ndarray,
                          seen: np.ndarray, chunk: int = 1 << 22) -> dict[str, np.ndarray]:
    """Score half-widths {level: (m, horizon)} of m later (test) origins, each calibrated on the
    calibration scores (n, horizon) plus the later scores already observed at it.

    later: the later origins' scores (m, horizon), the rows of each series together and in time
    order; start (m,): the row of the first later origin of each row's series; seen (m, horizon):
    how many of the series' first later origins have their lead-h target observed at this origin
    (rows start .. start + seen - 1: their target at lead h is at or before its last observed
    point). Each level as calibrate() decides it on the calibration scores alone: per lead, the
    ceil((N + 1) level)-th smallest of the lead's calibration and observed later scores (N of
    them); pooled over leads, every lead's scores divided by the calibration lead profile and
    pooled (an origin then adds its observed later scores of all leads), scaled back per lead.
    Where the union is still too small for a level it is clipped at the union's largest score;
    with no calibration scores the half-widths are NaN (no intervals). A row that has seen nothing
    gets calibrate()'s half-widths exactly. The levels are nested as calibrate() nests them
    (`nested`), origin by origin and lead by lead. The sequential update of conformal scores as the
    targets arrive: Xu & Xie (2021), "Conformal prediction interval for dynamic time-series",
    ICML (EnbPI); it never reads a target the origin has not observed. The calibration scores are
    sorted once; each row's own scores at most `chunk` values at a time (kth_of_union).
    """
    s = np.abs(np.asarray(scores, dtype=float))
    s = s[:, None] if s.ndim == 1 else s
    n, h = s.shape
    seen = np.asarray(seen, dtype=np.int64).reshape(-1, h)
    later = np.abs(np.asarray(later, dtype=float)).reshape(-1, h)
    start = np.asarray(start, dtype=np.int64).reshape(-1)
    m = len(seen)
    profile = lead_profile(s)
    by_lead, pooled_base = None, None
    out = {}
    for level in levels:
        name = level_name(level)
        if n == 0:
            out[name] = np.full((m, h), np.nan)
        elif pooled_over_leads(s, level):
            if pooled_base is None:
                pooled_base = np.sort((s / profile).ravel())
            blocks = [later[:, j] / profile[j] for j in range(h)]
            out[name] = _union_quantile(pooled_base, blocks, start, seen, level, chunk)[:, None] * profile
        else:
            if by_lead is None:
                by_lead = np.sort(s, axis=0)
            out[name] = np.stack([_union_quantile(by_lead[:, j], [later[:, j]], start, seen[:, j : j + 1], level,
                                                  chunk) for j in range(h)], axis=1).reshape(m, h)
    return nested(out, levels)


def updated_halfwidths(scores: np.ndarray, levels: tuple[float, ...], later: np.ndarray) -> dict[str, np.ndarray]:
    """Score half-widths {level: (horizon,)} from the calibration scores (n, horizon) plus every
    later score (m, horizon), each level found as calibrate() decides it on the calibration scores
    (sequential_halfwidths of one origin that has seen them all: what a forecast past the end of
    the series, where every test target is observed, is calibrated on)."""
    h = np.shape(scores)[1] if np.ndim(scores) == 2 else 1
    later = np.asarray(later, dtype=float).reshape(-1, h)
    seen = np.full((1, h), len(later), dtype=np.int64)
    return {k: v[0] for k, v in sequential_halfwidths(scores, levels, later, np.zeros(1, dtype=np.int64),
                                                      seen).items()}


LONG = 256  # an origin that observed more test scores than this is found against a merged base (below)


def _union_quantile(base: np.ndarray, blocks: list[np.ndarray], start: np.ndarray, seen: np.ndarray, level: float,
                    chunk: int) -> np.ndarray:
    """Per row i the ceil((N + 1) level)-th smallest of the sorted `base` and blocks[b][start_i :
    start_i + seen[i, b]] for every block b (N values in all), clipped at the largest: (m,).

    Rows with at most LONG such scores: all at once, at most `chunk` values at a time. The rows of
    a series with more (a long test range): LONG rows at a time, the scores every one of them has
    seen merged into the base once, so a series of M test origins costs O(M^2 / LONG), not O(M^2).
    """
    m, nb = seen.shape
    out = np.empty(m)
    total = seen.sum(axis=1)
    short = np.flatnonzero(total <= LONG)
    step = max(1, chunk // max(1, int(seen[short].max(axis=0).sum()) if len(short) else 1))
    for a in range(0, len(short), step):
        rows = short[a : a + step]
        out[rows] = _kth_rows(base, blocks, np.repeat(start[rows, None], nb, axis=1), seen[rows], level)
    long = np.flatnonzero(total > LONG)
    for first in np.unique(start[long]):  # a series with many observed test scores
        mine = long[start[long] == first]
        for a in range(0, len(mine), LONG):
            rows = mine[a : a + LONG]
            common = seen[rows].min(axis=0)
            merged = np.sort(np.concatenate([base, *(b[first : first + c] for b, c in zip(blocks, common))]))
            out[rows] = _kth_rows(merged, blocks, np.broadcast_to(first + common, (len(rows), nb)),
                                  seen[rows] - common, level)
    return out


def _kth_rows(base: np.ndarray, blocks: list[np.ndarray], begin: np.ndarray, count: np.ndarray,
              level: float) -> np.ndarray:
    """Per row i the ceil((N + 1) level)-th smallest (the largest when N is smaller) of the sorted
    `base` and blocks[b][begin[i, b] : begin[i, b] + count[i, b]] (begin, count: (r, n_blocks)): (r,)."""
    parts = []
    for b, block in enumerate(blocks):
        j = np.arange(count[:, b].max() if len(count) else 0)
        at = np.minimum(begin[:, b, None] + j, max(len(block) - 1, 0))
        parts.append(np.where(j < count[:, b, None], block[at] if len(block) else np.nan, np.nan))
    n = len(base) + count.sum(axis=1)
    k = np.minimum(np.ceil((n + 1) * level).astype(np.int64), n)  # too few: the union's largest
    return kth_of_union(base, np.concatenate(parts, axis=1), k)
