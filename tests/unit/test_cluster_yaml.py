"""prefect.cluster.yaml: Docker and Kubernetes work pools with a GPU, and the Dask address as a
deployment parameter, valid for Prefect and for the flows they deploy (not run: no cluster here)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tasks.config import PipelineConfig

ROOT = Path(__file__).resolve().parents[2]


def test_the_cluster_deployments_are_valid_prefect_yaml_and_valid_flow_parameters():
    from prefect.cli.deploy._models import PrefectYamlModel

    from flows.rnn_flow import rnn_pipeline, rnn_sweep

    raw = yaml.safe_load((ROOT / "prefect.cluster.yaml").read_text())
    model = PrefectYamlModel.model_validate(raw)
    flows = {"flows/rnn_flow.py:rnn_pipeline": rnn_pipeline, "flows/rnn_flow.py:rnn_sweep": rnn_sweep}
    pools = set()
    for dep in model.deployments:
        params = flows[dep.entrypoint].validate_parameters(dict(dep.parameters))
        cfg = params["config"] if isinstance(params["config"], PipelineConfig) else PipelineConfig(**params["config"])
        assert cfg.runner.kind == "dask" and cfg.runner.address.startswith("tcp://")
        assert cfg.output.root.startswith("/mnt/") and cfg.train.device == "cuda"
        pools.add(dep.work_pool.name)
        variables = dep.work_pool.job_variables
        assert variables["image"] == "rnnflow:latest"
        if dep.work_pool.name == "rnnflow-docker":
            (gpus,) = variables["container_create_kwargs"]["device_requests"]
            assert gpus["Capabilities"] == [["gpu"]] and gpus["Count"] == -1
        else:
            assert variables["gpu_limit"] == 1
    assert pools == {"rnnflow-docker", "rnnflow-k8s"}


def test_the_kubernetes_template_passes_the_gpu_limit_to_the_pod():
    template = json.loads((ROOT / "prefect.k8s-job-template.json").read_text())
    assert template["variables"]["properties"]["gpu_limit"]["type"] == "integer"
    (container,) = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "{{ gpu_limit }}"
