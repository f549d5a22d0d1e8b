"""Prefect retry settings shared by the stage tasks: transient I/O only, never bad input."""

from __future__ import annotations

from typing import Any

from prefect.tasks import exponential_backoff


def retry_transient_io(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed stage only when it failed on an OS-level I/O error (disk, NFS, locks)."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, OSError)


RETRY_OPTIONS: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": exponential_backoff(backoff_factor=1),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_transient_io,
}
