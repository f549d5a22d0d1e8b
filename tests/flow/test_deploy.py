"""Scheduled retraining: prefect.yaml, the `serve` command, and a served run on a real server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


from tests.helpers.cli import bad_prefect_yaml
from tests.helpers.server import FLOW_SCRIPT, REPO, PrefectServer, api_post, spawn, stop

DEPLOYMENT = "rnn_pipeline/rnn-retrain"
STAGE_TASKS = {"generate", "window", "train", "evaluate", "figures", "promote"}
KEYS = {"rnn-metrics", "rnn-report", "rnn-stages", "rnn-promotion"}


# --------------------------------------------------------------------------- on a real server


def _deployments_named(server: PrefectServer, name: str) -> list:
    return api_post(server, "deployments/filter", {"deployments": {"name": {"any_": [name]}}})


def test_serve_refuses_a_file_whose_columns_do_not_match_before_registering_anything(prefect_server, tmp_path):
    (tmp_path / "sales.csv").write_text("month,sales\n2020-01-01,1\n2020-02-01,2\n2020-03-01,3\n")
    res = subprocess.run([sys.executable, str(FLOW_SCRIPT), "serve", "--interval", "60", "--name", "refused-columns",
                          "--data-path", "sales.csv", "--output-dir", "out", "--data-dir", "data"], cwd=tmp_path,
                         env=prefect_server.env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.splitlines() == ["error: --time-column='timestamp': no such column (did you mean 'month'?); "
                                       "--value-column='value': no such column (did you mean 'sales'?); the file's "
                                       "columns: month, sales"]
    assert _deployments_named(prefect_server, "refused-columns") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sales.csv"]


def test_prefect_deploy_stops_at_a_bad_parameter_before_registering_anything(prefect_server, tmp_path):
    path = bad_prefect_yaml(tmp_path, "deploy-bad-columns")
    env = prefect_server.env()
    subprocess.run([sys.executable, "-m", "prefect", "work-pool", "create", "--type", "process", "rnnflow-pool"],
                   cwd=REPO, env=env, capture_output=True, timeout=120)
    res = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file", str(path),
                          "-n", "deploy-bad-columns"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    assert "config.data.time_column='timestamp': no such column; did you mean 'month'?" in res.stdout + res.stderr
    assert _deployments_named(prefect_server, "deploy-bad-columns") == []


def _wait_for_deployment(server: PrefectServer, proc: subprocess.Popen, log: Path, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = api_post(server, "deployments/filter", {"deployments": {"name": {"any_": ["rnn-retrain"]}}})
        if found:
            return found[0]
        assert proc.poll() is None, f"serve exited:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"no deployment after {timeout}s:\n{log.read_text()[-3000:]}")


def _trigger(server: PrefectServer, parameters: dict | None = None):
    """Run the deployment (with `parameters` instead of its own) through the Prefect client and wait
    for the final state."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: server.api_url}):
        return run_deployment(DEPLOYMENT, parameters=parameters, timeout=300, poll_interval=1, as_subflow=False)


def _logs_of(server: PrefectServer, run_id, timeout: float = 30.0) -> list[dict]:
    """The flow run's logs on the server, once any have arrived (the served process sends them
    in the background: on a loaded machine they land after the run's final state)."""
    deadline = time.monotonic() + timeout
    while True:
        logs = api_post(server, "logs/filter", {"logs": {"flow_run_id": {"any_": [str(run_id)]}}})
        if logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.5)


