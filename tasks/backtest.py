"""Rolling-origin backtest over the test range: pure functions (the evaluate stage calls them).

Every test origin forecasts H steps from the true history up to it, never from its own earlier
forecasts:

    origin o (a window start), L inputs, leads h = 1..H
        history   values[o : o+L]              last observed index T = o + L - 1
        targets   values[T+h]
    naive           values[T]                  (the last value, repeated)
    seasonal naive  values[T + h - m*ceil(h/m)] (the same point of the last season observed)

No refit by default: the trained model forecasts every origin. With refit_every K the model is
retrained (same config, same seed) before each block of K origins on all data strictly before
the block's first target, so a backtest costs ceil(n_test / K) extra trainings.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable

import numpy as np
import torch

from tasks.conformal import calibrate, interval_stats, level_name
from tasks.metrics import all_metrics, naive_scale
from tasks.scaling import REL_FLOOR
from tasks.train import predict, series_data
from tasks.windowing import (
    fit_ranges,
    fit_scaler,
    n_windows,
    ranges_to_index,
    series_entry,
)

log = logging.getLogger(__name__)

Refit = Callable[[dict], torch.nn.Module]  # a split with train/val ranges -> a freshly trained model


def series_index(split: dict, idx: np.ndarray) -> np.ndarray:
    """The position in split["series"] of the series each origin belongs to: (n,)."""
    offsets = np.array([s["offset"] for s in split["series"]])
    return np.searchsorted(offsets, idx, side="right") - 1


def model_forecasts(
    model: torch.nn.Module, values: np.ndarray, split: dict, idx: np.ndarray, steps: int, chunk: int = 65_536
) -> np.ndarray:
    """Forecasts of `steps` values after each origin `idx`, in the series' own units: (n, steps)."""
    data = series_data(values, split)
    out = predict(model, data, torch.as_tensor(idx), chunk, series_units=True, steps=steps).double().numpy()
    k = series_index(split, np.asarray(idx))
    mean = np.array([sc["mean"] for sc in split["scaler"]], dtype=float)[k]
    std = np.array([sc["std"] for sc in split["scaler"]], dtype=float)[k]
    return out * std[:, None] + mean[:, None]  # undo each series' global scaler on its own rows


def actuals(values: np.ndarray, idx: np.ndarray, seq_length: int, steps: int) -> np.ndarray:
    """The true values at leads 1..steps after each origin: (n, steps)."""
    return values[(np.asarray(idx) + seq_length)[:, None] + np.arange(steps)]


def baselines(values: np.ndarray, idx: np.ndarray, seq_length: int, steps: int, season: int | None) -> dict:
    """Naive and (if `season`) seasonal-naive forecasts from each origin: {name: (n, steps)}."""
    last = np.asarray(idx) + seq_length - 1
    h = np.arange(1, steps + 1)
    out = {"naive": np.repeat(values[last][:, None], steps, axis=1)}
    if season:
        out["seasonal_naive"] = values[last[:, None] + h - season * np.ceil(h / season).astype(np.int64)]
    return out


def lead_metrics(y: np.ndarray, yhat: np.ndarray, scale: np.ndarray) -> tuple[dict, dict]:
    """Metrics per lead {metric: [H]} and their averages over leads {metric: float}; y, yhat (n, H)."""
    per = [all_metrics(y[:, h], yhat[:, h], scale) for h in range(y.shape[1])]
    per_lead = {k: [p[k] for p in per] for k in per[0]}
    return per_lead, {k: float(np.mean(v)) for k, v in per_lead.items()}


def mase_scales(values: np.ndarray, split: dict, idx: np.ndarray) -> np.ndarray:
    """Each origin's MASE scale: its series' in-sample naive MAE on the training range: (n,)."""
    per_series = np.array([naive_scale(values[slice(*s["fit_range"])]) for s in split["series"]])
    return per_series[series_index(split, np.asarray(idx))]


