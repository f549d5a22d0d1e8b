"""prefect.yaml's deployment and `check --deployment`, `serve` without a server: refused in one
line before anything is registered (the served runs on a real server: tests/flow/test_deploy.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from tests.helpers.cli import bad_prefect_yaml
from tests.helpers.server import FLOW_SCRIPT, REPO, free_port


def test_prefect_yaml_deploys_the_flow_to_a_process_pool_with_one_run_at_a_time():
    from prefect.cli.deploy._models import PrefectYamlModel

    raw = yaml.safe_load((REPO / "prefect.yaml").read_text())
    model = PrefectYamlModel.model_validate(raw)
    (dep,) = model.deployments
    assert dep.name == "rnn-retrain" and dep.entrypoint == "flows/rnn_flow.py:rnn_pipeline"
    assert dep.work_pool.name == "rnnflow-pool"
    assert dep.concurrency_limit.limit == 1
    assert dep.parameters["promote"] is True
    assert raw["deployments"][0]["schedules"][0]["cron"] == "0 3 * * *"
    (step,) = raw["pull"]
    assert step["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ repo-dir.stdout }}"
    assert raw["build"][0]["prefect.deployments.steps.run_shell_script"]["id"] == "repo-dir"


def test_prefect_yaml_checks_the_deployments_parameters_before_registering_it(capsys, monkeypatch):
    from flows.commands import main

    build = yaml.safe_load((REPO / "prefect.yaml").read_text())["build"]
    check = build[1]["prefect.deployments.steps.run_shell_script"]
    assert check["script"] == "python flows/rnn_flow.py check --deployment rnn-retrain --prefect-yaml prefect.yaml"
    monkeypatch.chdir(REPO)
    assert main(check["script"].split()[2:]) == 0
    assert capsys.readouterr().out == "ok: the parameters of deployment 'rnn-retrain' are valid (the generated sine)\n"


def test_a_deployment_with_a_bad_parameter_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    from flows.commands import main

    path = bad_prefect_yaml(tmp_path, "bad-columns")
    monkeypatch.chdir(REPO)
    assert main(["check", "--deployment", "bad-columns", "--prefect-yaml", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}, deployment 'bad-columns': config.data.time_column='timestamp': no such column; "
        "did you mean 'month'? (columns: month, sales)"]


def test_serve_without_a_server_says_so_in_one_line_and_exits_2(tmp_path):
    env = {"PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api", "PREFECT_HOME": str(tmp_path)}
    res = subprocess.run([sys.executable, str(FLOW_SCRIPT), "serve", "--cron", "0 3 * * *"], cwd=REPO,
                         env={**_plain_env(), **env}, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: no server answers at PREFECT_API_URL=") and "prefect server start" in line


def _plain_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
