"""Many series, buckets and sweeps on a real Dask LocalCluster (2 worker processes x 1 thread)
through Prefect, against a real Prefect server: the same answers as in one process, resumable
sweeps, and a worker that dies mid-sweep.

The runs that need no drill in their workers' environment share one cluster (the `dask_cluster`
fixture, reached with --dask-address): its workers start and import torch, Prefect and
statsforecast once. The sweep whose member fails on purpose starts its own, as `--runner dask`
does by default (the drill, RNNFLOW_FAULT, is read in the workers the run starts)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tasks.formats.series import read_series
from tasks.runtime import store
from tests.helpers.cli import finished
from tests.helpers.server import FLOW_SCRIPT, REPO, DaskCluster, PrefectServer, api_post, free_port


PANEL = ["--n-series", "80", "--series-per-bucket", "20", "--n-points", "80", "--seq-length", "8", "--epochs", "2",
         "--hidden-size", "4", "--device", "cpu", "--fig-dpi", "40", "--fig-width", "4", "--fig-height", "3"]
DASK = ["--runner", "dask", "--workers", "2"]


def on(cluster: DaskCluster) -> list[str]:
    """The options of a run on the shared cluster."""
    return ["--runner", "dask", "--dask-address", cluster.address]


def cli(server: PrefectServer, out: Path, *args: str, env: dict | None = None, timeout: float = 600):
    """`python flows/rnn_flow.py ARGS` against `server`, writing under `out`."""
    cmd = [sys.executable, str(FLOW_SCRIPT), *args, "--output-dir", str(out / "artifacts"),
           "--data-dir", str(out / "data")]
    return subprocess.run(cmd, env=server.env(PYTHONUNBUFFERED="1", **(env or {})), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> Path:
    """The run directory of a run that must have succeeded."""
    assert finished(proc.returncode, proc.stdout), (proc.stdout + proc.stderr)[-4000:]
    return Path([ln for ln in proc.stdout.splitlines() if ln.startswith("outputs: ")][-1].split("outputs: ", 1)[1])


def entries(root: Path, stage: str) -> list[Path]:
    return sorted(p.parent for p in (root / "cache" / stage).glob("*/manifest.json"))


def flow_run_tasks(server: PrefectServer, run_name: str) -> list[dict]:
    (run,) = api_post(server, "flow_runs/filter", {"flow_runs": {"name": {"any_": [run_name]}}})
    return api_post(server, "task_runs/filter", {"flow_runs": {"id": {"any_": [run["id"]]}}, "limit": 200})


def test_local_and_dask_give_the_same_answers_bucket_by_bucket(prefect_server, dask_cluster, tmp_path):
    local = ok(cli(prefect_server, tmp_path / "local", *PANEL, "--until", "forecast"))
    dask = ok(cli(prefect_server, tmp_path / "dask", *PANEL, *on(dask_cluster), "--until", "forecast"))
    for name in ("metrics_by_series.parquet", "forecast.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(local / name), pd.read_parquet(dask / name))
    assert json.loads((local / "metrics.json").read_text())["metrics"] == json.loads(
        (dask / "metrics.json").read_text())["metrics"]
    by_series = pd.read_parquet(dask / "metrics_by_series.parquet")
    assert len(by_series) == 80 and by_series["bucket"].nunique() == 4

    data = tmp_path / "dask" / "data"
    ids = [read_series(e)[0]["series_id"].unique().tolist() for e in entries(data, "ingest")]
    every = [sid for bucket in ids for sid in bucket]
    assert len(ids) == 4 and len(every) == len(set(every)) == 80  # each series in exactly one bucket

    # provenance: the per-bucket entries were built by at least two worker processes
    root = tmp_path / "dask" / "artifacts"
    built_by = {(m["built_by"]["host"], m["built_by"]["pid"]) for stage in ("window", "backtest", "predict")
                for m in (store.read_json(e / "manifest.json") for e in entries(root, stage))}
    assert len(built_by) >= 2, built_by

    # no hidden local state: every entry a run used is under its storage roots; payloads are small
    stages = json.loads((dask / "stages.json").read_text())
    for row in stages["stages"].values():
        entry = Path(row["entry"]).resolve()
        assert root.resolve() in entry.parents or data.resolve() in entry.parents, entry
    assert 0 < stages["summary"]["largest_task_payload_bytes"] < 64 * 1024
    for stage in ("generate", "ingest", "window", "train", "backtest", "evaluate", "predict", "forecast"):
        for e in entries(root if stage not in ("generate", "ingest") else data, stage):
            ref = store.StageRef(stage=stage, key=e.name, base=str(e.parent.parent.parent))
            assert store.verify(ref.path) is None and len(pickle.dumps(ref.model_dump())) < 64 * 1024


@pytest.mark.server  # the command line starts a temporary server
def test_distributed_runs_are_refused_on_the_temporary_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    # a port where nothing answers: a server the user (or another job) runs at 127.0.0.1:4200 would be used
    env |= {"PREFECT_HOME": str(tmp_path / "home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_API_PORT": str(free_port())}
    proc = subprocess.run([sys.executable, str(FLOW_SCRIPT), *PANEL, *DASK, "--output-dir", str(tmp_path / "a"),
                           "--data-dir", str(tmp_path / "d")], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: --runner='dask': Dask workers need a running Prefect server")
    assert not (tmp_path / "a").exists() and not (tmp_path / "d").exists()


SWEEP = ["sweep", "--grid", "cell=rnn,gru", "hidden_size=4,6", "--n-series", "20", "--series-per-bucket", "10",
         "--n-points", "60", "--seq-length", "8", "--epochs", "2", "--references", "none", "--device", "cpu",
         "--fig-dpi", "40", "--fig-width", "4", "--fig-height", "3"]


def test_a_sweep_member_that_failed_is_the_only_one_run_again(prefect_server, tmp_path):
    drill = {"RNNFLOW_FAULT": "train:model.cell=gru,model.hidden_size=6"}
    first = cli(prefect_server, tmp_path, *SWEEP, *DASK, env=drill)
    assert first.returncode != 0 and "injected fault in train" in first.stderr
    assert len(entries(tmp_path / "artifacts", "train")) == 3  # the other members finished and are kept

    run_dir = ok(cli(prefect_server, tmp_path, *SWEEP, *DASK))
    tasks = flow_run_tasks(prefect_server, run_dir.name)
    trains = [t["state_name"] for t in tasks if t["name"].startswith("train-")]
    assert sorted(trains) == ["Cached", "Cached", "Cached", "Completed"]
    board = pd.read_parquet(run_dir / "leaderboard.parquet")
    assert len(board) == 4 and board["rank"].tolist() == [1, 2, 3, 4]
    assert board["val_mase"].is_monotonic_increasing
    summary = json.loads((run_dir / "stages.json").read_text())["summary"]
    assert summary["leaderboard"]["members"] == 4


def worker_processes(root_pid: int) -> list[int]:
    """Dask worker processes below `root_pid`: a LocalCluster's nannies live in the process that
    made it (the shared cluster's) and start each worker with multiprocessing's spawn (`spawn_main`
    on its command line)."""
    children: dict[int, list[int]] = {}
    cmd: dict[int, str] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rpartition(")")[2].split()[1])
                cmd[int(proc.name)] = (proc / "cmdline").read_text().replace("\0", " ")
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    below, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        for c in children.get(pid, []):
            below.append(c)
            todo.append(c)
    return [p for p in below if "spawn_main" in cmd.get(p, "") and "resource_tracker" not in cmd.get(p, "")]


def test_killing_a_worker_mid_sweep_changes_nothing(prefect_server, dask_cluster, tmp_path):
    args = [*SWEEP, "--epochs", "16", "--patience", "0", "--checkpoint-every", "1"]
    reference = ok(cli(prefect_server, tmp_path / "ref", *args))
    out = tmp_path / "killed"
    cmd = [sys.executable, str(FLOW_SCRIPT), *args, *on(dask_cluster), "--output-dir", str(out / "artifacts"),
           "--data-dir", str(out / "data")]
    proc = subprocess.Popen(cmd, env=prefect_server.env(PYTHONUNBUFFERED="1"), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        if list((out / "artifacts" / "checkpoints").glob("train-*/checkpoint.pt")):  # members are training
            workers = worker_processes(dask_cluster.process.pid)
            if workers:
                killed = workers[0]
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=600)
    assert killed is not None, "no worker was training to kill"
    assert finished(proc.returncode, stdout), (stdout + stderr)[-4000:]
    run_dir = Path([ln for ln in stdout.splitlines() if ln.startswith("outputs: ")][-1].split("outputs: ", 1)[1])
    pd.testing.assert_frame_equal(pd.read_parquet(reference / "leaderboard.parquet").drop(
        columns=["model_entry", "scores_entry"]), pd.read_parquet(run_dir / "leaderboard.parquet").drop(
        columns=["model_entry", "scores_entry"]))
    assert json.loads((reference / "metrics.json").read_text())["metrics"] == json.loads(
        (run_dir / "metrics.json").read_text())["metrics"]
    for root in (out / "artifacts", out / "data"):  # nothing half-written left, everything verifies
        assert not list((root / "cache").rglob(".tmp-*"))
        for manifest in (root / "cache").rglob("manifest.json"):
            assert store.verify(manifest.parent) is None
