"""Search entry points: agg and disagg, identical and packed deployments, the Pareto frontier.

Flow per mode: prune the option tables exactly (``prune``), build the replica menu (``replicas``),
sweep TPOT caps with CP-SAT (``sweep``), turn the integer solutions into float deployments and
re-check each one (``verify``). Per cap, the "menu" engine packs the menu's best replica per size
(``xpyd_model``); the "cpsat" engine (``SolverSettings.composition``) composes the replicas from
the menu's pruned pools in one model (``compose``, ``compose_model``). A mode with no feasible
deployment raises ``InfeasibleError`` naming the binding constraint (``infeasible``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Required, TypedDict, Unpack

import numpy as np

from servopt.errors import InfeasibleError, ServoptError
from servopt.search.conventions import DEFAULT_CONVENTIONS, Conventions
from servopt.search.encode import TpotLevels, check_headroom
from servopt.search.infeasible import diagnose_agg, diagnose_disagg
from servopt.search.options import ReplicaSpec, Sla, WorkerOptions
from servopt.search.prune import prune_agg, prune_decode, prune_prefill
from servopt.search.replicas import AggMenu, DisaggMenu
from servopt.search.result import (
    Counters,
    Deployment,
    FrontierPoint,
    ModeResult,
    ReplicaGroup,
    SearchResult,
)
from servopt.search.settings import SolverSettings
from servopt.search.sweep import Engine, MenuEngine, SweepPoint, sweep
from servopt.search.verify import verify_deployment

if TYPE_CHECKING:
    from servopt.search.compose_problem import ComposeProblem


def _compose_problems():
    """The cpsat engine's problem builders, imported only when that engine is asked for."""
    from servopt.search import compose_problem

    return compose_problem


# The peer packs nothing: it deploys one replica type. Two types already recover most of the idle
# budget (e.g. 504 of 512 GPUs -> 512) while keeping deployments simple to operate.
DEFAULT_MAX_REPLICA_TYPES = 2


class ModeArgs(TypedDict, total=False):
    """The keywords every mode's solve takes (defaults in ``_ModeSolver``), declared once."""

    sla: Required[Sla]
    total_gpus: Required[int]
    tokens_per_request: Required[float]
    max_replica_types: int
    settings: SolverSettings | None
    frontier: bool
    packed_frontier: bool


def _check_common(total_gpus: int, tokens_per_request: float, max_replica_types: int) -> None:
    if isinstance(total_gpus, bool) or not isinstance(total_gpus, int | np.integer) or total_gpus < 1:
        raise ServoptError("total_gpus", total_gpus, "must be a positive integer")
    if not (isinstance(tokens_per_request, numbers.Real) and math.isfinite(tokens_per_request)):
        raise ServoptError("tokens_per_request", tokens_per_request, "must be a finite number")
    if tokens_per_request <= 0:
        raise ServoptError("tokens_per_request", tokens_per_request, "must be > 0")
    if isinstance(max_replica_types, bool) or not isinstance(max_replica_types, int) or max_replica_types < 1:
        raise ServoptError("max_replica_types", max_replica_types, "must be an integer >= 1")


