"""The stage cache across processes: a rerun in a new process, and two runs at the same time.

Each run is a separate `python flows/rnn_flow.py` process talking to one real Prefect server
(started once for the module), as a user's runs would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


from tasks.runtime import store
from tests.helpers.cli import finished
from tests.helpers.server import PrefectServer


ROOT = Path(__file__).resolve().parents[2]
TINY = ["--n-points", "300", "--hidden-size", "8", "--epochs", "4", "--patience", "0", "--references", "none",
        "--device", "cpu", "--fig-dpi", "40", "--fig-width", "4", "--fig-height", "3"]


def start(out: Path, server: PrefectServer, *extra: str) -> subprocess.Popen:
    env = server.env(PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(ROOT / "flows" / "rnn_flow.py"), *TINY, "--output-dir", str(out / "artifacts"),
           "--data-dir", str(out / "data"), *extra]
    return subprocess.Popen(cmd, cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> tuple[str, dict]:
    out, _ = proc.communicate(timeout=300)
    assert finished(proc.returncode, out), out[-3000:]
    run_dir = Path(out.strip().splitlines()[-1].split("outputs: ", 1)[1])
    return out, json.loads((run_dir / "stages.json").read_text())


def test_second_run_in_a_new_process_reuses_everything(tmp_path, prefect_server):
    quiet, first = finish(start(tmp_path, prefect_server))
    log, second = finish(start(tmp_path, prefect_server, "--verbose"))
    lines = quiet.strip().splitlines()  # at default verbosity: no INFO line, one summary block, printed last
    assert "| INFO" not in quiet and lines[-1].startswith("outputs: ") and len(lines) <= 20, quiet
    assert sum(line.startswith("stages:") for line in lines) == 1 and lines[0] == "stages:"  # nothing before it
    assert "| INFO" in log and "Finished in state Cached" in log  # --verbose: every stage's and task's lines
    assert {s["action"] for s in second["stages"].values()} == {"reused"}
    assert {s["prefect_state"] for s in second["stages"].values()} == {"Cached"}
    assert "tasks.train - epoch" not in log  # zero training epochs
    assert {k: s["entry"] for k, s in first["stages"].items()} == {k: s["entry"] for k, s in second["stages"].items()}


def test_two_concurrent_runs_with_the_same_config_share_intact_outputs(tmp_path, prefect_server):
    a, b = start(tmp_path, prefect_server), start(tmp_path, prefect_server)
    (_, ra), (_, rb) = finish(a), finish(b)
    entries = {k: s["entry"] for k, s in ra["stages"].items()}
    assert entries == {k: s["entry"] for k, s in rb["stages"].items()}
    for entry in entries.values():
        assert store.verify(entry) is None
    dirs = sorted((tmp_path / "artifacts" / "runs").iterdir())
    assert len(dirs) == 2
    assert (dirs[0] / "model.pt").read_bytes() == (dirs[1] / "model.pt").read_bytes()
    assert json.loads((dirs[0] / "metrics.json").read_text()) == json.loads((dirs[1] / "metrics.json").read_text())
    leftovers = [p for p in (tmp_path / "artifacts" / "cache").rglob(".tmp-*")]
    assert not leftovers
    for stage in entries:  # each entry built once, by one run or the other; a run that built none says why
        rows = ra["stages"][stage], rb["stages"][stage]
        assert rows[0]["entries"] == rows[1]["entries"], rows
        assert rows[0]["recomputed"] + rows[1]["recomputed"] == rows[0]["entries"], rows
        for row in rows:
            if not row["recomputed"]:
                assert row["action"] == "reused" and row["prefect_state"] == "Cached", row
                assert row["reason"] in ("built by a concurrent run while this one waited", "inputs unchanged"), row
