"""The "cpsat" composition engine: ``compose_model`` behind the sweep's engine interface.

One model per deployment shape (identical, or packed with K types) serves every TPOT cap of a
sweep; each solve is warm-started from a known deployment (the sweep's previous point, or the
identical optimum at the same cap).
"""

from __future__ import annotations

from servopt.errors import ServoptError
from servopt.search.compose_model import ComposeModel
from servopt.search.compose_problem import Choice, ComposeProblem
from servopt.search.result import Counters
from servopt.search.settings import SolverSettings
from servopt.search.sweep import SweepPoint


class ComposeEngine:
    """The "cpsat" engine: one ``ComposeModel`` per deployment shape, re-solved per TPOT cap."""

    def __init__(self, problem: ComposeProblem, *, settings: SolverSettings, counters: Counters):
        self.problem = problem
        self.settings = settings
        self.counters = counters
        self._models: dict[tuple[bool, int], ComposeModel] = {}

    def model(self, *, max_types: int, identical: bool) -> ComposeModel:
        key = (identical, 1 if identical else max_types)
        if key not in self._models:
            self._models[key] = ComposeModel(self.problem, max_types=max_types, identical=identical)
        return self._models[key]

    def solve_at(
        self, cap: int, *, max_types: int, identical: bool, previous: SweepPoint | None = None
    ) -> SweepPoint | None:
        """The best deployment with TPOT level <= cap (None if there is none)."""
        if cap < 0:
            return None
        if not identical and (previous is None or previous.packing.tpot_level > cap):
            # Packed solves search slowly from nothing or from a deployment above the cap (a
            # sweep's previous point): start from the identical optimum at this cap, a fast solve.
            previous = self.solve_at(cap, max_types=1, identical=True)
        model = self.model(max_types=max_types, identical=identical)
        seen = len(model.reports)
        hint = Choice(previous.rows, previous.packing) if previous is not None else None
        choice = model.solve(cap, self.settings, hint)
        reports = model.reports[seen:]
        c = self.counters
        for report in reports:
            c.solves += 1
            c.deterministic_time += report.deterministic_time
            c.branches += report.branches
        optimal = model.proven
        c.all_optimal &= optimal
        if choice is None and not optimal:
            # Not a proof that nothing fits: the solver stopped first. Say so rather than let the
            # caller diagnose an infeasible target or end a frontier early.
            raise ServoptError(
                "max_time_in_seconds",
                self.settings.max_time_in_seconds,
                f"CP-SAT stopped before finding any deployment at TPOT level {cap} (composition "
                "'cpsat'); raise the time limit or use the 'menu' composition",
            )
        if choice is None:
            return None
        return SweepPoint(
            cap=cap, rows=choice.rows, packing=choice.packing, status="OPTIMAL" if optimal else "FEASIBLE"
        )