class _ModeSolver:
    """Shared sweep/packing/assembly logic; subclasses supply the menu and the group builder."""

    mode: str

    def __init__(
        self,
        *,
        sla: Sla,
        total_gpus: int,
        tokens_per_request: float,
        max_replica_types: int = DEFAULT_MAX_REPLICA_TYPES,
        settings: SolverSettings | None = None,
        frontier: bool = True,
        packed_frontier: bool = False,
    ):
        _check_common(total_gpus, tokens_per_request, max_replica_types)
        self.sla = sla
        self.total_gpus = int(total_gpus)
        self.tokens_per_request = float(tokens_per_request)
        self.max_types = max_replica_types
        self.settings = settings or SolverSettings()
        self.frontier = frontier
        self.packed_frontier = packed_frontier
        self.counters = Counters()

    def _engine(self, problem: Callable[[], ComposeProblem]) -> Engine:
        """The composition engine the settings ask for (``problem`` builds the "cpsat" input)."""
        if self.settings.composition == "cpsat":
            from servopt.search.compose import ComposeEngine  # the default menu engine never needs it

            # The menu engine's answers are its hints (the same counters: its solves are work too).
            menu = MenuEngine(
                self.menu, total_gpus=self.total_gpus, settings=self.settings, counters=self.counters
            )
            return ComposeEngine(problem(), settings=self.settings, counters=self.counters, hints=menu)
        return MenuEngine(
            self.menu, total_gpus=self.total_gpus, settings=self.settings, counters=self.counters
        )

    def _deployment(self, point: SweepPoint, kind: str) -> Deployment:
        rows, counts = point.rows, point.packing.counts
        groups = tuple(self._group(rows, r, int(counts[r])) for r in np.flatnonzero(counts))
        dep = Deployment(
            mode=self.mode,
            kind=kind,
            groups=groups,
            total_gpus=self.total_gpus,
            tokens_per_request=self.tokens_per_request,
            value_units=point.packing.value,
            status=point.status,
        )
        self._verify(
            dep, tpot_cap_ms=self.levels.ms(point.cap), max_types=1 if kind == "identical" else self.max_types
        )
        return dep

    def run(self) -> ModeResult:
        sla_cap = self.levels.cap(self.sla.tpot_ms)
        top = len(self.levels) - 1
        start = top if self.frontier else sla_cap
        stop = None if self.frontier else sla_cap
        points = sweep(self.engine, start, max_types=1, identical=True, stop_at_cap=stop)
        answer = next((p for p in points if p.packing.tpot_level <= sla_cap), None)
        if answer is None:
            self._raise_infeasible(sla_cap)
        if isinstance(self.engine, MenuEngine):  # the "cpsat" engine has no candidate replica list
            self.counters.replica_rows = len(self.menu.rows(sla_cap))
        packed_points = None
        if self.packed_frontier:
            packed_points = sweep(self.engine, top, max_types=self.max_types, identical=False)
            packed = next(p for p in packed_points if p.packing.tpot_level <= sla_cap)
        else:
            packed = self.engine.solve_at(sla_cap, max_types=self.max_types, identical=False, previous=answer)
        if packed is None:  # only if CP-SAT found nothing in its time limit: keep the peer's shape
            packed = answer
        frontier = (
            tuple(FrontierPoint(self._deployment(p, "identical")) for p in points) if self.frontier else ()
        )
        self.counters.frontier_points = len(frontier)
        # Every answer solved for (frontier points, the SLA's and the packed one) is proven optimal.
        solved = [*points, *(packed_points if packed_points is not None else [packed])]
        self.counters.all_optimal = all(p.status == "OPTIMAL" for p in solved)
        return ModeResult(
            mode=self.mode,
            identical=self._deployment(answer, "identical"),
            packed=self._deployment(packed, "packed"),
            frontier=frontier,
            packed_frontier=(
                tuple(FrontierPoint(self._deployment(p, "packed")) for p in packed_points)
                if packed_points is not None
                else None
            ),
            counters=self.counters,
        )


