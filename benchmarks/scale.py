"""Outgrowing one machine, measured side by side in one run (issue "Outgrow one machine").

    python benchmarks/scale.py            # full: about 20-30 minutes on a 2-core machine
    python benchmarks/scale.py --quick    # small sizes, a few minutes
    python benchmarks/scale.py --json out.json

B1  per-task overhead: N no-op tasks on Prefect's Dask runner vs its thread runner vs raw
    distributed.Client.map (same LocalCluster shape: 2 worker processes x 1 thread), and the
    bucket size that keeps that overhead under 5% of a bucket's work
B2  series per second and peak memory (driver, and each Dask worker) of the pipeline
    (generate -> ingest -> window -> global model -> backtest -> evaluate) at 1k, 10k, 50k series
    with 1 and 2 workers: memory should stay flat as series grow
B3  10,000 series x 1,000 points in one Parquet file (10M rows): ingestion time against a bare
    pyarrow.parquet.read_table of the same file; peak memory of ingest + window; one epoch of a
    fixed number of steps of the global model

Every pipeline run is `python flows/rnn_flow.py ...` in its own process against a Prefect
server this script starts on a free loopback port (stopped at the end). The machine may be
shared: compare the ratios, and read the load average printed at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLOW = ROOT / "flows" / "rnn_flow.py"


def start_server(home: Path):
    """A `prefect server start` on a free port (the test suite's helper); its handle."""
    from tests.helpers.server import start_server as start

    return start(home)


def cli(server, out: Path, *args: str, timeout: float = 3600) -> dict:
    """One pipeline run: wall seconds, its summary (stages.json), and the peak RSS of the driver
    (the flow's own process) and of every other process that built an entry (the Dask workers),
    read from the entries' provenance."""
    cmd = [sys.executable, str(FLOW), *args, "--output-dir", str(out / "artifacts"), "--data-dir", str(out / "data")]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=server.env(PYTHONUNBUFFERED="1"), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        text = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"run failed: {' '.join(args)}\n{text[-3000:]}")
    run_dir = Path([ln for ln in text.splitlines() if ln.startswith("outputs: ")][-1].split("outputs: ", 1)[1])
    summary = json.loads((run_dir / "stages.json").read_text())["summary"]
    workers: dict[str, float] = {}
    for root in (out / "artifacts", out / "data"):
        for manifest in (root / "cache").rglob("manifest.json"):
            by = json.loads(manifest.read_text()).get("built_by", {})
            if by.get("pid") == proc.pid:
                continue  # the driver: its peak is the summary's
            key = f"{by.get('host')}:{by.get('pid')}"
            workers[key] = max(workers.get(key, 0.0), by.get("peak_rss_mb", 0.0))
    return {"wall_s": wall, "pipeline_s": summary["pipeline_seconds"],
            "driver_peak_mb": summary["driver_peak_rss_mb"], "worker_peak_mb": workers}


# --------------------------------------------------------------------------- B1


def noop(i: int) -> int:
    return i


