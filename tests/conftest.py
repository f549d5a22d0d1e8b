"""Shared fixtures: tiny configs, one Prefect test harness per session."""

from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "tasks")

import pytest  # noqa: E402
import torch  # noqa: E402

from tasks.config import PipelineConfig, with_overrides  # noqa: E402

torch.set_num_threads(1)


def tiny_config(tmp_path, **sections) -> PipelineConfig:
    """A config that trains in well under a second, writing under tmp_path."""
    base = {
        "data": {"n_points": 240},
        "model": {"hidden_size": 8},
        "train": {"epochs": 3, "batch_size": 32, "device": "cpu", "patience": 0},
        "figures": {"width": 4, "height": 3, "dpi": 40},
        "output": {"root": str(tmp_path / "artifacts"), "data_dir": str(tmp_path / "data")},
    }
    for section, fields in sections.items():
        base.setdefault(section, {}).update(fields)
    return with_overrides(PipelineConfig(), base)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server for every in-process flow test (it costs ~10 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
