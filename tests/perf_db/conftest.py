"""Shared perf-database fixtures: one h200_sxm/trtllm build per test session, in a private cache."""

from __future__ import annotations

import pytest

from servopt.perf_db.database import open_database


@pytest.fixture(scope="session")
def perf_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("perfdb-cache")


@pytest.fixture(scope="session")
def h200(perf_cache):
    return open_database("h200_sxm", "trtllm", cache_dir=str(perf_cache))