def b1_overhead(server, counts: list[int]) -> dict:
    """Seconds per task for N no-op tasks: Dask runner, thread runner, raw Client.map."""
    os.environ["PREFECT_API_URL"] = server.api_url
    from distributed import Client, LocalCluster
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    noop_task = task(noop, name="noop", cache_policy=None, persist_result=False)
    shape = {"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None}

    def timed_flow(runner):
        @flow(task_runner=runner, log_prints=False)
        def many(n: int) -> float:
            t = time.perf_counter()
            futures = [noop_task.submit(i) for i in range(n)]
            assert [f.result() for f in futures] == list(range(n))
            return time.perf_counter() - t

        return many

    out = {}
    with LocalCluster(**shape) as cluster, Client(cluster) as client:
        client.gather(client.map(noop, range(10)))  # warm-up
        for n in counts:
            t = time.perf_counter()
            assert client.gather(client.map(noop, range(n), pure=False)) == list(range(n))
            out.setdefault(n, {})["raw_dask_s"] = time.perf_counter() - t
    for name, runner in (("prefect_threads_s", ThreadPoolTaskRunner(max_workers=2)),
                         ("prefect_dask_s", DaskTaskRunner(cluster_class="distributed.LocalCluster",
                                                           cluster_kwargs=shape))):
        for n in counts:
            out[n][name] = timed_flow(runner)(n)
    del os.environ["PREFECT_API_URL"]
    return out


# --------------------------------------------------------------------------- B2, B3


def b2_throughput(server, work: Path, sizes: list[int], workers: list[int], points: int = 100) -> list[dict]:
    rows = []
    for n in sizes:
        for w in workers:
            out = work / f"b2-{n}-{w}"
            # --references none: the machinery's throughput, as first measured (each statistical
            # reference adds ~4-13 ms a series on one core: tasks/components/references.py)
            r = cli(server, out, "--n-series", str(n), "--n-points", str(points), "--series-per-bucket", "1000",
                    "--seq-length", "12", "--hidden-size", "16", "--epochs", "1", "--steps-per-epoch", "20",
                    "--patience", "0", "--device", "cpu", "--until", "evaluate", "--runner", "dask", "--workers",
                    str(w), "--references", "none")
            rows.append({"series": n, "workers": w, "pipeline_s": r["pipeline_s"], "wall_s": r["wall_s"],
                         "series_per_s": n / r["pipeline_s"], "driver_peak_mb": r["driver_peak_mb"],
                         "worker_peak_mb": sorted(r["worker_peak_mb"].values(), reverse=True)})
            print(f"  B2 {n} series, {w} worker(s): {rows[-1]}", flush=True)
    return rows


def make_panel(path: Path, n_series: int, n_points: int) -> None:
    """n_series daily series of n_points rows in one Parquet file, written 500 series at a time."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    dates = pd.date_range("2000-01-01", periods=n_points, freq="D").values
    rng = np.random.default_rng(0)
    schema = pa.schema([("series_id", pa.string()), ("date", pa.timestamp("ns")), ("value", pa.float64())])
    with pq.ParquetWriter(str(path), schema) as writer:
        for start in range(0, n_series, 500):
            k = min(500, n_series - start)
            ids = np.repeat([f"s{i:06d}" for i in range(start, start + k)], n_points)
            x = np.tile(np.arange(n_points), k)
            v = 10 + np.sin(2 * np.pi * x / 7 + np.repeat(rng.uniform(0, 6.28, k), n_points)) + 0.1 * rng.normal(
                size=len(ids))
            writer.write_table(pa.table({"series_id": ids, "date": np.tile(dates, k), "value": v}, schema=schema))


def read_table_seconds(path: Path, repeats: int = 3) -> float:
    """Best wall time of a bare pyarrow.parquet.read_table in a fresh process (no warm page cache bias)."""
    code = ("import time, pyarrow.parquet as pq; t = time.perf_counter(); pq.read_table(%r); "
            "print(time.perf_counter() - t)" % str(path))
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(repeats))


def b3_ten_million(server, work: Path, n_series: int, n_points: int) -> dict:
    path = work / f"panel-{n_series}x{n_points}.parquet"
    make_panel(path, n_series, n_points)
    data = ["--data-path", str(path), "--time-column", "date", "--value-column", "value", "--id-column",
            "series_id", "--seq-length", "28", "--device", "cpu", "--search", "off"]  # one global model
    bare = read_table_seconds(path)
    ingest = {}
    for runner in (["--runner", "local", "--workers", "2"], ["--runner", "dask", "--workers", "2"]):
        r = cli(server, work / f"b3-ingest-{runner[1]}", *data, *runner, "--until", "generate")
        ingest[runner[1]] = {"pipeline_s": r["pipeline_s"], "ratio_to_read_table": r["pipeline_s"] / bare,
                             "process_wall_s": r["wall_s"]}  # + interpreter start, imports, flow set-up
    # ingest and window from scratch in one process: the peak of both
    memory = cli(server, work / "b3-memory", *data, "--runner", "local", "--until", "window")
    epoch = cli(server, work / "b3-memory", *data, "--runner", "local", "--until", "train", "--epochs", "1",
                "--steps-per-epoch", "100", "--patience", "0", "--hidden-size", "32")
    return {"rows": n_series * n_points, "read_table_s": bare, "ingest": ingest,
            "ingest_window_driver_peak_mb": memory["driver_peak_mb"],
            "train_epoch": {"pipeline_s": epoch["pipeline_s"], "driver_peak_mb": epoch["driver_peak_mb"],
                            "steps": 100}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    a = p.parse_args(argv)
    res: dict = {"mode": "quick" if a.quick else "full", "loadavg_start": os.getloadavg()}
    print(f"scale bench ({res['mode']}), {os.cpu_count()} cores, load {res['loadavg_start'][0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="rnnflow-scale-") as tmp:
        work = Path(tmp)
        server = start_server(work / "prefect-home")
        try:
            counts = [50, 200] if a.quick else [200, 1000]
            res["b1"] = b1_overhead(server, counts)
            for n, r in res["b1"].items():
                print(f"  B1 {n} tasks: " + ", ".join(f"{k} {v / n * 1e3:.2f} ms/task" for k, v in r.items()), flush=True)
            sizes = [1000, 5000] if a.quick else [1000, 10_000, 50_000]
            res["b2"] = b2_throughput(server, work, sizes, [1, 2])
            res["b3"] = b3_ten_million(server, work, *((1000, 1000) if a.quick else (10_000, 1000)))
            print(f"  B3 {res['b3']}", flush=True)
        finally:
            from tests.helpers.server import stop

            stop(server.process)
    res["loadavg_end"] = os.getloadavg()
    per_task = res["b1"][max(res["b1"])]["prefect_dask_s"] / max(res["b1"])
    per_series = min(r["pipeline_s"] / r["series"] for r in res["b2"] if r["workers"] == 1)
    res["implied_series_per_bucket"] = int(per_task / (0.05 * per_series)) + 1
    print(f"implied bucket size (task overhead under 5% of a bucket's work): {res['implied_series_per_bucket']} "
          f"series; load at the end {res['loadavg_end'][0]:.2f}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
