"""Hash buckets of series: the unit of parallel work when there are many series.

A series belongs to bucket `stable_hash(series_id) % n_buckets`, where the hash is the first 8
bytes of BLAKE2b of the id's UTF-8 bytes: the same in every process, machine and Python version
(Python's own `hash()` is salted per process and would scatter a series over runs).

    n_buckets = ceil(n_series / series_per_bucket)     (1 for a single series)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import numpy as np


def stable_hash(series_id: str) -> int:
    """A 64-bit hash of a series id that never changes between processes: int."""
    return int.from_bytes(hashlib.blake2b(str(series_id).encode("utf-8"), digest_size=8).digest(), "big")


def bucket_count(n_series: int, series_per_bucket: int) -> int:
    """How many buckets `n_series` series are spread over (at least 1)."""
    return max(1, math.ceil(n_series / series_per_bucket))


def buckets_of(ids: Iterable[str], n_buckets: int) -> dict[str, int]:
    """The bucket of each distinct id: {series_id: bucket in [0, n_buckets)}."""
    return {sid: stable_hash(sid) % n_buckets for sid in dict.fromkeys(map(str, ids))}


def bucket_index(ids: np.ndarray, table: dict[str, int]) -> np.ndarray:
    """Bucket of every row, looked up by id (hashing each distinct id once): (n_rows,) int64."""
    uniques, inverse = np.unique(np.asarray(ids, dtype=object).astype(str), return_inverse=True)
    return np.array([table[u] for u in uniques], dtype=np.int64)[inverse]
