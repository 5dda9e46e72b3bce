"""Shared builders for the search tests."""

from __future__ import annotations

import numpy as np
import pytest

from servopt.search.replicas import ReplicaRows


def make_rows(size, units, level) -> ReplicaRows:
    """Replica rows straight from lists (composition columns are dummies)."""
    size = np.asarray(size, dtype=np.int64)
    n = size.size
    return ReplicaRows(
        size=size,
        units=np.asarray(units, dtype=np.int64),
        level=np.asarray(level, dtype=np.int64),
        prefill=np.zeros(n, dtype=np.int64),
        x=np.ones(n, dtype=np.int64),
        decode=np.arange(n, dtype=np.int64),
        y=np.ones(n, dtype=np.int64),
    )


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
