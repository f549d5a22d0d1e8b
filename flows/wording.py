"""The run's sentences about its numbers: the gate's verdict, the intervals, how an error compares
with a baseline's (the report layer: flows/report.py and the summary print them).

Nothing here is in a stage's key: the numbers are decided in tasks/components (gate.py,
intervals.py), and rewording a sentence here recomputes nothing.
"""

from __future__ import annotations

import math

from tasks.components.gate import GATE_FAILED_STATUS, TIE_RTOL


def interval_words(name: str, test: dict) -> str:
    """One level of the interval line: coverage and width, or why it is not an interval."""
    if test.get("zero_width"):
        return f"{name}%: zero width (every validation forecast was exact), not an interval"
    if test.get("mean_width") is None:
        return f"{name}%: not available"
    return f"{name}%: coverage {test['coverage']:.2f}, mean width {test['mean_width']:.4g}"


def gate_line(gate: dict, horizon: int, n_origins: int) -> str:
    """The gate as one line of the summary: where it was decided (the origins before the test
    range), the baseline it faced and why that one, the verdict (a tie within the seed noise
    passes), what the forecast is, and the same pair on the test range (`n_origins` origins,
    `horizon` leads): always in the judged metric, MASE unless it is undefined."""
    name = gate["baseline"].replace("_", "-")
    before = f"{gate.get('n_origins', 0)} {gate.get('origins', 'validation')} origins before the test range"
    failed = f"the forecast is still the model's (exit status {GATE_FAILED_STATUS}; never promoted)"
    if not gate.get("decided", True) or gate.get("metric") is None or gate["model"] is None \
            or gate["baseline_value"] is None:
        return f"gate: not passed: {gate_reason(gate) or 'no metric to judge on'}; {failed}"
    metric = gate["metric"].upper()
    spec = ".3f" if gate["metric"] == "mase" else ".4g"
    pair = f"model {metric} {gate['model']:{spec}} vs {name} {gate['baseline_value']:{spec}}"
    diff = ratio_phrase(gate["model"], gate["baseline_value"])
    noise = (gate.get("noise") or {}).get("relative")
    tolerance = gate.get("tolerance", 0.0)
    if gate.get("tie"):
        head = f"gate: passed, a tie within the seed noise (±{_pct(tolerance)}) on the {before}: {pair} ({diff})" \
            if tolerance > TIE_RTOL else f"gate: passed, a tie on the {before}: {pair} ({diff})"
    elif gate["passed"]:
        head = f"gate: passed on the {before}: {pair} ({diff})"
    else:
        head = f"gate: FAILED on the {before}: {pair} ({diff})"
    asked = gate.get("asked", "best")
    if asked == "best" and len(gate.get("versus") or {}) > 1:
        head += f", the best of {len(gate['versus'])} baselines there"
    elif asked != "best":
        head += f", the baseline asked for (--gate-baseline {asked})"
    if not gate["passed"]:
        head += (f", more than the seed noise (±{_pct(tolerance)})" if tolerance > TIE_RTOL else
                 "; seed noise not measured (one seed: ties are exact)" if noise is None else "")
    head += "; the forecast is the model's" if gate["passed"] else f"; {failed}"
    if (test := gate.get("test")) and test.get("model") is not None and test.get("baseline") is not None:
        head += (f"; on the test range ({n_origins} origins, horizon {horizon}): {metric} {test['model']:{spec}} vs "
                 f"{test['baseline']:{spec}} ({ratio_phrase(test['model'], test['baseline'])})")
    reason = gate_reason(gate)
    return head + (f"; {reason}" if reason else "")


def gate_reason(gate: dict) -> str | None:
    """The gate's "why" items (tasks.components.gate) as one clause, "; "-joined; None without any."""
    said = [why_words(w) for w in gate.get("why") or ()]
    return "; ".join(said) or None


def why_words(why: dict) -> str:
    """One WHY item of the gate (tasks.components.gate) in words."""
    kind = why["kind"]
    if kind == "no_season":
        return f"no season is known: the gate faced {why['faced']}"
    if kind == "not_computed":
        return f"{why['baseline']} was not computed in this backtest"
    if kind == "no_metric":
        return "no metric is defined for the model and the baseline"
    if kind == "judged_on":
        return f"judged on {why['metric'].upper()}: {why.get('undefined') or 'MASE is undefined'}"
    if kind == "not_finite":
        return f"{why['forecaster']} {why['metric'].upper()} is {why['value']}"
    if kind == "no_origins":
        return "no validation or calibration origins before the test range to decide it on (--val-fraction 0)"
    raise ValueError(f"unknown gate reason {kind!r}")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%" if x >= 0.001 else f"{100 * x:.2g}%"


def ratio_phrase(model: float | None, base: float | None) -> str:
    """How a model's error compares with a baseline's, in words right both ways: "8.7x lower",
    "1.3x higher", and as a percentage of the baseline under 1.1x ("4.0% lower", "0.2% higher"),
    "equal", "exact" (model 0, baseline not), or "undefined"."""
    if model is None or base is None or not (math.isfinite(model) and math.isfinite(base)):
        return "undefined"
    if model == base:
        return "equal"
    if model == 0:
        return "exact"
    if base == 0:
        return "the baseline is exact"
    r = base / model if model < base else model / base
    side = "lower" if model < base else "higher"
    if r < 1.095:
        return f"{_pct(abs(model / base - 1))} {side}"
    return f"{r:.1f}x {side}" if r < 1000 else f"over 1000x {side}"
