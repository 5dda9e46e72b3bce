"""The web app's knobs: where it listens and how much work a browser may ask of it.

Every limit exists so that a flood of requests, or one hostile request, cannot take the machine
down: searches run one at a time in a worker process, a bounded queue answers 429 when full, and a
search that outruns its time limit has its worker process killed.
"""

from __future__ import annotations

from dataclasses import dataclass

from servopt.errors import ServoptError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Searches waiting behind the running one; the next request gets 429. Eight covers a few people
# sharing one server without letting a script pile up hours of work.
DEFAULT_MAX_QUEUED = 8
# A default-mode search at 512 GPUs takes seconds; ten minutes leaves room for the largest YAML
# experiments while still reclaiming the worker from a runaway one.
DEFAULT_JOB_TIME_LIMIT_S = 600.0
# Finished searches kept for fetching and downloads (oldest forgotten first).
DEFAULT_RESULTS_KEPT = 32
# The seed's whole example YAML is 5 KiB; 128 KiB leaves room for long comments, not for abuse.
DEFAULT_MAX_BODY_BYTES = 128 * 1024
# The module whose ``run_experiments`` / ``result_document`` / ``deployment_files`` the worker calls.
DEFAULT_PIPELINE_MODULE = "servopt.pipeline"


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    max_queued: int = DEFAULT_MAX_QUEUED
    job_time_limit_s: float = DEFAULT_JOB_TIME_LIMIT_S
    results_kept: int = DEFAULT_RESULTS_KEPT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    pipeline_module: str = DEFAULT_PIPELINE_MODULE
    # Start the worker process (and import the pipeline in it) when the server starts, so that the
    # first search does not pay for numba/ortools imports.
    prewarm: bool = True

    def __post_init__(self) -> None:
        if not self.host:
            raise ServoptError("--host", self.host, "must name an interface to bind")
        if not 0 <= self.port <= 65535:
            raise ServoptError("--port", self.port, "must be a TCP port", ["0..65535"])
        if self.max_queued < 0:
            raise ServoptError("max_queued", self.max_queued, "must be >= 0")
        if self.job_time_limit_s <= 0:
            raise ServoptError("job_time_limit_s", self.job_time_limit_s, "must be > 0")
        if self.results_kept < 1:
            raise ServoptError("results_kept", self.results_kept, "must be >= 1")
        if self.max_body_bytes < 1024:
            raise ServoptError("max_body_bytes", self.max_body_bytes, "must be >= 1024")

    @property
    def loopback_only(self) -> bool:
        return self.host in LOOPBACK_HOSTS
