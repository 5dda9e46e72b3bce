"""CP-SAT solver settings: deterministic by default (one worker, fixed seed, deterministic-time limit).

The limit is CP-SAT's ``max_deterministic_time``, a count of work, not seconds on the clock: with one
worker and a fixed seed the solver then walks the same search path and stops at the same point on any
machine at any load, so the same input always gives the same answer and the same optimality status.
A wall-clock limit made both depend on load: on a busy machine a solve that proves its optimum in
0.1 s of deterministic time took 2.8 s of wall time, and the suite saw FEASIBLE where it expected
OPTIMAL.
"""

from __future__ import annotations

from dataclasses import dataclass

from servopt.errors import ServoptError

# One worker: on 2 cores it is the fastest setting measured, and its search path (hence its
# deterministic_time and its choice among tied optima) is reproducible run to run.
DEFAULT_NUM_WORKERS = 1
DEFAULT_RANDOM_SEED = 0
# Per solve, in CP-SAT's deterministic seconds. The hardest solve measured (the search tests' random
# instances and the bench tables, both engines) took 0.11; the limit only guards pathological
# inputs, whose answer is then reported FEASIBLE instead of OPTIMAL. One deterministic second was
# 4-25 s of wall time on 2 cores, so this bounds a solve at about the old 10 s wall limit or more.
DEFAULT_MAX_DETERMINISTIC_TIME = 2.0
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
    max_deterministic_time: float = DEFAULT_MAX_DETERMINISTIC_TIME
    presolve: bool = DEFAULT_PRESOLVE
    # Extra SatParameters in text format, e.g. "log_search_progress: true" (passthrough).
    params: str = ""
    composition: str = DEFAULT_COMPOSITION

    def __post_init__(self) -> None:
        if self.composition not in COMPOSITIONS:
            raise ServoptError("composition", self.composition, "unknown composition engine", COMPOSITIONS)
        if self.num_workers < 1:
            raise ServoptError("num_workers", self.num_workers, "must be >= 1")
        if not 0 < self.max_deterministic_time < float("inf"):
            raise ServoptError(
                "max_deterministic_time", self.max_deterministic_time, "must be finite and > 0"
            )

    def apply(self, parameters) -> None:
        parameters.num_workers = self.num_workers
        parameters.random_seed = self.random_seed
        parameters.max_deterministic_time = self.max_deterministic_time
        parameters.cp_model_presolve = self.presolve
        if self.params and not parameters.merge_text_format(self.params):
            raise ServoptError("solver params", self.params, "not valid SatParameters text format")