class _AggSolver(_ModeSolver):
    mode = "agg"

    def __init__(self, agg: WorkerOptions, **kw):
        super().__init__(**kw)
        self.agg = agg
        self.keep = prune_agg(agg, ttft_ms=self.sla.ttft_ms, max_gpus=self.total_gpus)
        pool = agg.take(self.keep)
        self.levels = TpotLevels(pool.tpot_ms)
        self.menu = AggMenu(pool, total_gpus=self.total_gpus, levels=self.levels)
        if len(pool):
            check_headroom(int(self.menu.units.max()), self.total_gpus, "agg.rate_per_s")
        self.engine = self._engine(
            lambda: _compose_problems().agg_problem(
                self.menu, levels=self.levels, sla=self.sla, total_gpus=self.total_gpus
            )
        )
        self.counters.options_in = {"agg": len(agg)}
        self.counters.options_kept = {"agg": len(pool)}
        self.counters.tpot_levels = len(self.levels)

    def _group(self, rows, r, count) -> ReplicaGroup:
        k = int(self.keep[rows.decode[r]])
        a = self.agg
        return ReplicaGroup(
            count=count,
            gpus=int(a.gpus[k]),
            rate_per_s=float(a.rate_per_s[k]),
            ttft_ms=float(a.ttft_ms[k]),
            tpot_ms=float(a.tpot_ms[k]),
            concurrency=float(a.concurrency[k]),
            agg_option=k,
            agg_row=int(a.row[k]),
        )

    def _verify(self, dep, *, tpot_cap_ms, max_types):
        verify_deployment(dep, sla=Sla(self.sla.ttft_ms, tpot_cap_ms), max_types=max_types, agg=self.agg)

    def _raise_infeasible(self, sla_cap: int):
        raise diagnose_agg(self.agg, sla=self.sla, total_gpus=self.total_gpus)


class _DisaggSolver(_ModeSolver):
    mode = "disagg"

    def __init__(self, prefill: WorkerOptions, decode: WorkerOptions, *, replica, conventions, **kw):
        super().__init__(**kw)
        self.prefill, self.decode = prefill, decode
        self.replica, self.conventions = replica, conventions
        limit = replica.size_limit(self.total_gpus)
        self.p_keep = prune_prefill(
            prefill, ttft_ms=self.sla.ttft_ms, ttft_factor=conventions.disagg_ttft_factor, max_gpus=limit
        )
        self.d_keep = prune_decode(decode, max_gpus=limit)
        d_pool = decode.take(self.d_keep)
        self.levels = TpotLevels(d_pool.tpot_ms)
        self.menu = DisaggMenu(
            prefill.take(self.p_keep),
            d_pool,
            replica=replica,
            total_gpus=self.total_gpus,
            levels=self.levels,
            conventions=conventions,
        )
        if self.p_keep.size and self.d_keep.size:
            most = max(
                int(self.menu.p_units.max()) * replica.max_prefill_worker,
                int(self.menu.d_units.max()) * replica.max_decode_worker,
            )
            check_headroom(most, self.total_gpus, "prefill/decode rate_per_s")
        self.engine = self._engine(
            lambda: _compose_problems().disagg_problem(
                self.menu,
                levels=self.levels,
                sla=self.sla,
                conventions=conventions,
                total_gpus=self.total_gpus,
            )
        )
        self.counters.options_in = {"prefill": len(prefill), "decode": len(decode)}
        self.counters.options_kept = {"prefill": int(self.p_keep.size), "decode": int(self.d_keep.size)}
        self.counters.tpot_levels = len(self.levels)

    def _group(self, rows, r, count) -> ReplicaGroup:
        c = self.conventions
        p, d = int(self.p_keep[rows.prefill[r]]), int(self.d_keep[rows.decode[r]])
        x, y = int(rows.x[r]), int(rows.y[r])
        P, D = self.prefill, self.decode
        rate = min(c.prefill_degradation * x * P.rate_per_s[p], c.decode_degradation * y * D.rate_per_s[d])
        return ReplicaGroup(
            count=count,
            gpus=x * int(P.gpus[p]) + y * int(D.gpus[d]),
            rate_per_s=float(rate),
            ttft_ms=float(c.disagg_ttft_factor * P.ttft_ms[p]),
            tpot_ms=float(D.tpot_ms[d]),
            concurrency=float(y * D.concurrency[d]),
            prefill_option=p,
            prefill_row=int(P.row[p]),
            prefill_workers=x,
            prefill_gpus=int(P.gpus[p]),
            decode_option=d,
            decode_row=int(D.row[d]),
            decode_workers=y,
            decode_gpus=int(D.gpus[d]),
        )

    def _verify(self, dep, *, tpot_cap_ms, max_types):
        verify_deployment(
            dep,
            sla=Sla(self.sla.ttft_ms, tpot_cap_ms),
            max_types=max_types,
            prefill=self.prefill,
            decode=self.decode,
            replica=self.replica,
            conventions=self.conventions,
        )

    def _raise_infeasible(self, sla_cap: int):
        raise diagnose_disagg(
            self.prefill,
            self.decode,
            sla=self.sla,
            total_gpus=self.total_gpus,
            replica=self.replica,
            conventions=self.conventions,
        )


