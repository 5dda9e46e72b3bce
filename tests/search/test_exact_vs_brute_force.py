"""Optimality: on random small instances CP-SAT's answers and frontiers equal brute force exactly.

Random candidate tables (few distinct values, so ties are common), worker caps, replica GPU lists,
pool caps, budgets and SLAs. Compared: the identical and packed optimum (integer objective, TPOT,
GPUs used), the identical frontier and the packed frontier, and infeasibility.
"""

from __future__ import annotations

import contextlib
import math
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from servopt.errors import InfeasibleError
from servopt.search import xpyd_model
from servopt.search.enumerate import brute_force_agg, brute_force_disagg
from servopt.search.options import ReplicaSpec, Sla, WorkerOptions
from servopt.search.solve import solve_agg, solve_disagg

GPUS = st.sampled_from([1, 2, 3, 4, 8])
RATE = st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 7.5])
LATENCY = st.sampled_from([5.0, 10.0, 20.0, 30.0, 50.0, 80.0])
TTFT = st.sampled_from([50.0, 100.0, 200.0, 400.0])
# Mostly feasible targets; the tight ones (150 ms TTFT, 5 ms TPOT) exercise infeasibility.
SLA_TTFT = st.sampled_from([150.0, 400.0, 1000.0, 2000.0, math.inf, math.inf, math.inf])
SLA_TPOT = st.sampled_from([5.0, 15.0, 30.0, 60.0, math.inf, math.inf, math.inf])
DISAGG_TTFT = st.sampled_from([150.0, 400.0, 1000.0, math.inf, math.inf, math.inf, math.inf, math.inf])
# Mostly "everything pairs" (0); sometimes SGLang-like TP keys with wildcards (-1).
PAIR_KEY = st.sampled_from([0, 0, 0, 0, -1, 1, 2])


@st.composite
def tables(draw, n_max, ttft=False, tpot=False, keys=st.just(0), gpus=GPUS, rates=RATE):
    n = draw(st.integers(1, n_max))
    return WorkerOptions.from_arrays(
        pair_key=[draw(keys) for _ in range(n)],
        gpus=[draw(gpus) for _ in range(n)],
        rate_per_s=[draw(rates) for _ in range(n)],
        ttft_ms=[draw(TTFT) for _ in range(n)] if ttft else None,
        tpot_ms=[draw(LATENCY) for _ in range(n)] if tpot else None,
        concurrency=[draw(st.integers(1, 64)) for _ in range(n)],
    )


@st.composite
def replica_specs(draw):
    sizes = draw(st.one_of(st.none(), st.none(), st.lists(st.integers(2, 16), min_size=3, max_size=8)))
    return ReplicaSpec(
        num_gpu_per_replica=tuple(sizes) if sizes else None,
        max_gpu_per_replica=draw(st.sampled_from([0, 0, 0, 6, 12, 16])),
        max_prefill_worker=draw(st.integers(1, 4)),
        max_decode_worker=draw(st.integers(1, 4)),
        max_prefill_gpus=draw(st.sampled_from([0, 0, 0, 2, 3, 4, 8])),
        max_decode_gpus=draw(st.sampled_from([0, 0, 0, 2, 3, 4, 8])),
    )


def _key(dep):
    return (dep.value_units, dep.tpot_ms, dep.gpus_used)


def _front(points):
    return tuple((p.tpot_ms, p.deployment.value_units) for p in points)


def _compare(run, oracle, two_stage):
    """``two_stage`` forces the tie-break by a second solve instead of the folded objective."""
    patch = mock.patch.object(xpyd_model, "MAX_OBJECTIVE_UNITS", 0) if two_stage else contextlib.nullcontext()
    if oracle.identical is None:
        assert oracle.packed is None
        with patch, pytest.raises(InfeasibleError) as err:
            run()
        event(f"infeasible: {err.value.field}")
        return
    event(f"frontier points: {min(len(oracle.frontier), 3)}+")
    with patch:
        result = run()
    assert _key(result.identical) == (
        oracle.identical.value_units,
        oracle.identical.tpot_ms,
        oracle.identical.gpus_used,
    )
    assert _key(result.packed) == (oracle.packed.value_units, oracle.packed.tpot_ms, oracle.packed.gpus_used)
    assert _front(result.frontier) == oracle.frontier
    assert _front(result.packed_frontier) == oracle.packed_frontier
    assert result.packed.value_units >= result.identical.value_units
    assert result.counters.all_optimal


PROPERTY = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY
@given(
    agg=tables(8, ttft=True, tpot=True),
    total_gpus=st.integers(1, 40),
    max_types=st.integers(1, 3),
    ttft=SLA_TTFT,
    tpot=SLA_TPOT,
    two_stage=st.booleans(),
)
def test_agg_equals_brute_force(agg, total_gpus, max_types, ttft, tpot, two_stage):
    sla = Sla(ttft, tpot)
    oracle = brute_force_agg(agg, sla=sla, total_gpus=total_gpus, max_types=max_types)
    _compare(
        lambda: solve_agg(
            agg,
            sla=sla,
            total_gpus=total_gpus,
            tokens_per_request=100,
            max_replica_types=max_types,
            packed_frontier=True,
        ),
        oracle,
        two_stage,
    )


@settings(PROPERTY, max_examples=200)
@given(
    # Prefill faster than decode per worker (as in practice), so decode often binds.
    prefill=tables(4, ttft=True, keys=PAIR_KEY, rates=st.sampled_from([1.0, 2.0, 4.0, 8.0, 15.0])),
    # Few decode GPU counts, so classes hold chains of several TPOT levels.
    decode=tables(8, tpot=True, keys=PAIR_KEY, gpus=st.sampled_from([1, 2, 2, 4])),
    replica=replica_specs(),
    total_gpus=st.integers(2, 40),
    max_types=st.integers(1, 2),
    ttft=DISAGG_TTFT,
    tpot=SLA_TPOT,
    two_stage=st.booleans(),
)
def test_disagg_equals_brute_force(prefill, decode, replica, total_gpus, max_types, ttft, tpot, two_stage):
    sla = Sla(ttft, tpot)
    oracle = brute_force_disagg(
        prefill, decode, sla=sla, total_gpus=total_gpus, replica=replica, max_types=max_types
    )
    _compare(
        lambda: solve_disagg(
            prefill,
            decode,
            sla=sla,
            total_gpus=total_gpus,
            tokens_per_request=100,
            replica=replica,
            max_replica_types=max_types,
            packed_frontier=True,
        ),
        oracle,
        two_stage,
    )
