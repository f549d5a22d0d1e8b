"""The baseline gate, as numbers: does the model beat the baseline it faces, decided before the
test range (pure).

The gate faces the best of the baselines by default, or the one asked for, and is decided on the
calibration origins (the validation origins without any), where the forecaster that calibrates
the intervals has seen nothing (decide_gate). A difference within the measured seed noise is a
tie, and passes; the forecast is the model's either way, and the command line's exit status (3)
and promotion follow the verdict. The test range only reports. What the verdict says in words is
the report layer's (flows/wording.py), so rewording it changes no stage's key.
"""

from __future__ import annotations

import math

import numpy as np

from tasks.components.baselines import actuals, baselines, finite, lead_metrics, mase_scales
from tasks.components.references import REFERENCES, member_forecasts, mstl_seasons, reference_forecasts
from tasks.components.split import Split


GATE_METRICS = ("mase", "mae")  # MASE; MAE on the same targets when MASE is undefined
TIE_RTOL = 1e-9
GATE_BASELINES = ("best", "naive", "seasonal_naive", *REFERENCES)
GATE_ORIGINS = {"cal": "calibration", "val": "validation"}
GATE_FAILED_STATUS = 3  # the command line's exit status when the gate did not pass (flows/commands.py)
# WHY items: why a verdict is what it is, as data in the gate's "why" list (flows/wording.py words them):
#   {"kind": "no_season", "faced": "naive"}      seasonal_naive asked for, and no season is known
#   {"kind": "not_computed", "baseline": name}   the baseline asked for is not in this backtest
#   {"kind": "no_metric"}                        neither MASE nor MAE defined for both forecasters
#   {"kind": "judged_on", "metric": "mae", "undefined": why MASE is undefined (metrics' note) or None}
#   {"kind": "not_finite", "forecaster": name, "metric": "mase", "value": "nan"}
#   {"kind": "no_origins"}                       no origins before the test range to decide it on


def baseline_names(metrics: dict) -> list[str]:
    """Every baseline forecaster of a metrics dict, in the gate's order of preference on a tie:
    the seasonal-naive ones, naive, then the statistical references."""
    names = [k for k in metrics if k != "model"]
    return sorted(names, key=lambda k: (0 if k.startswith("seasonal_naive") else 1 if k == "naive" else 2))


def gate_candidates(metrics: dict, baseline: str = "best") -> tuple[list[str], dict | None]:
    """The forecasters the gate may face for `baseline` (it faces the best of them), and why not
    the one asked for (a WHY item) when it is not there.

    best: every baseline; seasonal_naive: every seasonal-naive lag (naive when no season is
    known); naive, ets, theta, arima: that one. Raises ValueError for another name.
    """
    if baseline not in GATE_BASELINES:
        raise ValueError(f"unknown gate baseline {baseline!r} (known: {', '.join(GATE_BASELINES)})")
    every = baseline_names(metrics)
    if baseline == "best":
        return every, None
    if baseline == "seasonal_naive":
        seasonal = [k for k in every if k.startswith("seasonal_naive")]
        return (seasonal, None) if seasonal else (["naive"], {"kind": "no_season", "faced": "naive"})
    if baseline in metrics:
        return [baseline], None
    return [], {"kind": "not_computed", "baseline": baseline}


def baseline_gate(metrics: dict[str, dict[str, float | None]], undefined: dict[str, str] | None = None,
                  baseline: str = "best", tolerance: float = 0.0) -> dict:
    """Does the model beat the baseline the gate faces: by default the best of every baseline
    (naive, seasonal naive, the statistical references), or the one `baseline` names?

    Judged on MASE, or on MAE when MASE is undefined (None: a constant training range; the
    reason is taken from `undefined`). A difference within `tolerance` of the baseline's value
    (relative: the measured seed noise, see decide_gate; 1e-9 at least) is a tie, and a tie
    passes: the model is as good as the baseline as far as can be told. A value that is NaN or
    infinite is never compared: the gate fails and says why. "why": the WHY items behind the
    verdict, when anything needs saying (flows/wording.py words them). "versus" holds the model's ratio to
    every baseline (model / baseline on the judged metric; < 1: the model is better), whichever
    one the gate faced.
    """
    names, note = gate_candidates(metrics, baseline)
    out = {"asked": baseline, "metric": None, "baseline": names[0] if names else baseline, "model": None,
           "baseline_value": None, "passed": False, "tie": False, "tolerance": float(tolerance), "versus": {}}
    if not names:
        return {**out, "why": [note]}
    metric = next((m for m in GATE_METRICS if all(metrics[k].get(m) is not None for k in ("model", *names))), None)
    out["metric"] = metric
    if metric is None:
        return {**out, "why": [{"kind": "no_metric"}]}
    why = [note] if note else []
    if metric != GATE_METRICS[0]:  # MASE undefined: `undefined` says why, when it does
        why.append({"kind": "judged_on", "metric": metric, "undefined": (undefined or {}).get("mase")})
    if why:
        out["why"] = why
    values = {k: float(metrics[k][metric]) for k in ("model", *names)}
    if not all(math.isfinite(v) for v in values.values()):
        bad = next(k for k, v in values.items() if not math.isfinite(v))
        return {**out, "model": finite(values["model"]),
                "why": [{"kind": "not_finite", "forecaster": bad, "metric": metric, "value": str(values[bad])}]}
    base = min(names, key=lambda k: values[k])
    model, ref = values["model"], values[base]
    tie = math.isclose(model, ref, rel_tol=max(TIE_RTOL, float(tolerance)), abs_tol=0.0)
    versus = {}
    for k in baseline_names(metrics):
        v = finite(metrics[k].get(metric))
        versus[k] = {"value": v, "ratio": finite(model / v) if v else (1.0 if v == 0 and model == 0 else None)}
    return {**out, "baseline": base, "model": model, "baseline_value": ref, "passed": bool(tie or model < ref),
            "tie": tie, "versus": versus}


