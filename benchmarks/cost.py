"""What the default run costs on sub-daily, long and many-series files, against statsforecast (issue 26).

    python benchmarks/cost.py                       # every file of benchmarks/cost_files.py, one round
    python benchmarks/cost.py --files hourly,one_minute --rounds 2 --json out.json
    python benchmarks/cost.py --quick               # hourly and AirPassengers
    python benchmarks/cost.py --extra=--time-limit=60 --files hourly   # options passed to every run of ours

For each file, side by side in one run, each command in its own fresh process, one after the other:

    ours       python flows/rnn_flow.py --data-path FILE --time-column timestamp [--id-column series_id]
               every other setting at its default (the search, its statistical members, the backtest,
               the figures), against a Prefect server this script starts once (a user's `server`)
    statsforecast
               python benchmarks/sf_baseline.py FILE: import statsforecast, read the file, AutoETS +
               AutoTheta (season_length = the file's main season) cross_validation, refit=False, on
               the same test origins as ours (read from our run's predictions), h = our horizon

Wall seconds and CPU seconds (user + system of the process and its children) of each whole
command, and the ratio ours / statsforecast (the target: at most 3x). Quality: MASE of our
forecast and of each statsforecast model on the same test targets, each series scaled by its
in-sample one-step naive MAE up to its first test origin, averaged over every origin and lead.
The machine may be shared: the load average is printed at the start and the end; only ratios
within one run mean anything. Results go to a section of benchmarks/RESULTS.md (`--results`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.cost_files import FILES, QUICK, CostFile, by_name, write_file  # noqa: E402
from tasks.components.gate import GATE_FAILED_STATUS  # noqa: E402

FLOW = ROOT / "flows" / "rnn_flow.py"
BASELINE = ROOT / "benchmarks" / "sf_baseline.py"
SECTION = ("<!-- cost:start -->", "<!-- cost:end -->")
TARGET = 3.0


# the exit statuses of a run of ours that made its forecast: 0, or GATE_FAILED_STATUS (3) when the
# model did not pass the baseline gate (flows/commands.py; its outputs are complete, the forecast
# is the model's)
FORECAST_MADE = (0, GATE_FAILED_STATUS)


def timed(cmd: list[str], env: dict, timeout: float, ok: tuple[int, ...] = (0,)) -> dict:
    """Run `cmd`; its wall seconds, CPU seconds (its own and its children's), exit status and
    output. Raises RuntimeError when it exits with a status not in `ok`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "exit": proc.returncode, "output": proc.stdout + proc.stderr}


def ours(server, entry: CostFile, path: Path, work: Path, extra: list[str], timeout: float) -> dict:
    """The default run on `path`: times, its summary lines, and its predictions."""
    out = Path(tempfile.mkdtemp(prefix=f"ours-{entry.name}-", dir=work))
    cmd = [sys.executable, str(FLOW), "--data-path", str(path), "--time-column", "timestamp",
           *(["--id-column", "series_id"] if entry.many else []), "--output-dir", str(out / "artifacts"),
           "--data-dir", str(out / "data"), *extra]
    r = timed(cmd, server.env(PYTHONUNBUFFERED="1"), timeout, ok=FORECAST_MADE)
    run_dir = Path([ln for ln in r["output"].splitlines() if ln.startswith("outputs: ")][-1].split("outputs: ", 1)[1])
    summary = json.loads((run_dir / "stages.json").read_text())["summary"]
    tail = r["output"].split("\nstages:", 1)[-1]
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "exit": r["exit"], "pipeline_s": summary["pipeline_seconds"],
            "predictions": pd.read_parquet(run_dir / "predictions.parquet"),
            "metrics": json.loads((run_dir / "metrics.json").read_text()), "summary": "stages:" + tail}


def baseline(entry: CostFile, path: Path, predictions: pd.DataFrame, work: Path, timeout: float) -> dict:
    """statsforecast's AutoETS + AutoTheta cross-validation on the test origins of `predictions`."""
    sizes = predictions[predictions["lead"] == 1].groupby("series_id").size()
    sizes_path, out = work / f"{entry.name}-sizes.json", work / f"{entry.name}-sf.parquet"
    sizes_path.write_text(json.dumps({str(k): int(v) for k, v in sizes.items()}))
    horizon = int(predictions["lead"].max())
    cmd = [sys.executable, str(BASELINE), str(path), "--season", str(entry.season), "--horizon", str(horizon),
           "--test-sizes", str(sizes_path), "--out", str(out)]
    r = timed(cmd, {**os.environ, "PYTHONUNBUFFERED": "1"}, timeout)
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "cv": pd.read_parquet(out)}


