"""Brute-force oracle: every replica and every deployment, no pruning, no solver.

For small instances it enumerates every (prefill option, x, decode option, y) replica (or every
agg worker) and every deployment of up to K distinct replicas with any counts, in numba kernels
(``tests/search/oracle_kernels.py``), and returns the exact optimum and Pareto frontier under the same
integer encoding (``encode``) and the same order (value desc, TPOT asc, GPUs used asc) as the
solver. It shares nothing else with the solver: its filters are restated here, not imported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tests.search.oracle_kernels import best_identical, best_packing, enumerate_replicas

from servopt.search.conventions import DEFAULT_CONVENTIONS, Conventions
from servopt.search.encode import encode_rates
from servopt.search.options import ReplicaSpec, Sla, WorkerOptions


@dataclass(frozen=True)
class OracleAnswer:
    value_units: int
    tpot_ms: float
    gpus_used: int


@dataclass(frozen=True)
class OracleResult:
    identical: OracleAnswer | None  # None: infeasible
    packed: OracleAnswer | None
    frontier: tuple[tuple[float, int], ...]  # (TPOT ms, value units), TPOT descending
    packed_frontier: tuple[tuple[float, int], ...]


@dataclass(frozen=True)
class _Replicas:
    size: np.ndarray
    units: np.ndarray
    level: np.ndarray
    tpot_values: np.ndarray  # level -> TPOT ms


def _answer(best: tuple, reps: _Replicas) -> OracleAnswer | None:
    value, tmax, gpus = best[0], best[1], best[2]
    if best[3] < 0:
        return None
    return OracleAnswer(int(value), float(reps.tpot_values[tmax]), int(gpus))


def _frontier(reps: _Replicas, solve_cap) -> tuple[tuple[float, int], ...]:
    """Every cap's optimum, then the non-dominated ones (lower TPOT, higher value)."""
    points = set()
    for cap in range(reps.tpot_values.size):
        best = solve_cap(cap)
        if best[3] >= 0:
            points.add((int(best[1]), int(best[0])))
    front, top = [], -1
    for level, value in sorted(points):
        if value > top:
            front.append((float(reps.tpot_values[level]), value))
            top = value
    return tuple(reversed(front))


def _result(reps: _Replicas, sla: Sla, total_gpus: int, max_types: int, frontier: bool) -> OracleResult:
    G = total_gpus
    sla_cap = int(np.searchsorted(reps.tpot_values, sla.tpot_ms, side="right")) - 1

    def ident(cap):
        return best_identical(reps.size, reps.units, reps.level, cap, G)

    def packed(cap):
        return best_packing(reps.size, reps.units, reps.level, cap, G, max_types)

    return OracleResult(
        identical=_answer(ident(sla_cap), reps),
        packed=_answer(packed(sla_cap), reps),
        frontier=_frontier(reps, ident) if frontier else (),
        packed_frontier=_frontier(reps, packed) if frontier else (),
    )


def brute_force_agg(
    agg: WorkerOptions, *, sla: Sla, total_gpus: int, max_types: int = 2, frontier: bool = True
) -> OracleResult:
    """Exact agg optimum, packing and frontier by enumeration (small instances only)."""
    tpot_values = np.unique(agg.tpot_ms)
    units = encode_rates(agg.rate_per_s)
    ok = (agg.ttft_ms <= sla.ttft_ms) & (agg.gpus <= total_gpus) & (units > 0)
    reps = _Replicas(
        size=agg.gpus[ok].astype(np.int64),
        units=units[ok],
        level=np.searchsorted(tpot_values, agg.tpot_ms[ok]).astype(np.int64),
        tpot_values=tpot_values,
    )
    return _result(reps, sla, total_gpus, max_types, frontier)


def brute_force_disagg(
    prefill: WorkerOptions,
    decode: WorkerOptions,
    *,
    sla: Sla,
    total_gpus: int,
    replica: ReplicaSpec | None = None,
    max_types: int = 2,
    conventions: Conventions = DEFAULT_CONVENTIONS,
    frontier: bool = True,
) -> OracleResult:
    """Exact disagg optimum, packing and frontier by enumeration (small instances only)."""
    replica = replica or ReplicaSpec()
    p_ok = conventions.disagg_ttft_factor * prefill.ttft_ms <= sla.ttft_ms
    tpot_values = np.unique(decode.tpot_ms)
    # Allowed sizes, restated from the problem: in the list (if any), <= the cap (if any), <= G.
    limit = total_gpus
    if replica.max_gpu_per_replica:
        limit = min(limit, replica.max_gpu_per_replica)
    allowed = np.zeros(limit + 1, dtype=np.bool_)
    for s in range(1, limit + 1):
        allowed[s] = not replica.num_gpu_per_replica or s in replica.num_gpu_per_replica
    size, units, level, *_ = enumerate_replicas(
        prefill.gpus[p_ok],
        encode_rates(prefill.rate_per_s[p_ok], conventions.prefill_degradation),
        prefill.pair_key[p_ok],
        decode.gpus,
        encode_rates(decode.rate_per_s, conventions.decode_degradation),
        np.searchsorted(tpot_values, decode.tpot_ms).astype(np.int64),
        decode.pair_key,
        replica.max_prefill_worker,
        replica.max_decode_worker,
        allowed,
        replica.max_prefill_gpus,
        replica.max_decode_gpus,
    )
    ok = units > 0
    reps = _Replicas(size=size[ok], units=units[ok], level=level[ok], tpot_values=tpot_values)
    return _result(reps, sla, total_gpus, max_types, frontier)
