"""The worker's protocol (run in a thread here, over a real pipe) and its JSON clean-up."""

from __future__ import annotations

import math
import multiprocessing
import threading

import numpy as np
import pytest

from servopt.webapp.worker import INTERNAL_ERROR, WorkerHandle, _jsonable, _row_rank, serve

from .conftest import DEFAULT_FORM, FAKE_PIPELINE

RECV_S = 60.0


def test_jsonable_unwraps_numpy_and_nulls_non_finite():
    data = {
        "a": np.float64(1.5),
        "b": np.int64(3),
        "c": (1, math.nan),
        "d": [math.inf, -math.inf],
        4: np.bool_(True),
    }
    assert _jsonable(data) == {"a": 1.5, "b": 3, "c": [1, None], "d": [None, None], "4": True}
    assert isinstance(_jsonable(np.int64(3)), int)
    assert _jsonable(object.__new__(type("Odd", (), {"__str__": lambda self: "odd"}))) == "odd"


def test_row_rank_prefers_the_rows_own_rank():
    assert _row_rank({"rank": 7}, 0) == 7
    assert _row_rank({}, 0) == 1
    assert _row_rank({"rank": True}, 2) == 3


class InThread:
    """serve() on one end of a pipe in a thread; the test speaks the parent's side."""

    def __init__(self, module: str):
        self.conn, child = multiprocessing.Pipe()
        self.thread = threading.Thread(target=serve, args=(child, module), daemon=True)
        self.thread.start()

    def recv(self):
        assert self.conn.poll(RECV_S), "the worker did not answer"
        return self.conn.recv()

    def close(self):
        self.conn.close()
        self.thread.join(10)


def test_serve_runs_a_search_and_reports_progress(monkeypatch):
    monkeypatch.delenv("FAKE_PIPELINE_MODE", raising=False)
    worker = InThread(FAKE_PIPELINE)
    try:
        assert worker.recv() == ("ready", None)
        worker.conn.send(("run", "j1", {**DEFAULT_FORM, "top_n": 2}))
        messages = []
        while not messages or messages[-1][0] == "progress":
            messages.append(worker.recv())
        kind, job_id, payload = messages[-1]
        assert (kind, job_id) == ("done", "j1")
        assert ("progress", "j1", ("done", 1.0)) in messages  # the final progress is never throttled
        assert [e["name"] for e in payload["result"]["experiments"]] == ["agg", "disagg"]
        assert set(payload["deployments"]["agg"]) == {"1", "2"}
        assert "run.sh" in payload["deployments"]["disagg"]["2"]["files"]
    finally:
        worker.close()
    assert not worker.thread.is_alive()  # a closed pipe ends the worker


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("infeasible", lambda p: p["problems"][0]["field"] == "tpot"),
        ("bug", lambda p: p["detail"] == INTERNAL_ERROR and p["problems"] == []),
    ],
)
def test_serve_reports_errors(monkeypatch, mode, check):
    monkeypatch.setenv("FAKE_PIPELINE_MODE", mode)
    worker = InThread(FAKE_PIPELINE)
    try:
        worker.recv()
        worker.conn.send(("run", "j2", DEFAULT_FORM))
        message = worker.recv()
        while message[0] == "progress":
            message = worker.recv()
        assert message[:2] == ("error", "j2")
        assert check(message[2])
    finally:
        worker.close()


def test_serve_revalidates_the_request(monkeypatch):
    monkeypatch.delenv("FAKE_PIPELINE_MODE", raising=False)
    worker = InThread(FAKE_PIPELINE)
    try:
        worker.recv()
        worker.conn.send(("run", "j3", {**DEFAULT_FORM, "model": "/etc/passwd"}))
        kind, _, payload = worker.recv()
        assert kind == "error" and payload["problems"][0]["field"] == "model"
    finally:
        worker.close()


def test_missing_pipeline_is_reported_per_search():
    worker = InThread("servopt_no_such_pipeline_module")
    try:
        worker.recv()
        worker.conn.send(("run", "j4", DEFAULT_FORM))
        kind, _, payload = worker.recv()
        assert kind == "error" and "cannot be imported" in payload["detail"]
    finally:
        worker.close()


def test_handle_kill_is_idempotent_without_a_process():
    handle = WorkerHandle(FAKE_PIPELINE)
    handle.kill()
    handle.kill()
    assert not handle.alive and handle.started == 0