def _summary_logged(server: PrefectServer, run_id, timeout: float = 30.0) -> str:
    """The summary block the flow run logged (its settings line included), once it has arrived."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e["message"] for e in _logs_of(server, run_id) if "\nsettings: " in e["message"]]
        if found or time.monotonic() > deadline:
            assert found, "no summary block in the flow run's logs"
            return found[0]
        time.sleep(0.5)


def _artifacts(server: PrefectServer, run_id) -> dict[str, dict]:
    arts = api_post(server, "artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [str(run_id)]}}})
    return {a["key"]: a for a in arts if a["key"]}


def _rows(artifact: dict) -> list[dict]:
    data = artifact["data"]
    return json.loads(data) if isinstance(data, str) else data


def test_served_deployment_runs_the_pipeline_and_publishes_its_artifacts(prefect_server, tmp_path):
    out, log = tmp_path / "artifacts", tmp_path / "serve.log"
    cmd = [sys.executable, str(FLOW_SCRIPT), "serve", "--cron", "0 0 1 1 *", "--epochs", "20", "--lr", "0.01",
           "--n-points", "240",  # enough training to beat the naive forecast (the baseline gate)
           "--hidden-size", "8", "--fig-dpi", "40", "--device", "cpu", "--output-dir", str(out),
           "--data-dir", str(tmp_path / "data")]
    proc = spawn(cmd, prefect_server.env(PREFECT_RUNNER_POLL_FREQUENCY="1"), log)  # pick runs up at once
    prefect_server.children.append(proc)
    try:
        dep = _wait_for_deployment(prefect_server, proc, log)
        assert dep["parameters"]["promote"] is True
        assert dep["parameters"]["config"]["output"]["root"] == str(out)
        assert dep["global_concurrency_limit"]["limit"] == 1
        assert [s["schedule"]["cron"] for s in dep["schedules"]] == ["0 0 1 1 *"]

        run = _trigger(prefect_server)
        assert run.state.is_completed(), f"{run.state}\n{log.read_text()[-3000:]}"
        said = log.read_text()
        assert (f"PREFECT_API_URL={prefect_server.api_url} prefect deployment run 'rnn_pipeline/rnn-retrain'" in said
                and "is being served" not in said)
        summary = _summary_logged(prefect_server, run.id)
        assert "--cell rnn" in summary and "model.cell" not in summary  # named as the command line names them
        assert run.name.startswith("rnn-")
        tasks = api_post(prefect_server, "task_runs/filter", {"flow_runs": {"id": {"any_": [str(run.id)]}}})
        assert {t["name"].rsplit("-", 1)[0] for t in tasks} >= STAGE_TASKS
        assert all(t["state_type"] == "COMPLETED" for t in tasks)

        arts = _artifacts(prefect_server, run.id)
        assert set(arts) >= KEYS
        assert {r["forecaster"] for r in _rows(arts["rnn-metrics"])} >= {"model", "naive"}
        assert [r["stage"] for r in _rows(arts["rnn-stages"])] == ["generate", "window", "train", "evaluate", "figures"]
        assert "RNN forecast report" in arts["rnn-report"]["data"]
        promo = arts["rnn-promotion"]["data"]
        assert "**promoted**, no champion yet" in promo and "| challenger |" in promo and "| naive |" in promo
        registry = json.loads((out / "models" / "registry.json").read_text())
        assert registry["champion"]["run"] == run.name
        assert (out / "models" / registry["champion"]["path"]).is_file()

        again = _trigger(prefect_server)  # same data and config: the cached model is the champion itself
        assert again.state.is_completed()
        promo = _artifacts(prefect_server, again.id)["rnn-promotion"]["data"]
        assert "**kept**" in promo and "| champion |" in promo
        registry = json.loads((out / "models" / "registry.json").read_text())
        assert registry["champion"]["run"] == run.name and [h["action"] for h in registry["history"]] == [
            "promoted", "kept"]

        # a flow run whose parameters read a file outside what `serve` allows: refused, nothing written,
        # nothing of the file in any log the server keeps
        secret = tmp_path / "elsewhere" / "secret.csv"
        secret.parent.mkdir()
        secret.write_text("timestamp,password\n2020-01-01,hunter2\n")
        config = {**dep["parameters"]["config"], "data": {"data_path": str(secret), "value_column": "password"}}
        refused = _trigger(prefect_server, {"config": config})
        assert refused.state.is_failed()
        assert (f"data.data_path='{secret}': outside the data locations this deployment serves: no data location"
                in refused.state.message)
        logs = _logs_of(prefect_server, refused.id)
        assert logs and not [x for x in logs if "hunter2" in x["message"]]
        assert "hunter2" not in log.read_text()
        assert sorted(p.name for p in secret.parent.iterdir()) == ["secret.csv"]
        assert len(list((out / "runs").iterdir())) == 2  # the two runs above; none for the refused one
    finally:
        stop(proc)
