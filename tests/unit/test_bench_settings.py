"""The benchmark's settings follow the pipeline's (benchmarks/bench.py runs end to end: tests/flow/test_bench.py)."""

from __future__ import annotations


def test_bench_threads_are_the_train_stages():
    """Sections 1 and 2 time ours at the train stage's thread count, kept as a constant (no pydantic there)."""
    from benchmarks.sections.common import TRAIN_THREADS
    from tasks.config import TrainConfig

    assert TRAIN_THREADS == TrainConfig().threads
