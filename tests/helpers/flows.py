"""In-process flow runs under the session's Prefect test harness, and what they report."""

from __future__ import annotations

from flows.rnn_flow import rnn_pipeline


def actions(summary: dict) -> dict[str, str]:
    return {r["stage"]: r["action"] for r in summary["stages"]}


def reasons(summary: dict) -> dict[str, str]:
    return {r["stage"]: r["reason"] for r in summary["stages"]}


def all_artifacts(flow_run_id) -> list:
    """Every artifact of a flow run (its tasks' too), as the UI lists them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def read_artifacts(flow_run_id) -> dict:
    return {a.key: a for a in all_artifacts(flow_run_id) if a.key}


def run(cfg, **kw):
    state = rnn_pipeline(config=cfg, return_state=True, **kw)
    assert state.is_completed(), state
    return state.result(), state
