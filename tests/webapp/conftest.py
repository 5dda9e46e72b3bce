"""Fixtures for the web app: an app on the fake pipeline, and a poller for searches."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from servopt.webapp.settings import WebSettings

from . import fake_pipeline

# The worker process imports the stand-in by this name (spawned children inherit sys.path).
FAKE_PIPELINE = fake_pipeline.__name__

# Upper bound on waiting for one fake search (worker start-up included) before a test fails.
SEARCH_WAIT_S = 120.0
BASE_URL = "http://127.0.0.1"


def require_web_extra() -> None:
    pytest.importorskip("fastapi", reason="the web app needs fastapi (pip install -e '.[web]')")
    pytest.importorskip("uvicorn", reason="the web app needs uvicorn (pip install -e '.[web]')")
    pytest.importorskip("httpx", reason="the API tests need httpx (the framework's test client)")


@contextmanager
def client_for(**overrides) -> Iterator:
    require_web_extra()
    from fastapi.testclient import TestClient

    from servopt.webapp.server import create_app

    settings = WebSettings(**{"pipeline_module": FAKE_PIPELINE, "prewarm": False, **overrides})
    with TestClient(create_app(settings), base_url=BASE_URL, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def client() -> Iterator:
    with client_for() as c:
        yield c


def wait_for(client, job_id: str, until=("done", "failed", "timed_out", "cancelled")) -> dict:
    deadline = time.monotonic() + SEARCH_WAIT_S
    while time.monotonic() < deadline:
        response = client.get(f"/api/searches/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in until:
            return job
        time.sleep(0.05)
    raise AssertionError(f"search {job_id} did not reach {until} within {SEARCH_WAIT_S} s")


DEFAULT_FORM = {"kind": "default", "model": "QWEN3_32B", "system": "h200_sxm", "total_gpus": 8}