def score_scales(values: np.ndarray, split: dict, idx: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """What a residual is divided by for conformal scores: (n,).

    normalize="window": the input window's own (floored) std, as tasks.scaling computes it, so
    intervals widen with the level of a growing series; otherwise the series' MASE scale.
    """
    idx = np.asarray(idx)
    if split.get("normalize") != "window":
        s = mase_scales(values, split, idx)
        return np.where(np.isfinite(s) & (s > 0), s, 1.0)
    L, out = split["seq_length"], np.empty(len(idx))
    for i in range(0, len(idx), chunk):
        x = values[idx[i : i + chunk, None] + np.arange(L)]
        std = np.sqrt(((x - x.mean(axis=1, keepdims=True)) ** 2).mean(axis=1))
        s = np.maximum(std, REL_FLOOR * np.abs(x).mean(axis=1))
        out[i : i + chunk] = np.where(s > 0, s, 1.0)
    return out


# --------------------------------------------------------------------------- refits


def refit_blocks(values: np.ndarray, split: dict, every: int) -> list[tuple[dict, np.ndarray]]:
    """(training split, origins) per block of `every` test origins of each series.

    A block's split has train/val ranges over the points strictly before each series' first
    target in the block (purged as in tasks/split.py) and a scaler refitted on them; a series
    with no origin in the block has empty ranges.
    """
    L, H, vf = split["seq_length"], split.get("horizon", 1), split.get("val_fraction", 0.1)
    longest = max(s["test"][1] - s["test"][0] for s in split["series"])
    blocks = []
    for start in range(0, longest, every):
        sub, origins = copy.deepcopy(split), []
        for i, s in enumerate(split["series"]):
            a, b = s["test"][0] + start, min(s["test"][0] + start + every, s["test"][1])
            off = s["offset"]
            if a >= b:
                sub["series"][i] = {**series_entry(s["series_id"], off, s["length"],
                                                   {"train": (0, 0), "val": (0, 0), "test": (0, 0)}, L, H),
                                    "fit_range": [off, off + 1]}
                continue
            train, val = fit_ranges(n_windows(a + L - off, L, H), vf, H)
            if train[1] < 1:
                raise ValueError(f"series {s['series_id']!r}: too little history to refit before origin {a - off}")
            sub["series"][i] = {**s, **series_entry(s["series_id"], off, s["length"],
                                                    {"train": train, "val": val, "test": (a - off, b - off)}, L, H)}
            origins.append(np.arange(a, b, dtype=np.int64))
        sub["scaler"] = fit_scaler(values, sub, sub.get("normalize", "none"))
        blocks.append((sub, np.concatenate(origins)))
    return blocks


def refit_forecasts(
    values: np.ndarray, split: dict, every: int, refit: Refit, steps: int, chunk: int = 65_536
) -> tuple[np.ndarray, np.ndarray, int]:
    """Origins, their forecasts (n, steps) from a model retrained before each block, and the number of fits."""
    blocks = refit_blocks(values, split, every)
    idx, preds = [], []
    for i, (sub, origins) in enumerate(blocks, 1):
        log.info("backtest refit %d/%d on %d training origins", i, len(blocks), len(ranges_to_index(sub, "train")))
        preds.append(model_forecasts(refit(sub), values, sub, origins, steps, chunk))
        idx.append(origins)
    order = np.argsort(np.concatenate(idx), kind="stable")
    return np.concatenate(idx)[order], np.concatenate(preds)[order], len(blocks)


# --------------------------------------------------------------------------- intervals and the gate


def conformal_bands(
    model: torch.nn.Module, values: np.ndarray, split: dict, levels: tuple[float, ...], chunk: int = 65_536
) -> dict:
    """Split-conformal score half-widths per level and lead, calibrated on the val origins only."""
    L, H = split["seq_length"], split.get("horizon", 1)
    val = ranges_to_index(split, "val")
    resid = actuals(values, val, L, H) - model_forecasts(model, values, split, val, H, chunk)
    cal = calibrate(resid / score_scales(values, split, val)[:, None], levels)
    if cal["clipped"]:
        log.warning("only %d validation origins: the %s%% interval(s) are clipped at the largest score",
                    cal["n_calibration"], ", ".join(cal["clipped"]))
    return {**cal, "levels": list(levels), "scale": "window std" if split.get("normalize") == "window" else "series"}


def band_columns(pred: np.ndarray, scales: np.ndarray, cal: dict) -> dict[str, np.ndarray]:
    """lower_<level> / upper_<level> arrays (n, H) around `pred` for every calibrated level."""
    out = {}
    for name, q in cal["halfwidths"].items():
        half = np.asarray(q, dtype=float)[None, :] * scales[:, None]
        out[f"lower_{name}"], out[f"upper_{name}"] = pred - half, pred + half
    return out


def interval_report(y: np.ndarray, pred: np.ndarray, scales: np.ndarray, cal: dict) -> dict:
    """Empirical coverage (overall and per lead) and mean width of each level on the test origins."""
    out = {}
    for name, q in cal["halfwidths"].items():
        half = np.asarray(q, dtype=float)[None, :] * scales[:, None]
        stats = interval_stats(y, pred, half)
        by_lead = (np.abs(y - pred) <= half).mean(axis=0)
        out[name] = {**stats, "coverage_by_lead": [float(c) for c in by_lead]}
    return out


def baseline_gate(metrics: dict[str, dict[str, float]]) -> dict:
    """Does the model beat seasonal-naive MASE (naive when no season is known)?"""
    base = "seasonal_naive" if "seasonal_naive" in metrics else "naive"
    model, ref = metrics["model"]["mase"], metrics[base]["mase"]
    return {"metric": "mase", "baseline": base, "model": model, "baseline_value": ref,
            "passed": bool(math.isfinite(model) and model < ref)}


def gate_line(gate: dict, horizon: int, n_origins: int) -> str:
    """The gate as one line of the run result."""
    name = gate["baseline"].replace("_", "-")
    verdict = "passed" if gate["passed"] else "FAILED"
    sign = "<" if gate["passed"] else ">="
    return (f"baseline gate {verdict}: model MASE {gate['model']:.3f} {sign} {name} {gate['baseline_value']:.3f} "
            f"on the backtest ({n_origins} origins, horizon {horizon})")


def level_names(levels: tuple[float, ...]) -> list[str]:
    """[0.8, 0.95] -> ['80', '95']."""
    return [level_name(lv) for lv in levels]
