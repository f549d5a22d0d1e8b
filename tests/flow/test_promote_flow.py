"""rnn_pipeline with promote=True under the session's Prefect test harness: the summary says what happened."""

from __future__ import annotations

import json


from tests.helpers import tiny_config
from flows.rnn_flow import rnn_pipeline



def run(cfg, **kw) -> dict:
    state = rnn_pipeline(config=cfg, return_state=True, **kw)
    assert state.is_completed(), state
    return state.result()


def promotion_artifact(flow_run_id) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        (art,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=["rnn-promotion"])))
    return art.data


def test_retraining_runs_promote_then_keep_and_say_so(tmp_path):
    cfg = tiny_config(tmp_path, train={"epochs": 20, "lr": 0.01})  # beats naive: passes the baseline gate
    off = run(cfg)
    assert off["promotion"]["action"] == "skipped"

    state = rnn_pipeline(config=cfg, promote=True, return_state=True)
    first = state.result()["promotion"]
    assert first["action"] == "promoted" and first["reason"] == "no champion yet" and first["champion"] is None
    assert "**promoted**" in promotion_artifact(state.state_details.flow_run_id)
    registry = json.loads((tmp_path / "artifacts" / "models" / "registry.json").read_text())
    assert registry["champion"]["model_sha256"].startswith(first["champion_now"])

    again = run(cfg, promote=True, promote_metric="mse")["promotion"]
    assert again["action"] == "kept" and again["metric"] == "mse" and again["champion_now"] == first["champion_now"]
    summary = run(cfg, promote=True, until="window")
    assert summary["promotion"] == {"action": "skipped", "reason": "no model was trained in this run"}
    assert json.loads((tmp_path / "artifacts" / "runs" / summary["run"] / "promotion.json").read_text())["action"] == "skipped"


def test_a_challenger_that_fails_the_baseline_gate_is_not_promoted(tmp_path):
    summary = run(tiny_config(tmp_path), promote=True)  # 3 epochs: far worse than the naive forecast
    assert summary["gate"].startswith("gate: FAILED on the ") and summary["gate_passed"] is False
    assert summary["promotion"]["action"] == "kept" and "baseline gate" in summary["promotion"]["reason"]
    assert summary["promotion"]["champion_now"] is None