def solve_agg(agg: WorkerOptions, **kw: Unpack[ModeArgs]) -> ModeResult:
    """Aggregated serving: one worker per replica. Raises InfeasibleError if nothing fits."""
    return _AggSolver(agg, **kw).run()


def solve_disagg(
    prefill: WorkerOptions,
    decode: WorkerOptions,
    *,
    replica: ReplicaSpec | None = None,
    conventions: Conventions = DEFAULT_CONVENTIONS,
    **kw: Unpack[ModeArgs],
) -> ModeResult:
    """Disaggregated xPyD serving. Raises InfeasibleError if nothing fits."""
    return _DisaggSolver(
        prefill, decode, replica=replica or ReplicaSpec(), conventions=conventions, **kw
    ).run()


def solve(
    *,
    agg: WorkerOptions | None = None,
    prefill: WorkerOptions | None = None,
    decode: WorkerOptions | None = None,
    replica: ReplicaSpec | None = None,
    conventions: Conventions = DEFAULT_CONVENTIONS,
    agg_tokens_per_request: float | None = None,
    **common: Unpack[ModeArgs],
) -> SearchResult:
    """Both modes that have option tables.

    ``rate_per_s * tokens_per_request`` is a worker's tokens/s; ``agg_tokens_per_request``
    (default: ``tokens_per_request``) serves agg tables counted differently (the peer's agg
    throughput counts osl - 1 tokens per request, its disagg throughput osl).

    Raises InfeasibleError only if every mode asked for is infeasible (the reasons of all of them
    in one message); otherwise an infeasible mode is listed in ``SearchResult.infeasible``.
    """
    if agg is None and (prefill is None or decode is None):
        raise ServoptError("options", None, "give agg options, or prefill and decode options, or all three")
    if (prefill is None) != (decode is None):
        raise ServoptError("options", "prefill" if decode is None else "decode", "disagg needs both pools")
    results: dict[str, ModeResult | None] = {"agg": None, "disagg": None}
    reasons: dict[str, InfeasibleError] = {}
    if agg is not None:
        try:
            # A falsy agg_tokens_per_request (None, 0) leaves tokens_per_request to agg too.
            agg_common = common | (
                {"tokens_per_request": agg_tokens_per_request} if agg_tokens_per_request else {}
            )
            results["agg"] = solve_agg(agg, **agg_common)
        except InfeasibleError as err:
            reasons["agg"] = err
    if prefill is not None and decode is not None:
        try:
            results["disagg"] = solve_disagg(
                prefill, decode, replica=replica, conventions=conventions, **common
            )
        except InfeasibleError as err:
            reasons["disagg"] = err
    if all(r is None for r in results.values()):
        if len(reasons) == 1:
            raise next(iter(reasons.values()))
        agg_err, disagg_err = reasons["agg"], reasons["disagg"]
        raise InfeasibleError(
            agg_err.field,
            agg_err.value,
            f"agg: {agg_err.message}; disagg: {disagg_err.field}: {disagg_err.message}",
        )
    return SearchResult(
        agg=results["agg"], disagg=results["disagg"], infeasible={k: str(v) for k, v in reasons.items()}
    )