def mase(path: Path, entry: CostFile, predictions: pd.DataFrame, cv: pd.DataFrame) -> dict:
    """MASE of ours and of each statsforecast model on the same targets (see the module docstring).
    Raises ValueError when the two backtests' targets differ."""
    df = pd.read_csv(path)
    ours_rows = predictions.assign(series_id=predictions["series_id"].astype(str))
    ids = df["series_id"].astype(str) if "series_id" in df else pd.Series(ours_rows["series_id"].iloc[0], index=df.index)
    cv = cv.assign(unique_id=cv["unique_id"].astype(str), origin=cv["cutoff"].astype(np.int64),
                   lead=(cv["ds"] - cv["cutoff"]).astype(np.int64))
    if "series_id" not in df:  # one series: ours names it after the file
        cv = cv.assign(unique_id=ours_rows["series_id"].iloc[0])
    merged = ours_rows.merge(cv.rename(columns={"unique_id": "series_id"}), on=["series_id", "origin", "lead"],
                             how="inner")
    if len(merged) != len(ours_rows) or len(merged) != len(cv):
        raise ValueError(f"{entry.name}: the test targets differ ({len(ours_rows)} of ours, {len(cv)} of "
                         f"statsforecast's, {len(merged)} shared)")
    if not np.allclose(merged["actual"].to_numpy(float), merged["y"].to_numpy(float)):
        raise ValueError(f"{entry.name}: the test values differ")
    scale = {}
    for sid, values in df["value"].groupby(ids.to_numpy()):
        first = int(merged.loc[merged["series_id"] == str(sid), "origin"].min())
        scale[str(sid)] = float(np.mean(np.abs(np.diff(values.to_numpy(float)[: first + 1]))))
    s = merged["series_id"].map(scale).to_numpy(float)
    err = {"ours": merged["model"], "AutoETS": merged["AutoETS"], "AutoTheta": merged["AutoTheta"]}
    return {k: float(np.mean(np.abs(merged["actual"].to_numpy(float) - v.to_numpy(float)) / s)) for k, v in err.items()}


def measure(server, entry: CostFile, path: Path, work: Path, extra: list[str], timeout: float) -> dict:
    o = ours(server, entry, path, work, extra, timeout)
    b = baseline(entry, path, o["predictions"], work, timeout)
    q = mase(path, entry, o["predictions"], b["cv"])
    rows = len(pd.read_csv(path))
    return {"file": entry.name, "frequency": entry.frequency, "rows": rows,
            "series": int(o["predictions"]["series_id"].nunique()), "horizon": int(o["predictions"]["lead"].max()),
            "test_origins": int((o["predictions"]["lead"] == 1).sum()),
            "ours": {"wall_s": o["wall_s"], "cpu_s": o["cpu_s"], "pipeline_s": o["pipeline_s"], "exit": o["exit"]},
            "statsforecast": {"wall_s": b["wall_s"], "cpu_s": b["cpu_s"]},
            "ratio": {"wall": o["wall_s"] / b["wall_s"], "cpu": o["cpu_s"] / b["cpu_s"]}, "mase": q,
            "summary": o["summary"]}