def pretest_scores(values: np.ndarray, split: Split, part: str, pred: np.ndarray, seasons: tuple[int, ...],
                   references: tuple[str, ...] = (), members: dict | None = None,
                   season_length: int | None = None) -> dict:
    """The model's and every baseline's scores on the origins of `part` ("cal" or "val": those
    before the test range), what the gate is decided on: {"origins": "calibration" | "validation",
    "n", "per_lead", "metrics"}. pred: the model's forecasts there (n, H), as conformal_bands made
    them (for a hybrid, the one weighted without these origins). The baselines are the test
    range's, each from the history before these origins only: naive, the seasonal-naive lags
    that fit before them (`seasons`, main first), and the `references` fitted once per series on
    the history up to its first such origin (reference_forecasts), with the test range's season
    policy (mstl_seasons of the seasons that fit, `season_length` the --season-length given: MSTL
    on sub-daily data, never AutoETS or AutoTheta with a season of 1,440 minutes). members: a
    hybrid's members' forecasts on these origins (conformal_bands' "members"): a statistical member
    of a reference's name and season policy (member_forecasts) was fitted on that same history, so
    its forecasts stand for that reference's instead of fitting it again (the same forecasts, bit
    for bit).
    """
    idx = split.origins(part)
    out = {"origins": GATE_ORIGINS[part], "n": int(len(idx)), "per_lead": {}, "metrics": {}}
    if not len(idx):
        return out
    room = min(s.part(part)[0] + split.seq_length - s.offset for s in split.series if s.count(part))
    fitting = tuple(m for m in seasons if m <= room) if seasons and seasons[0] <= room else ()
    H = split.horizon
    forecasts = {"model": pred, **baselines(values, split, idx, H, fitting[0] if fitting else None, fitting[1:])}
    if references:
        season = fitting[0] if fitting else None
        mstl = mstl_seasons(split.frequency, fitting, season_length)
        given = member_forecasts(members["ensemble"], members["each"], season, mstl) if members else None
        found, _ = reference_forecasts(values, split, idx, H, season, tuple(references), mstl=mstl, given=given)
        forecasts.update(found)
    y, scale = actuals(values, split, idx), mase_scales(values, split, idx)
    for name, f in forecasts.items():
        out["per_lead"][name], out["metrics"][name] = lead_metrics(y, f, scale)
    return out


def network_weight(result: dict) -> float:
    """The weight a backtest result's forecaster puts on what a seed changes: a hybrid's weight on
    its networks' combination (of the hybrid that calibrates, the one the gate judges), else 1."""
    ens = result.get("ensemble") or {}
    weights = ens.get("calibration_weights") or ens.get("weights")
    return float(weights[0]) if ens.get("statistical") and weights else 1.0


def decide_gate(pretest: dict, test_metrics: dict, undefined: dict | None = None, baseline: str = "best",
                noise: dict | None = None, weight: float = 1.0) -> dict:
    """The baseline gate, decided on the origins before the test range (`pretest`: pretest_scores,
    never the test range), with ties within the measured seed noise.

    noise: {"relative": the median relative difference between two seeds of one configuration on
    these origins (tasks.validate.seed_noise; None: one seed, not measured), ...}; `weight`: the
    forecaster's weight on its networks (network_weight: a hybrid's statistical members do not
    change with the seed). The tolerance is their product. Besides baseline_gate's fields:
    "origins" and "n_origins" (what it was decided on), "noise", "decided" (False when there were
    no such origins: the gate did not pass, for want of anything to go by) and "test": the same
    pair on the test range ({"model", "baseline"} on the judged metric), to say by how much the
    model won or lost there.
    """
    relative = (noise or {}).get("relative")
    tolerance = float(relative) * float(weight) if relative is not None else 0.0
    if not pretest.get("n"):
        return {"asked": baseline, "metric": None, "baseline": baseline, "model": None, "baseline_value": None,
                "passed": False, "tie": False, "tolerance": tolerance, "versus": {}, "decided": False,
                "origins": pretest.get("origins", "validation"), "n_origins": 0, "noise": noise,
                "why": [{"kind": "no_origins"}]}
    gate = baseline_gate(pretest["metrics"], undefined, baseline, tolerance)
    gate.update(decided=gate["metric"] is not None, origins=pretest["origins"], n_origins=pretest["n"], noise=noise)
    metric, base = gate["metric"], gate["baseline"]
    if metric and base in test_metrics and "model" in test_metrics:
        gate["test"] = {"model": finite(test_metrics["model"].get(metric)),
                        "baseline": finite(test_metrics[base].get(metric))}
    return gate
