"""The "cpsat" composition engine: ``compose_model`` behind the sweep's engine interface.

One model per deployment shape (identical, or packed with K types) serves every TPOT cap of a
sweep. Each solve is warm-started from the "menu" engine's answer at the same cap (when one is
given): the model finds the best composition fast from a good incumbent, but still has to prove
it optimal on its own, so a wrong hint could cost time, never the answer. Without hints (or
where the menu has none) the sweep's previous point is the hint; solves whose hint lies above
their cap then have to search for their first good deployment, which on real tables took up to
16 s of deterministic time for one solve (QWEN3_32B, H200, 64 GPUs).
"""

from __future__ import annotations

from servopt.search import cpsat
from servopt.search.compose_model import ComposeModel
from servopt.search.compose_problem import Choice, ComposeProblem
from servopt.search.result import Counters
from servopt.search.settings import SolverSettings
from servopt.search.sweep import Engine, SweepPoint


def _choice(point: SweepPoint | None) -> Choice | None:
    """A sweep point as a model hint: only its used replica types."""
    if point is None:
        return None
    used = point.packing.counts > 0
    packing = point.packing
    return Choice(
        rows=point.rows.take(used),
        packing=type(packing)(packing.counts[used], packing.value, packing.tpot_level, packing.gpus_used),
    )


class ComposeEngine:
    """The "cpsat" engine: one ``ComposeModel`` per deployment shape, re-solved per TPOT cap."""

    def __init__(
        self,
        problem: ComposeProblem,
        *,
        settings: SolverSettings,
        counters: Counters,
        hints: Engine | None = None,
    ):
        self.problem = problem
        self.settings = settings
        self.counters = counters
        # An engine over the same pools for warm starts; it shares ``counters`` (its solves are
        # this engine's work too).
        self.hints = hints
        self._models: dict[tuple[bool, int], ComposeModel] = {}

    def model(self, *, max_types: int, identical: bool) -> ComposeModel:
        key = (identical, 1 if identical else max_types)
        if key not in self._models:
            self._models[key] = ComposeModel(self.problem, max_types=max_types, identical=identical)
        return self._models[key]

    def _hint_at(self, max_types: int, identical: bool):
        if self.hints is None:
            return None

        def hint_at(cap: int) -> Choice | None:
            return _choice(self.hints.solve_at(cap, max_types=max_types, identical=identical))

        return hint_at

    def solve_at(
        self, cap: int, *, max_types: int, identical: bool, previous: SweepPoint | None = None
    ) -> SweepPoint | None:
        """The best deployment with TPOT level <= cap (None if there is none)."""
        if cap < 0:
            return None
        model = self.model(max_types=max_types, identical=identical)
        choice = model.solve(
            cap,
            self.settings,
            self.counters,
            hint=_choice(previous),
            hint_at=self._hint_at(max_types, identical),
        )
        optimal = model.proven
        if choice is None and not optimal:
            raise cpsat.stopped_early(self.settings, cap)
        if choice is None:
            return None
        return SweepPoint(
            cap=cap, rows=choice.rows, packing=choice.packing, status="OPTIMAL" if optimal else "FEASIBLE"
        )
