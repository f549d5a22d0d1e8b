"""The backtests of many buckets as one: metrics weighted by test origins, per series, the gate on
the aggregate (pure). What the evaluate stage writes to metrics.json from its buckets' results.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.components.baselines import finite, mean_or_none
from tasks.components.gate import decide_gate
from tasks.components.references import REFERENCES


def series_metrics(df: pd.DataFrame, scales: dict[str, float]) -> pd.DataFrame:
    """Metrics of each series over its test origins and leads, for every forecaster column.

    df: a backtest frame (series_id, lead, actual, model, naive[, seasonal_naive...][, ets, theta, arima], ...);
    scales: each series' MASE denominator. Returns one row per series: series_id, n (rows), and
    <forecaster>_<metric> for metric in mse, rmse, mae, smape, mase (NaN where the series'
    in-sample naive error is 0: MASE is undefined for it).
    """
    forecasters = [c for c in df if c in ("model", "naive", *REFERENCES) or c.startswith("seasonal_naive")]
    scale = df["series_id"].map(scales).to_numpy(float)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, np.nan)  # MASE undefined: NaN, per series
    y = df["actual"].to_numpy(float)
    cols = {"series_id": df["series_id"].to_numpy(object)}
    for f in forecasters:
        e = y - df[f].to_numpy(float)
        den = np.abs(y) + np.abs(df[f].to_numpy(float))
        cols[f"{f}_se"] = e**2
        cols[f"{f}_ae"] = np.abs(e)
        cols[f"{f}_sape"] = np.divide(200.0 * np.abs(e), den, out=np.zeros_like(den), where=den > 0)
        cols[f"{f}_ase"] = np.abs(e) / scale
    means = pd.DataFrame(cols).groupby("series_id", sort=False).mean()
    out = pd.DataFrame({"series_id": means.index.astype(str),
                        "n": df.groupby("series_id", sort=False).size().loc[means.index].to_numpy()})
    for f in forecasters:
        out[f"{f}_mse"] = means[f"{f}_se"].to_numpy()
        out[f"{f}_rmse"] = np.sqrt(means[f"{f}_se"].to_numpy())
        out[f"{f}_mae"] = means[f"{f}_ae"].to_numpy()
        out[f"{f}_smape"] = means[f"{f}_sape"].to_numpy()
        out[f"{f}_mase"] = means[f"{f}_ase"].to_numpy()
    return out


def _weighted(values: list, weights: list[float]) -> float | None:
    """The weighted mean; None when any value is undefined (as `lead_metrics` treats one)."""
    if any(v is None for v in values):
        return None
    w = np.asarray(weights, dtype=float)
    return float(np.dot(np.asarray(values, dtype=float), w) / w.sum()) if w.sum() else None


def aggregate(results: list[dict]) -> dict:
    """The backtest metrics of all buckets as one (metrics.json of the evaluate stage).

    One bucket: its result as it is. Several: per-lead means weighted by each bucket's test
    origins (rmse from the combined mse; undefined anywhere, undefined combined), over the
    forecasters every bucket has (the references included); interval coverage and width weighted
    likewise, the calibration of each bucket kept per bucket (its halfwidths and final_halfwidths:
    each bucket's forecast reads its own bucket's); the baseline gate on the combined
    metrics, facing the baseline the buckets' gates were asked to face.
    """
    if len(results) == 1:
        return {**results[0], "n_buckets": 1}
    first, n = results[0], [r["n_test"] for r in results]
    names = [k for k in first["per_lead"] if all(k in r["per_lead"] for r in results)]
    per_lead = aggregate_per_lead([r["per_lead"] for r in results], n, names, first["horizon"])
    metrics = {name: {k: mean_or_none(v) for k, v in per.items()} for name, per in per_lead.items()}
    test = {}
    for level in first["intervals"]["test"]:
        stats = [r["intervals"]["test"][level] for r in results]
        test[level] = {"coverage": _weighted([s["coverage"] for s in stats], n),
                       "mean_width": _weighted([s["mean_width"] for s in stats], n),
                       "coverage_by_lead": [_weighted([s["coverage_by_lead"][h] for s in stats], n)
                                            for h in range(first["horizon"])],
                       "zero_width": all(s.get("zero_width", False) for s in stats)}
    iv = [r["intervals"] for r in results]
    intervals = {"levels": first["intervals"]["levels"], "scale": first["intervals"]["scale"],
                 "origins": first["intervals"].get("origins", "validation"),
                 **({"updated": first["intervals"]["updated"]} if "updated" in first["intervals"] else {}),
                 "method": "/".join(sorted({i["method"] for i in iv})), "test": test,
                 "n_calibration": sum(i["n_calibration"] for i in iv),
                 "clipped": sorted({c for i in iv for c in i["clipped"]}),
                 "zero_width": [k for k, t in test.items() if t["zero_width"]],
                 "per_bucket": [{"n_calibration": i["n_calibration"], "halfwidths": i["halfwidths"],
                                 **({"final_halfwidths": i["final_halfwidths"]} if "final_halfwidths" in i else {})}
                                for i in iv]}
    undefined = {k: v for r in results for k, v in r.get("undefined", {}).items()}
    model_mse, naive_mse = metrics["model"]["mse"], metrics["naive"]["mse"]
    ratio = finite(naive_mse / model_mse) if model_mse else None
    if ratio is None:
        undefined["naive_mse_ratio"] = "both test MSEs are 0" if naive_mse == 0 else "the model's test MSE is 0"
    seasons = [m for m in first.get("seasons", []) if f"seasonal_naive_{m}" in names or m == first["season_length"]]
    refs = aggregate_references([r.get("references") or {"names": []} for r in results], names)
    pretest = aggregate_pretest([r["pretest"] for r in results], first["horizon"])
    gate = decide_gate(pretest, metrics, undefined, first["gate"].get("asked", "best"))
    return {**{k: first.get(k) for k in ("horizon", "season_length", "frequency", "refit_every")},
            "seasons": seasons, "metrics": metrics, "per_lead": per_lead, "n_test": sum(n),
            "naive_mse_ratio": ratio, "intervals": intervals, "pretest": pretest, "gate": gate, "references": refs,
            "undefined": undefined, "refits": sum(r["refits"] for r in results), "n_buckets": len(results),
            **({"ensemble": {**first["ensemble"], "mean_spread": _weighted([r["ensemble"]["mean_spread"]
                                                                             for r in results], n)}}
               if all("ensemble" in r for r in results) else {})}


def aggregate_per_lead(parts: list[dict], n: list[int], names: list[str], horizon: int) -> dict:
    """Per-lead metrics of several buckets as one: each metric's mean weighted by the buckets'
    origins `n` (rmse from the combined mse), for the forecasters `names`."""
    per_lead: dict = {}
    for name in names:
        per = {metric: [_weighted([p[name][metric][h] for p in parts], n) for h in range(horizon)]
               for metric in ("mse", "mae", "smape", "mase")}
        per["rmse"] = [None if v is None else float(np.sqrt(v)) for v in per["mse"]]
        per_lead[name] = {k: per[k] for k in ("mse", "rmse", "mae", "smape", "mase")}
    return per_lead


def aggregate_pretest(parts: list[dict], horizon: int) -> dict:
    """Several buckets' pretest_scores as one, weighted by their origins (the forecasters every
    bucket with origins has)."""
    used = [p for p in parts if p["n"]]
    out = {"origins": parts[0]["origins"], "n": sum(p["n"] for p in used), "per_lead": {}, "metrics": {}}
    if used:
        names = [k for k in used[0]["per_lead"] if all(k in p["per_lead"] for p in used)]
        out["per_lead"] = aggregate_per_lead([p["per_lead"] for p in used], [p["n"] for p in used], names, horizon)
        out["metrics"] = {name: {k: mean_or_none(v) for k, v in per.items()} for name, per in out["per_lead"].items()}
    return out


def aggregate_references(infos: list[dict], kept: list[str]) -> dict:
    """The references' info of every bucket as one: the names kept (every bucket has them) and
    every series that fell back to the naive forecast, per reference."""
    fallback: dict[str, dict[str, str]] = {}
    for info in infos:
        for name, series in info.get("fallback", {}).items():
            if name in kept:
                fallback.setdefault(name, {}).update(series)
    return {**infos[0], "names": [k for k in infos[0]["names"] if k in kept], "fallback": fallback}


def sample_series(by_series: pd.DataFrame, metric: str = "model_mase") -> dict[str, str]:
    """Series to show in figures: best, median and worst by `metric` (finite values), or the only one."""
    ok = by_series[np.isfinite(by_series[metric].to_numpy(float))].sort_values(metric, kind="stable")
    if ok.empty:
        ok = by_series
    if len(ok) == 1:
        return {"only": str(ok["series_id"].iloc[0])}
    ids = ok["series_id"].astype(str).tolist()
    return {"best": ids[0], "median": ids[(len(ids) - 1) // 2], "worst": ids[-1]}
