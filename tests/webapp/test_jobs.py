"""The search queue on a scripted in-process worker: order, bounds, LRU, outcomes, cancellation."""

from __future__ import annotations

import re
import threading
import time

import pytest

from servopt.webapp.jobs import JOB_ID_PATTERN, JobQueue, QueueFullError
from servopt.webapp.settings import WebSettings

WAIT_S = 10.0


class ScriptedWorker:
    """Stands in for WorkerHandle: each run blocks until released, then returns the scripted outcome."""

    def __init__(self):
        self.started = 0
        self.ran: list[str] = []
        self.outcomes: dict[str, tuple[str, object]] = {}
        self.release = threading.Event()
        self.release.set()
        self.killed = 0

    def ensure_started(self):
        self.started += 1

    def kill(self):
        self.killed += 1

    def run(self, job_id, request, *, time_limit_s, on_progress, cancelled):
        self.ran.append(request["n"])
        on_progress("half", 0.5)
        while not self.release.wait(0.01):
            if cancelled():
                return "cancelled", None
        return self.outcomes.get(request["n"], ("done", {"result": {"n": request["n"]}, "deployments": {}}))


def _queue(worker, **overrides) -> JobQueue:
    settings = WebSettings(**{"prewarm": False, "max_queued": 2, "results_kept": 3, **overrides})
    queue = JobQueue(settings, worker=worker)
    queue.start()
    return queue


def _wait(queue: JobQueue, job_id: str, status: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while queue.get(job_id)[0].status != status:
        assert time.monotonic() < deadline, f"{job_id} never reached {status}"
        time.sleep(0.005)


def test_jobs_run_in_order_one_at_a_time():
    worker = ScriptedWorker()
    queue = _queue(worker, max_queued=10, results_kept=10)
    try:
        jobs = [queue.submit({"n": str(i)}, ["agg"])[0] for i in range(5)]
        for job in jobs:
            _wait(queue, job.id, "done")
        assert worker.ran == ["0", "1", "2", "3", "4"]
        assert queue.get(jobs[-1].id)[0].result == {"n": "4"}
        assert all(re.match(JOB_ID_PATTERN, j.id) for j in jobs)
        assert len({j.id for j in jobs}) == 5
    finally:
        queue.stop()


def test_full_queue_refuses_and_positions_count_from_one():
    worker = ScriptedWorker()
    worker.release.clear()
    queue = _queue(worker)
    try:
        first, _ = queue.submit({"n": "a"}, [])
        _wait(queue, first.id, "running")
        assert queue.get(first.id) == (first, 0)
        _, pos2 = queue.submit({"n": "b"}, [])
        third, pos3 = queue.submit({"n": "c"}, [])
        assert (pos2, pos3) == (1, 2)
        with pytest.raises(QueueFullError) as refused:
            queue.submit({"n": "d"}, [])
        assert refused.value.queued == 2 and refused.value.retry_after_s >= 1
        with pytest.raises(QueueFullError):
            queue.check_room()
        assert queue.stats()["refused"] == 2
        assert queue.get(third.id)[1] == 2
        assert first.stage == "half" and first.fraction == 0.5
        worker.release.set()
        _wait(queue, third.id, "done")
        assert worker.ran == ["a", "b", "c"]
    finally:
        queue.stop()


def test_zero_queue_still_takes_a_search_when_idle():
    worker = ScriptedWorker()
    worker.release.clear()
    queue = _queue(worker, max_queued=0)
    try:
        job, _ = queue.submit({"n": "only"}, [])
        _wait(queue, job.id, "running")
        with pytest.raises(QueueFullError):
            queue.submit({"n": "more"}, [])
        worker.release.set()
        _wait(queue, job.id, "done")
    finally:
        queue.stop()


def test_results_are_kept_least_recently_used_first_out():
    worker = ScriptedWorker()
    queue = _queue(worker, max_queued=10, results_kept=3)
    try:
        jobs = [queue.submit({"n": str(i)}, [])[0] for i in range(3)]
        _wait(queue, jobs[-1].id, "done")
        queue.get(jobs[0].id)  # touched: now the most recently used
        later = queue.submit({"n": "3"}, [])[0]
        _wait(queue, later.id, "done")
        assert queue.get(jobs[1].id) is None  # the least recently used was forgotten
        assert queue.get(jobs[0].id) is not None and queue.get(jobs[2].id) is not None
    finally:
        queue.stop()


@pytest.mark.parametrize(
    ("outcome", "status", "detail"),
    [
        (("error", {"detail": "tpot: 1.0: too tight", "problems": []}), "failed", "tpot: 1.0: too tight"),
        (("timed_out", None), "timed_out", "time limit of 600 s"),
        (("crashed", -9), "failed", "internal error"),
    ],
)
def test_outcomes_become_statuses(outcome, status, detail):
    worker = ScriptedWorker()
    worker.outcomes["x"] = outcome
    queue = _queue(worker)
    try:
        job, _ = queue.submit({"n": "x"}, [])
        _wait(queue, job.id, status)
        assert detail in job.error["detail"]
        assert job.result is None
    finally:
        queue.stop()


def test_cancel_a_queued_and_a_running_search():
    worker = ScriptedWorker()
    worker.release.clear()
    queue = _queue(worker)
    try:
        running, _ = queue.submit({"n": "r"}, [])
        _wait(queue, running.id, "running")
        waiting, _ = queue.submit({"n": "w"}, [])
        assert queue.cancel(waiting.id).status == "cancelled"
        queue.cancel(running.id)
        _wait(queue, running.id, "cancelled")
        assert worker.ran == ["r"]  # the cancelled queued search never ran
        assert queue.cancel("0" * 32) is None
    finally:
        queue.stop()


def test_a_worker_exception_does_not_kill_the_queue():
    worker = ScriptedWorker()
    original = worker.run

    def explode_once(job_id, request, **kw):
        if request["n"] == "boom":
            raise OSError("pipe broke")
        return original(job_id, request, **kw)

    worker.run = explode_once
    queue = _queue(worker)
    try:
        bad, _ = queue.submit({"n": "boom"}, [])
        _wait(queue, bad.id, "failed")
        good, _ = queue.submit({"n": "fine"}, [])
        _wait(queue, good.id, "done")
        assert worker.killed >= 1
    finally:
        queue.stop()