def table(res: dict) -> list[str]:
    head = ("| file | frequency | rows | series | test origins | ours wall s | sf wall s | wall ratio | ours CPU s | "
            "sf CPU s | CPU ratio | MASE ours | MASE AutoETS | MASE AutoTheta | exit |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in res["rows"]:
        flag = "**" if r["ratio"]["wall"] > TARGET else ""
        lines.append(f"| {r['file']} | {r['frequency']} | {r['rows']:,} | {r['series']} | {r['test_origins']:,} | "
                     f"{r['ours']['wall_s']:.1f} | {r['statsforecast']['wall_s']:.1f} | {flag}{r['ratio']['wall']:.2f}"
                     f"{flag} | {r['ours']['cpu_s']:.1f} | {r['statsforecast']['cpu_s']:.1f} | {r['ratio']['cpu']:.2f} | "
                     f"{r['mase']['ours']:.3f} | {r['mase']['AutoETS']:.3f} | {r['mase']['AutoTheta']:.3f} | "
                     f"{r['ours'].get('exit', 0)} |")
    return lines


def markdown(res: dict) -> str:
    worst = max(r["ratio"]["wall"] for r in res["rows"])
    lines = [SECTION[0], "## The default run's cost against statsforecast (issue 26)", "",
             f"`benchmarks/cost.py`, {res['date']}: {len(res['rows'])} runs, {res['cores']} cores, load average "
             f"{res['load_start'][0]:.2f} at the start and {res['load_end'][0]:.2f} at the end (a shared machine).",
             "", "```bash", res["command"], "```", "",
             "Each command is a fresh process, ours against a running Prefect server (`server`), one after the other "
             "on the same file. Wall and CPU seconds of the whole command (interpreter, imports, reading the file "
             "included); ratio = ours / statsforecast (target: at most 3). MASE on the same test targets, each "
             "series scaled by its in-sample one-step naive MAE up to its first test origin. exit: our run's "
             "status (3: the forecast was made, the model did not pass the baseline gate).", "", *table(res), "",
             f"Worst wall ratio: **{worst:.2f}x** (target {TARGET:g}x).", SECTION[1]]
    return "\n".join(lines) + "\n"


def write_results(path: Path, section: str) -> None:
    """Put `section` into `path` in place of an earlier one (else at the end)."""
    text = path.read_text() if path.exists() else ""
    if SECTION[0] in text and SECTION[1] in text:
        head, rest = text.split(SECTION[0], 1)
        text = head + section.rstrip("\n") + rest.split(SECTION[1], 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--files", help=f"comma-separated (default: all: {', '.join(f.name for f in FILES)})")
    p.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)}")
    p.add_argument("--rounds", type=int, default=1, help="measure every file this many times")
    p.add_argument("--extra", default="", help="options added to every run of ours, e.g. --extra=--time-limit=60")
    p.add_argument("--timeout", type=float, default=3600, help="seconds one command may take")
    p.add_argument("--json", help="also write every number as JSON")
    p.add_argument("--results", help="the markdown file for the section (default: none; the full run: "
                   "benchmarks/RESULTS.md when given as 'default')")
    a = p.parse_args(argv)
    files = by_name(a.files.split(",")) if a.files else by_name(QUICK) if a.quick else list(FILES)
    extra = [x for x in a.extra.replace("=", " ", 1).split() if x] if a.extra else []
    from tests.helpers.server import start_server, stop

    res = {"date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(), "load_start": os.getloadavg(), "rows": [],
           "command": "python benchmarks/cost.py" + (f" --files {a.files}" if a.files else "")
           + (" --quick" if a.quick else "") + (f" --rounds {a.rounds}" if a.rounds != 1 else "")
           + (f" --extra={a.extra}" if a.extra else "")}
    print(f"cost bench: {len(files)} file(s) x {a.rounds} round(s), load {res['load_start'][0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rnnflow-cost-") as tmp:
        work = Path(tmp)
        server = start_server(work / "prefect-home")
        try:
            paths = {f.name: write_file(f, work) for f in files}
            for _ in range(a.rounds):
                for entry in files:
                    row = measure(server, entry, paths[entry.name], work, extra, a.timeout)
                    res["rows"].append(row)
                    print(f"{entry.name:14s} ours {row['ours']['wall_s']:7.1f} s ({row['ours']['cpu_s']:6.1f} CPU)  "
                          f"statsforecast {row['statsforecast']['wall_s']:6.1f} s ({row['statsforecast']['cpu_s']:5.1f}"
                          f" CPU)  ratio {row['ratio']['wall']:.2f} wall {row['ratio']['cpu']:.2f} CPU  MASE ours "
                          f"{row['mase']['ours']:.3f} ets {row['mase']['AutoETS']:.3f} theta "
                          f"{row['mase']['AutoTheta']:.3f}", flush=True)
        finally:
            stop(server.process)
    res["load_end"] = os.getloadavg()
    print("\n".join(table(res)))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1, default=float))
    if a.results:
        write_results(ROOT / "benchmarks" / "RESULTS.md" if a.results == "default" else Path(a.results),
                      markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
