"""The search queue: one worker, a bounded queue (full -> 429), a time limit per search, an LRU of results.

One supervisor thread takes queued searches in order and runs each in the worker process
(``worker.WorkerHandle``). Request handlers only submit and read: submitting never blocks, and a
full queue is refused at once, so a flood of requests costs the server a few dictionary operations
each, not a search each.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from servopt.webapp.settings import WebSettings
from servopt.webapp.worker import INTERNAL_ERROR, WorkerHandle

log = logging.getLogger(__name__)

Status = Literal["queued", "running", "done", "failed", "timed_out", "cancelled"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "timed_out", "cancelled"})
# Job ids are 128 random bits in hex: unguessable, so one user cannot read another's results.
JOB_ID_BYTES = 16
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"


class QueueFullError(Exception):
    """The queue holds ``max_queued`` searches already."""

    def __init__(self, queued: int, retry_after_s: int):
        self.queued = queued
        self.retry_after_s = retry_after_s
        super().__init__(f"{queued} searches are queued already")


@dataclass
class Job:
    id: str
    request: dict[str, Any]
    experiments: list[str]
    status: Status = "queued"
    stage: str = "queued"
    fraction: float = 0.0
    created_s: float = field(default_factory=time.monotonic)
    started_s: float | None = None
    finished_s: float | None = None
    result: dict[str, Any] | None = None
    deployments: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    cancel_requested: bool = False

    def elapsed_s(self) -> float:
        if self.started_s is None:
            return 0.0
        return (self.finished_s or time.monotonic()) - self.started_s


class JobQueue:
    def __init__(self, settings: WebSettings, worker: WorkerHandle | None = None):
        self.settings = settings
        self.worker = worker or WorkerHandle(settings.pipeline_module)
        self._lock = threading.Condition()
        self._pending: deque[Job] = deque()
        self._running: Job | None = None
        self._finished: OrderedDict[str, Job] = OrderedDict()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Deterministic counters (tests read them).
        self.submitted = 0
        self.refused = 0
        self.completed = 0
        # Seconds one search took most recently: the Retry-After hint of a 429.
        self._last_run_s = 1.0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self.settings.prewarm:
            self.worker.ensure_started()
        self._thread = threading.Thread(target=self._supervise, name="servopt-search-queue", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            if self._running is not None:
                self._running.cancel_requested = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.worker.kill()

    # -- requests --------------------------------------------------------------------------------
    def _refuse_if_full(self) -> None:
        """Raise QueueFullError (the lock is held) when no search can be taken now."""
        if len(self._pending) >= self.settings.max_queued and not self._can_start_now():
            self.refused += 1
            waiting = len(self._pending) + 1
            raise QueueFullError(len(self._pending), max(1, round(self._last_run_s * waiting)))

    def check_room(self) -> None:
        """Raise QueueFullError if a search submitted now would be refused."""
        with self._lock:
            self._refuse_if_full()

    def submit(self, request: dict[str, Any], experiments: list[str]) -> tuple[Job, int]:
        """Queue a search; returns the job and its place in the queue (1 = next). Never blocks."""
        with self._lock:
            self._refuse_if_full()
            job = Job(id=secrets.token_hex(JOB_ID_BYTES), request=request, experiments=experiments)
            self._pending.append(job)
            self.submitted += 1
            self._lock.notify_all()
            return job, len(self._pending)

    def _can_start_now(self) -> bool:
        # An idle worker takes the search at once, even with max_queued == 0.
        return self._running is None and not self._pending

    def get(self, job_id: str) -> tuple[Job, int] | None:
        """The job and its queue position (0 when not queued); None for an unknown or forgotten id."""
        with self._lock:
            if self._running is not None and self._running.id == job_id:
                return self._running, 0
            for i, job in enumerate(self._pending):
                if job.id == job_id:
                    return job, i + 1
            job = self._finished.get(job_id)
            if job is None:
                return None
            self._finished.move_to_end(job_id)
            return job, 0

    def cancel(self, job_id: str) -> Job | None:
        with self._lock:
            for job in self._pending:
                if job.id == job_id:
                    self._pending.remove(job)
                    self._finish(job, "cancelled", error={"detail": "cancelled by the user", "problems": []})
                    return job
            if self._running is not None and self._running.id == job_id:
                self._running.cancel_requested = True
                return self._running
            return self._finished.get(job_id)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "running": int(self._running is not None),
                "queued": len(self._pending),
                "max_queued": self.settings.max_queued,
                "kept": len(self._finished),
                "submitted": self.submitted,
                "refused": self.refused,
                "completed": self.completed,
                "workers_started": self.worker.started,
            }

    # -- the supervisor thread -------------------------------------------------------------------
    def _finish(self, job: Job, status: Status, *, error: dict[str, Any] | None = None) -> None:
        """Record an outcome (the lock is held); forget the oldest results beyond ``results_kept``."""
        job.status = status
        job.error = error
        job.finished_s = time.monotonic()
        job.stage = status
        self._finished[job.id] = job
        self.completed += 1
        while len(self._finished) > self.settings.results_kept:
            self._finished.popitem(last=False)

    def _supervise(self) -> None:
        while True:
            with self._lock:
                while not self._pending and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                job = self._pending.popleft()
                job.status, job.stage, job.started_s = "running", "starting", time.monotonic()
                self._running = job
            try:
                kind, payload = self.worker.run(
                    job.id,
                    job.request,
                    time_limit_s=self.settings.job_time_limit_s,
                    on_progress=lambda stage, fraction, job=job: self._progress(job, stage, fraction),
                    cancelled=lambda job=job: job.cancel_requested,
                )
            except Exception:  # never let the queue die with a request in it
                log.exception("search worker failed")
                self.worker.kill()
                kind, payload = "crashed", None
            with self._lock:
                self._running = None
                self._record(job, kind, payload)
                self._last_run_s = max(0.1, job.elapsed_s())

    def _progress(self, job: Job, stage: str, fraction: float) -> None:
        with self._lock:
            job.stage, job.fraction = stage, min(max(fraction, 0.0), 1.0)

    def _record(self, job: Job, kind: str, payload: Any) -> None:
        if kind == "done":
            job.result, job.deployments = payload["result"], payload["deployments"]
            job.fraction = 1.0
            self._finish(job, "done")
        elif kind == "error":
            self._finish(job, "failed", error=payload)
        elif kind == "timed_out":
            limit = self.settings.job_time_limit_s
            detail = f"search: stopped after the time limit of {limit:g} s; narrow the search space"
            self._finish(job, "timed_out", error={"detail": detail, "problems": []})
        elif kind == "cancelled":
            self._finish(job, "cancelled", error={"detail": "cancelled by the user", "problems": []})
        else:
            log.error("search worker exited (code %s) during search %s", payload, job.id)
            self._finish(job, "failed", error={"detail": INTERNAL_ERROR, "problems": []})
