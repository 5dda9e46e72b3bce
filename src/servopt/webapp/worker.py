"""The search worker: one child process that runs searches one at a time, and its parent-side handle.

A search runs in a child process, not a thread, so that a search past its time limit can be stopped
(the process is killed and a fresh one started for the next search) and so that a crash or a memory
blow-up in one search cannot take the web server with it. The child stays up between searches, so
numba's compiled kernels and the perf-database cache are loaded once per worker, not per search.

Messages (pickled over a ``multiprocessing`` pipe):
parent -> child ``("run", job_id, request_dict)``;
child -> parent ``("ready", None)``, ``("progress", job_id, (stage, fraction))``,
``("done", job_id, {"result", "deployments"})`` or ``("error", job_id, {"detail", "problems"})``.
"""

from __future__ import annotations

import importlib
import logging
import math
import multiprocessing
import time
import traceback
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Progress messages closer together than this are dropped (the page polls twice a second).
PROGRESS_INTERVAL_S = 0.1
# How long the parent waits for a killed worker to be reaped.
KILL_JOIN_S = 5.0
# The parent checks for cancellation and a dead child this often while a search runs.
POLL_S = 0.2
# A fresh child imports numba, ortools and the perf database before it says "ready"; that start-up is
# not part of any search's time limit, but a child that never gets there is given up on.
STARTUP_TIMEOUT_S = 300.0
INTERNAL_ERROR = "internal error in the search (details are in the server log)"


def _jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars unwrapped, tuples as lists, NaN/inf as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _row_rank(row: dict[str, Any], position: int) -> int:
    """A row's rank as its table shows it: its own ``rank`` column, else its 1-based position."""
    rank = row.get("rank")
    return rank if isinstance(rank, int) and not isinstance(rank, bool) else position + 1


def _deployments(pipeline: Any, result: Any, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Deployment files of every row of every experiment's top table, generated once, up front:
    the result object stays in this process, the page asks for files later."""
    out: dict[str, dict[str, Any]] = {}
    from servopt.errors import ServoptError

    for experiment in data.get("experiments") or []:
        name = experiment.get("name")
        files: dict[str, Any] = {}
        for position, row in enumerate(experiment.get("top") or []):
            rank = _row_rank(row, position)
            try:
                files[str(rank)] = {"files": dict(pipeline.deployment_files(result, name, rank))}
            except ServoptError as err:
                files[str(rank)] = {"error": str(err)}
        verdict = data.get("verdict") or {}
        packed_files = getattr(pipeline, "packed_deployment_files", None)
        if verdict.get("deploy") == "packed" and verdict.get("experiment") == name and packed_files:
            # The deployment the verdict recommends: its replica shapes side by side.
            try:
                files["packed"] = {"files": dict(packed_files(result, name))}
            except ServoptError as err:
                files["packed"] = {"error": str(err)}
        out[str(name)] = files
    return out


def _run_one(pipeline: Any, request_data: dict[str, Any], send_progress: Callable) -> dict[str, Any]:
    from pydantic import TypeAdapter

    from servopt.webapp.experiments import build_experiments, sizing_question
    from servopt.webapp.schemas import SearchRequest

    request = TypeAdapter(SearchRequest).validate_python(request_data)
    experiments = build_experiments(request)
    if getattr(request, "loaded", False):
        # A load on the form: rate sizing, one document (``cli default --request_rate --json``).
        send_progress("sizing", 0.0)
        doc = _jsonable(pipeline.size_load(sizing_question(request)))
        return {"result": {"sizing": doc}, "deployments": {}}
    result = pipeline.run_experiments(experiments, progress=send_progress, top_n=request.top_n)
    data = _jsonable(pipeline.result_document(result))
    return {"result": data, "deployments": _deployments(pipeline, result, data)}


def serve(conn: Any, pipeline_module: str) -> None:
    """The child's main loop: import the pipeline once, then run searches until the pipe closes."""
    from servopt.errors import ServoptError
    from servopt.webapp.experiments import error_json

    pipeline = None
    import_error = ""
    try:
        pipeline = importlib.import_module(pipeline_module)
    except Exception as err:  # reported per search, so the page says why nothing runs
        import_error = f"the search pipeline ({pipeline_module}) cannot be imported: {err}"
        traceback.print_exc()
    try:  # load the model registry and system specs now, not inside the first search's time limit
        from servopt.webapp.guard import web_model_names

        web_model_names()
    except Exception:
        traceback.print_exc()
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] != "run":
            return
        _, job_id, request_data = message
        last_sent = [0.0]

        def send_progress(stage: str, fraction: float, job_id: str = job_id, last_sent=last_sent) -> None:
            now = time.monotonic()
            if fraction < 1.0 and now - last_sent[0] < PROGRESS_INTERVAL_S:
                return
            last_sent[0] = now
            conn.send(("progress", job_id, (str(stage), float(fraction))))

        if pipeline is None:  # the import's traceback is in the log once already
            conn.send(("error", job_id, {"detail": import_error, "problems": []}))
            continue
        try:
            conn.send(("done", job_id, _run_one(pipeline, request_data, send_progress)))
        except ServoptError as err:
            conn.send(("error", job_id, error_json(err)))
        except Exception:
            traceback.print_exc()
            conn.send(("error", job_id, {"detail": INTERNAL_ERROR, "problems": []}))


