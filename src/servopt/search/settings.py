"""CP-SAT solver settings: deterministic by default (one worker, fixed seed, time limit)."""

from __future__ import annotations

from dataclasses import dataclass

from servopt.errors import ServoptError

# One worker: on 2 cores it is the fastest setting measured, and its search path (hence its
# deterministic_time and its choice among tied optima) is reproducible run to run.
DEFAULT_NUM_WORKERS = 1
DEFAULT_RANDOM_SEED = 0
# Per solve. The models here solve in milliseconds; the limit only guards pathological inputs,
# whose answer is then reported FEASIBLE instead of OPTIMAL.
DEFAULT_MAX_TIME_S = 10.0
# Presolve off: the deployment models have at most a few hundred rows and no structure presolve
# can exploit; measured per solve (1 worker) 1.3 ms instead of 5.3 ms for an identical-replica
# model and 7 ms instead of 14 ms for a packed one.
DEFAULT_PRESOLVE = False
# How replicas are composed: "menu" enumerates the best replica per size in a numba kernel and
# lets CP-SAT pack them (xpyd_model); "cpsat" lets one CP-SAT model choose the compositions too
# (compose_model). Both are exact and give the same answers; "menu" is much faster.
COMPOSITIONS = ("menu", "cpsat")
DEFAULT_COMPOSITION = "menu"


@dataclass(frozen=True)
class SolverSettings:
    num_workers: int = DEFAULT_NUM_WORKERS
    random_seed: int = DEFAULT_RANDOM_SEED
    max_time_in_seconds: float = DEFAULT_MAX_TIME_S
    presolve: bool = DEFAULT_PRESOLVE
    # Extra SatParameters in text format, e.g. "log_search_progress: true" (passthrough).
    params: str = ""
    composition: str = DEFAULT_COMPOSITION

    def __post_init__(self) -> None:
        if self.composition not in COMPOSITIONS:
            raise ServoptError("composition", self.composition, "unknown composition engine", COMPOSITIONS)
        if self.num_workers < 1:
            raise ServoptError("num_workers", self.num_workers, "must be >= 1")
        if not self.max_time_in_seconds > 0:
            raise ServoptError("max_time_in_seconds", self.max_time_in_seconds, "must be > 0")

    def apply(self, parameters) -> None:
        parameters.num_workers = self.num_workers
        parameters.random_seed = self.random_seed
        parameters.max_time_in_seconds = self.max_time_in_seconds
        parameters.cp_model_presolve = self.presolve
        if self.params and not parameters.merge_text_format(self.params):
            raise ServoptError("solver params", self.params, "not valid SatParameters text format")
