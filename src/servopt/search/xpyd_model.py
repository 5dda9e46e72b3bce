"""CP-SAT deployment model: which replicas, how many of each, under the GPU budget.

Given the candidate replicas at one TPOT cap (``replicas.ReplicaRows``: row r is a replica of
x_r prefill workers of one prefill option and y_r decode workers of one decode option, with size
s_r GPUs, rate v_r units and TPOT level t_r), choose up to K distinct replica types and their
counts n_r to maximise the cluster's throughput. The cluster metric tokens/s per GPU is
``tokens_per_request * sum_r n_r * v_r / G`` with G the fixed budget, so maximising it is
maximising the linear numerator: no ratio (and no Dinkelbach loop) is needed.

The peer's deployment (floor(G/s) identical replicas of one type) is the case K = 1 with every
count at its ceiling; the packed deployment lets K > 1 types share the budget.

Ties are broken lexicographically: among optimal deployments, the lowest TPOT level, then the
fewest GPUs. When the numbers allow it exactly in int64 this is one solve of the weighted objective
``W * value - ((G+1) * tpot_level + gpus_used)`` with ``W`` above the largest tie term; otherwise a
second solve (``tie_break``) fixes the value and minimises the tie term.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from servopt.search import cpsat
from servopt.search.encode import MAX_OBJECTIVE_UNITS
from servopt.search.replicas import ReplicaRows
from servopt.search.result import Counters
from servopt.search.settings import SolverSettings


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
        self.model = cpsat.Model()
        self.reports: list[cpsat.SolveReport] = []
        # Most replicas of row r the budget admits: floor(G / s_r).
        self._cap = (total_gpus // rows.size).astype(np.int64)
        self._add_type_choice()
        self._add_replica_counts()
        self._add_gpu_budget()
        self._add_tpot_level()
        self._set_objective()

    # Each used type is one replica row; at least one and at most K types are used.
    def _add_type_choice(self) -> None:
        m = self.model
        self.use = [m.new_bool_var(f"use_{s}") for s in self.rows.size]
        if self.identical:
            m.add_exactly_one(self.use)
        else:
            m.add_linear_constraint(sum(self.use), 1, self.max_types)

    # use_r <= n_r <= floor(G/s_r) * use_r; identical replicas fill the budget: n_r = floor(G/s_r) * use_r.
    def _add_replica_counts(self) -> None:
        m = self.model
        if self.identical:
            # n_r is a constant multiple of use_r: no count variables needed.
            self.count = [int(c) * u for c, u in zip(self._cap, self.use, strict=True)]
            return
        self.count = []
        for r, s in enumerate(self.rows.size):
            n = m.new_int_var(0, int(self._cap[r]), f"n_{s}")
            m.add(n <= int(self._cap[r]) * self.use[r])
            m.add(n >= self.use[r])
            self.count.append(n)

    # sum_r s_r * n_r <= G.
    def _add_gpu_budget(self) -> None:
        if self.identical:
            # floor(G/s_r) * s_r <= G holds for every row: the budget needs no constraint.
            self.gpus_used = cp_model.LinearExpr.weighted_sum(self.use, (self._cap * self.rows.size).tolist())
            return
        self.gpus_used = cp_model.LinearExpr.weighted_sum(self.count, self.rows.size.tolist())
        self.model.add(self.gpus_used <= self.total_gpus)

    # tpot_level >= t_r * use_r: the deployment's TPOT is its slowest replica type's (levels dense-ranked).
    def _add_tpot_level(self) -> None:
        levels, self._level_rank = np.unique(self.rows.level, return_inverse=True)
        self._n_levels = int(levels.size)
        if self.identical:
            # Exactly one type: its level is sum_r t_r * use_r.
            self.tpot_level = cp_model.LinearExpr.weighted_sum(self.use, self._level_rank.tolist())
            return
        m = self.model
        self.tpot_level = m.new_int_var(0, self._n_levels - 1, "tpot_level")
        for t, u in zip(self._level_rank, self.use, strict=True):
            m.add(self.tpot_level >= int(t) * u)

    # maximise sum_r v_r * n_r (rate units; x tokens_per_request / G gives tokens/s/GPU), ties folded in when exact.
    def _set_objective(self) -> None:
        if self.identical:
            self.value = cp_model.LinearExpr.weighted_sum(self.use, (self._cap * self.rows.units).tolist())
        else:
            self.value = cp_model.LinearExpr.weighted_sum(self.count, self.rows.units.tolist())
        # Largest reachable value: identical, one row at its ceiling count; packed, the budget
        # filled at the best rate per GPU. Tie terms stay below tie_span.
        if self.identical:
            value_bound = int(np.max(self._cap * self.rows.units))
            tie_span = len(self.rows)
        else:
            value_bound = int(
                np.max((self.rows.units * self.total_gpus + self.rows.size - 1) // self.rows.size)
            )
            tie_span = (self.total_gpus + 1) * self._n_levels
        self.folded = value_bound * tie_span < MAX_OBJECTIVE_UNITS
        if self.folded:
            self.model.maximize(tie_span * self.value - self._tie_term())
        else:
            self.model.maximize(self.value)

    def _tie_term(self):
        if self.identical:
            # One row is used: rank the rows by (TPOT level, GPUs used) once, here.
            rank = np.empty(len(self.rows), dtype=np.int64)
            rank[np.lexsort((self._cap * self.rows.size, self.rows.level))] = np.arange(len(self.rows))
            return cp_model.LinearExpr.weighted_sum(self.use, rank.tolist())
        return (self.total_gpus + 1) * self.tpot_level + self.gpus_used

    def hint(self, counts: np.ndarray) -> None:
        """Warm start from a known deployment (counts per row)."""
        self.model.clear_hints()
        for r, n in enumerate(counts):
            if not self.identical:
                self.model.add_hint(self.count[r], int(n))
            self.model.add_hint(self.use[r], int(n > 0))

    def solve(self, settings: SolverSettings, counters: Counters) -> Packing | None:
        """Maximise throughput; None if no deployment exists (or none was found in time)."""
        return self._run(settings, counters)

    def tie_break(self, best: Packing, settings: SolverSettings, counters: Counters) -> Packing:
        """Among deployments of value >= best.value: lowest TPOT level, then fewest GPUs."""
        if self.folded:
            return best
        m = self.model
        m.add(self.value >= best.value)
        m.minimize(self._tie_term())
        self.hint(best.counts)
        return self._run(settings, counters) or best

    def _run(self, settings: SolverSettings, counters: Counters) -> Packing | None:
        report = cpsat.solve(self.model, settings, counters)
        self.reports.append(report)
        if not report.has_solution:
            return None
        if self.identical:
            counts = np.where(report.values(self.use) != 0, self._cap, 0)
        else:
            counts = report.values(self.count)
        used = counts > 0
        return Packing(
            counts=counts,
            value=int(np.dot(counts, self.rows.units)),
            tpot_level=int(self.rows.level[used].max()) if used.any() else -1,
            gpus_used=int(np.dot(counts, self.rows.size)),
        )

    @property
    def status(self) -> str:
        """OPTIMAL when every solve so far is proven (an optimum, or that nothing fits), else FEASIBLE."""
        return "OPTIMAL" if all(r.proven for r in self.reports) else "FEASIBLE"
