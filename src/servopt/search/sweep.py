"""The epsilon-constraint sweep over TPOT levels, one CP-SAT solve (plus tie-break) per point.

Start with no TPOT cap; solve; the tie-break makes the solution's TPOT level t* the lowest among
optimal deployments; record it; cap the TPOT strictly below t* (level t* - 1) and solve again,
warm-started from the last deployment; stop when no deployment is left. Each solve's value is
strictly below the previous one (a deployment as good at a lower TPOT would have been chosen by the
tie-break), so every recorded point is Pareto-optimal and every frontier point is recorded: for a
cap between two visited caps the best deployment is the one found at the cap above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from servopt.search import cpsat
from servopt.search.replicas import ReplicaRows, identical_candidates
from servopt.search.result import Counters
from servopt.search.settings import SolverSettings
from servopt.search.xpyd_model import Packing, XpydModel


class Menu(Protocol):
    def rows(self, cap: int) -> ReplicaRows: ...


@dataclass(frozen=True)
class SweepPoint:
    """One solved cap: the candidate rows and the chosen packing (counts per row)."""

    cap: int
    rows: ReplicaRows
    packing: Packing
    status: str


def _hint_from(previous: SweepPoint | None, rows: ReplicaRows) -> np.ndarray | None:
    """Carry the previous deployment's replica counts over to rows of the same sizes."""
    if previous is None:
        return None
    counts = np.zeros(len(rows), dtype=np.int64)
    used = previous.packing.counts > 0
    pos = np.searchsorted(rows.size, previous.rows.size[used])
    ok = (pos < len(rows)) & (rows.size[np.minimum(pos, len(rows) - 1)] == previous.rows.size[used])
    counts[pos[ok]] = previous.packing.counts[used][ok]
    return counts if counts.any() else None


def solve_at(
    menu: Menu,
    cap: int,
    *,
    total_gpus: int,
    max_types: int,
    identical: bool,
    settings: SolverSettings,
    counters: Counters,
    previous: SweepPoint | None = None,
) -> SweepPoint | None:
    """The best deployment with TPOT level <= cap (None if there is none)."""
    if cap < 0:
        return None
    rows = menu.rows(cap)
    if identical and len(rows):
        rows = rows.take(identical_candidates(rows, total_gpus))
    if len(rows) == 0:
        return None
    model = XpydModel(rows, total_gpus=total_gpus, max_types=max_types, identical=identical)
    hint = _hint_from(previous, rows)
    if hint is not None:
        model.hint(hint)
    best = model.solve(settings, counters)
    if best is None and model.status != "OPTIMAL":
        raise cpsat.stopped_early(settings, cap)
    if best is not None:
        best = model.tie_break(best, settings, counters)
    if best is None:
        return None
    return SweepPoint(cap=cap, rows=rows, packing=best, status=model.status)


class Engine(Protocol):
    """A composition engine: the best deployment at one TPOT cap (``MenuEngine``, ``ComposeEngine``)."""

    def solve_at(
        self, cap: int, *, max_types: int, identical: bool, previous: SweepPoint | None = None
    ) -> SweepPoint | None: ...


class MenuEngine:
    """The "menu" engine: the best replica per size by enumeration, CP-SAT packs (``solve_at``)."""

    def __init__(self, menu: Menu, *, total_gpus: int, settings: SolverSettings, counters: Counters):
        self.menu = menu
        self.total_gpus = total_gpus
        self.settings = settings
        self.counters = counters

    def solve_at(
        self, cap: int, *, max_types: int, identical: bool, previous: SweepPoint | None = None
    ) -> SweepPoint | None:
        return solve_at(
            self.menu,
            cap,
            total_gpus=self.total_gpus,
            max_types=max_types,
            identical=identical,
            settings=self.settings,
            counters=self.counters,
            previous=previous,
        )


def sweep(
    engine: Engine,
    top_cap: int,
    *,
    max_types: int,
    identical: bool,
    stop_at_cap: int | None = None,
) -> list[SweepPoint]:
    """Frontier points from ``top_cap`` down, TPOT descending.

    With ``stop_at_cap`` the sweep stops once a point at or below that cap is found (used when
    only the answer at the SLA is wanted and the frontier is off).
    """
    points: list[SweepPoint] = []
    cap, previous = top_cap, None
    while cap >= 0:
        point = engine.solve_at(cap, max_types=max_types, identical=identical, previous=previous)
        if point is None:
            break
        points.append(point)
        if stop_at_cap is not None and point.packing.tpot_level <= stop_at_cap:
            break
        previous = point
        cap = point.packing.tpot_level - 1
    return points
