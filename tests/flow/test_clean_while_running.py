"""`clean --keep 0` in a loop while two runs of different settings train in the same output folder:
both finish, identical to the same runs undisturbed in folders of their own (tasks/runtime/leases.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from tasks.runtime.prune import prune
from tests.helpers.cli import finish_flow, start_flow
from tests.helpers.server import FLOW_SCRIPT, REPO


TINY = ["--n-points", "300", "--epochs", "12", "--patience", "0", "--batch-size", "8", "--device", "cpu",
        "--fig-dpi", "40", "--fig-width", "4", "--fig-height", "3",
        "--verbose"]  # the task runs' lines on the console: one_past_its_stages reads them
SETTINGS = (["--hidden-size", "8"], ["--hidden-size", "12", "--seq-length", "16"])


def outputs(base: Path) -> list[str]:
    return ["--output-dir", str(base / "artifacts"), "--data-dir", str(base / "data")]


def result(log: str) -> tuple[dict, dict, str]:
    """(metrics.json's metrics, the model's weights, history.json) of the run whose output is `log`."""
    line = [x for x in log.splitlines() if x.startswith("outputs: ")][-1]
    run_dir = Path(line.split("outputs: ", 1)[1])
    return (json.loads((run_dir / "metrics.json").read_text())["metrics"],
            torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)["state_dict"],
            (run_dir / "history.json").read_text())


def test_two_runs_finish_identical_while_clean_keep_0_runs_in_a_loop(tmp_path, prefect_server):
    shared = tmp_path / "shared"
    runs = [start_flow(tmp_path, prefect_server, *TINY, *s, *outputs(shared), log=tmp_path / f"run{i}.txt")
            for i, s in enumerate(SETTINGS)]
    references = [start_flow(tmp_path, prefect_server, *TINY, *s, *outputs(tmp_path / f"alone{i}"),
                             log=tmp_path / f"alone{i}.txt") for i, s in enumerate(SETTINGS)]
    in_use = 0

    def one_past_its_stages() -> bool:  # then it writes its run folder and ends: its lease goes with it
        return any("Task run 'figures-" in (tmp_path / f"run{i}.txt").read_text() or runs[i].poll() is not None
                   for i in range(len(runs)))

    # clean keeps removing whatever the runs do not hold, for as long as both run (a run that ended
    # holds nothing: its folder would go next, and with it what this test compares)
    while not one_past_its_stages():
        in_use += len(prune(shared / "artifacts", shared / "data", keep=0).in_use)
        time.sleep(0.05)
    assert in_use > 0  # clean met what the runs used, while they used it, and left it
    for i, (run, alone) in enumerate(zip(runs, references)):
        a = result(finish_flow(run, tmp_path / f"run{i}.txt"))
        b = result(finish_flow(alone, tmp_path / f"alone{i}.txt"))
        assert a[0] == b[0] and a[2] == b[2]
        assert a[1].keys() == b[1].keys() and all(torch.equal(a[1][k], b[1][k]) for k in b[1])
    line = subprocess.run([sys.executable, str(FLOW_SCRIPT), "clean", "--keep", "0", *outputs(shared)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert line.returncode == 0 and line.stdout.startswith("removed 2 run folders, "), (line.stdout, line.stderr)
