"""CP-SAT deployment model: which replicas, how many of each, under the GPU budget.

Given the candidate replicas at one TPOT cap (``replicas.ReplicaRows``: row r is a replica of
x_r prefill workers of one prefill option and y_r decode workers of one decode option, with size
s_r GPUs, rate v_r units and TPOT level t_r), choose up to K distinct replica types and their
counts n_r to maximise the cluster's throughput. The cluster metric tokens/s per GPU is
``tokens_per_request * sum_r n_r * v_r / G`` with G the fixed budget, so maximising it is
maximising the linear numerator: no ratio (and no Dinkelbach loop) is needed.

The peer's deployment (floor(G/s) identical replicas of one type) is the case K = 1 with every
count at its ceiling; the packed deployment lets K > 1 types share the budget.

Ties are broken lexicographically by a second solve (``tie_break``): among optimal deployments,
the lowest TPOT level, then the fewest GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from servopt.search.replicas import ReplicaRows
from servopt.search.settings import SolverSettings

_STATUS = {
    cp_model.OPTIMAL: "OPTIMAL",
    cp_model.FEASIBLE: "FEASIBLE",
    cp_model.INFEASIBLE: "INFEASIBLE",
    cp_model.MODEL_INVALID: "MODEL_INVALID",
    cp_model.UNKNOWN: "UNKNOWN",
}


@dataclass(frozen=True)
class SolveReport:
    """One CP-SAT solve: status, objective and bound, and machine-independent work counters."""

    status: str
    objective: float
    bound: float
    deterministic_time: float
    wall_time_s: float
    branches: int

    @property
    def has_solution(self) -> bool:
        return self.status in ("OPTIMAL", "FEASIBLE")


@dataclass(frozen=True)
class Packing:
    """A solution: counts per candidate row (0 = unused), its value, TPOT level and GPUs used."""

    counts: np.ndarray  # int64 (R,)
    value: int
    tpot_level: int
    gpus_used: int


class XpydModel:
    """Builder for max sum_r v_r*n_r over replica rows, one ``_add_*`` method per constraint group."""

    def __init__(self, rows: ReplicaRows, *, total_gpus: int, max_types: int, identical: bool):
        self.rows = rows
        self.total_gpus = total_gpus
        self.max_types = 1 if identical else max_types
        self.identical = identical
        self.model = cp_model.CpModel()
        self.reports: list[SolveReport] = []
        # Most replicas of row r the budget admits: floor(G / s_r).
        self._cap = (total_gpus // rows.size).astype(np.int64)
        self._add_type_choice()
        self._add_replica_counts()
        self._add_gpu_budget()
        self._add_tpot_level()
        self._set_throughput_objective()

    # Each used type is one replica row; at least one and at most K types are used.
    def _add_type_choice(self) -> None:
        m = self.model
        self.use = [m.new_bool_var(f"use_{s}") for s in self.rows.size]
        if self.identical:
            m.add_exactly_one(self.use)
        else:
            m.add(sum(self.use) >= 1)
            m.add(sum(self.use) <= self.max_types)

    # use_r <= n_r <= floor(G/s_r) * use_r; identical deployments fill the budget: n_r = floor(G/s_r) * use_r.
    def _add_replica_counts(self) -> None:
        m = self.model
        self.count = []
        for r, s in enumerate(self.rows.size):
            cap = int(self._cap[r])
            n = m.new_int_var(0, cap, f"n_{s}")
            if self.identical:
                m.add(n == cap * self.use[r])
            else:
                m.add(n <= cap * self.use[r])
                m.add(n >= self.use[r])
            self.count.append(n)

    # sum_r s_r * n_r <= G.
    def _add_gpu_budget(self) -> None:
        self.gpus_used = sum(int(s) * n for s, n in zip(self.rows.size, self.count, strict=True))
        self.model.add(self.gpus_used <= self.total_gpus)

    # tpot_level >= t_r * use_r: the deployment's TPOT is its slowest replica type's.
    def _add_tpot_level(self) -> None:
        m = self.model
        top = int(self.rows.level.max()) if len(self.rows) else 0
        self.tpot_level = m.new_int_var(0, top, "tpot_level")
        for t, u in zip(self.rows.level, self.use, strict=True):
            m.add(self.tpot_level >= int(t) * u)

    # maximise sum_r v_r * n_r (rate units; x tokens_per_request / G gives tokens/s/GPU).
    def _set_throughput_objective(self) -> None:
        self.value = sum(int(v) * n for v, n in zip(self.rows.units, self.count, strict=True))
        self.model.maximize(self.value)

    def hint(self, counts: np.ndarray) -> None:
        """Warm start from a known deployment (counts per row)."""
        self.model.clear_hints()
        for r, n in enumerate(counts):
            self.model.add_hint(self.count[r], int(n))
            self.model.add_hint(self.use[r], int(n > 0))

    def solve(self, settings: SolverSettings) -> Packing | None:
        """Maximise throughput; None if no deployment exists (or none was found in time)."""
        solver = self._solver(settings)
        status = solver.solve(self.model)
        report = self._report(solver, status)
        if not report.has_solution:
            return None
        return self._read(solver)

    def tie_break(self, best: Packing, settings: SolverSettings) -> Packing:
        """Among deployments of value >= best.value: lowest TPOT level, then fewest GPUs."""
        m = self.model
        m.add(self.value >= best.value)
        m.minimize((self.total_gpus + 1) * self.tpot_level + self.gpus_used)
        self.hint(best.counts)
        solver = self._solver(settings)
        status = solver.solve(m)
        report = self._report(solver, status)
        if not report.has_solution:
            return best
        return self._read(solver)

    def _solver(self, settings: SolverSettings) -> cp_model.CpSolver:
        solver = cp_model.CpSolver()
        settings.apply(solver.parameters)
        return solver

    def _report(self, solver: cp_model.CpSolver, status: int) -> SolveReport:
        name = _STATUS.get(status, str(status))
        has = name in ("OPTIMAL", "FEASIBLE")
        report = SolveReport(
            status=name,
            objective=solver.objective_value if has else float("nan"),
            bound=solver.best_objective_bound if has else float("nan"),
            deterministic_time=solver.deterministic_time,
            wall_time_s=solver.wall_time,
            branches=solver.num_branches,
        )
        self.reports.append(report)
        return report

    def _read(self, solver: cp_model.CpSolver) -> Packing:
        counts = np.array([solver.value(n) for n in self.count], dtype=np.int64)
        used = counts > 0
        return Packing(
            counts=counts,
            value=int(np.dot(counts, self.rows.units)),
            tpot_level=int(self.rows.level[used].max()) if used.any() else -1,
            gpus_used=int(np.dot(counts, self.rows.size)),
        )

    @property
    def status(self) -> str:
        """OPTIMAL when every solve so far proved optimality, else the weakest status seen."""
        names = [r.status for r in self.reports if r.has_solution]
        return "FEASIBLE" if "FEASIBLE" in names else "OPTIMAL"
