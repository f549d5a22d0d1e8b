"""Run `python flows/rnn_flow.py` in a subprocess against the shared test server (tests/helpers/server.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers.server import PrefectServer

ROOT = Path(__file__).resolve().parents[2]


def start_flow(cwd: Path, server: PrefectServer, *args: str, log: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start one CLI run in its own process group (so a test can kill all of it); output to `log`.
    `env`: instead of `server`'s (e.g. tests.helpers.server.temporary_server_env)."""
    env = {**(env or server.env()), "PYTHONUNBUFFERED": "1"}
    out = open(log, "w") if log else subprocess.PIPE
    try:
        return subprocess.Popen([sys.executable, str(ROOT / "flows" / "rnn_flow.py"), *args], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    finally:
        if log:
            out.close()


def finished(returncode: int, output: str) -> bool:
    """Did a run finish, with the exit status its gate calls for: 0, or 3 when the summary's gate
    line says the model did not pass (tasks.components.gate.GATE_FAILED_STATUS)? Tiny test
    models often do not: what matters is that the status and the line agree."""
    gate = [line for line in output.splitlines() if line.startswith("gate: ")]
    return returncode == (3 if gate and not gate[-1].startswith("gate: passed") else 0)


def finish_flow(proc: subprocess.Popen, log: Path | None = None, timeout: float = 300) -> str:
    """Wait for a run; return its output; fail with the output's tail unless it finished (`finished`)."""
    out, _ = proc.communicate(timeout=timeout)
    text = log.read_text() if log else out
    assert finished(proc.returncode, text), text[-4000:]
    return text


def run_dir_of(output: str) -> Path:
    """The run directory printed on the last `outputs:` line."""
    return Path([line for line in output.splitlines() if line.startswith("outputs: ")][-1].split("outputs: ", 1)[1])


def group_members(pgid: int) -> list[int]:
    """The live processes of process group `pgid` (a run started by `start_flow` leads its own)."""
    import os

    import psutil

    out = []
    for p in psutil.process_iter(["status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return out


def bad_prefect_yaml(tmp_path: Path, name: str) -> Path:
    """prefect.yaml with a deployment `name` whose data file has columns month,sales but no --time-column."""
    (tmp_path / "sales.csv").write_text("month,sales\n" + "".join(f"20{y:02d}-{m:02d}-01,{y * m}\n"
                                                                   for y in range(10, 16) for m in range(1, 13)))
    raw = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    raw["deployments"][0]["name"] = name
    raw["deployments"][0]["parameters"]["config"] = {"data": {"data_path": str(tmp_path / "sales.csv"),
                                                              "value_column": "sales"}}
    path = tmp_path / "prefect.yaml"
    step = raw["build"][1]["prefect.deployments.steps.run_shell_script"]
    step["script"] = f"{sys.executable} flows/rnn_flow.py check --deployment {name} --prefect-yaml {path}"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path