class WorkerHandle:
    """The parent's side: starts the child on demand, runs one search with a deadline, kills on timeout."""

    def __init__(self, pipeline_module: str):
        self.pipeline_module = pipeline_module
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._conn: Any = None
        self._ready = False
        self.started = 0  # child processes started so far (a deterministic counter for tests)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def ensure_started(self) -> None:
        if self.alive:
            return
        self.kill()
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(
            target=serve, args=(child_conn, self.pipeline_module), name="servopt-search-worker", daemon=True
        )
        process.start()
        child_conn.close()
        self._process, self._conn = process, parent_conn
        self._ready = False
        self.started += 1

    def kill(self) -> None:
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(KILL_JOIN_S)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def _receive(self, deadline: float, cancelled: Callable[[], bool]) -> tuple[str, Any]:
        """The next message as ``("message", msg)``, or how waiting ended: ``("cancelled", None)``,
        ``("deadline", None)`` or ``("crashed", exit_code)`` (the child is gone in those cases)."""
        while True:
            if cancelled():
                self.kill()
                return "cancelled", None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                return "deadline", None
            try:
                if self._conn.poll(min(remaining, POLL_S)):
                    return "message", self._conn.recv()
            except (EOFError, OSError):  # the child died: its end of the pipe closed
                self._process.join(KILL_JOIN_S)
            if not self._process.is_alive():
                code = self._process.exitcode
                self.kill()
                return "crashed", code

    def _await_ready(self, cancelled: Callable[[], bool]) -> tuple[str, Any] | None:
        """Wait for a fresh child's imports, so that they do not count against a search's time limit."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._ready:
            kind, message = self._receive(deadline, cancelled)
            if kind == "deadline":
                log.error("the search worker did not start within %g s", STARTUP_TIMEOUT_S)
                return "crashed", None
            if kind != "message":
                return kind, message
            self._ready = message[0] == "ready"
        return None

    def run(
        self,
        job_id: str,
        request_data: dict[str, Any],
        *,
        time_limit_s: float,
        on_progress: Callable[[str, float], None],
        cancelled: Callable[[], bool],
    ) -> tuple[str, Any]:
        """``("done", payload)``, ``("error", payload)``, ``("timed_out", None)``, ``("cancelled", None)``
        or ``("crashed", exit_code)``. On timeout, cancel or crash the child is gone afterwards."""
        self.ensure_started()
        not_ready = self._await_ready(cancelled)
        if not_ready is not None:
            return not_ready
        deadline = time.monotonic() + time_limit_s
        try:
            self._conn.send(("run", job_id, request_data))
        except (OSError, ValueError):
            code = self._process.exitcode if self._process is not None else None
            self.kill()
            return "crashed", code
        while True:
            kind, message = self._receive(deadline, cancelled)
            if kind == "deadline":
                return "timed_out", None
            if kind != "message":
                return kind, message
            if message[0] == "progress" and message[1] == job_id:
                on_progress(*message[2])
            elif message[0] in ("done", "error") and message[1] == job_id:
                return message[0], message[2]
