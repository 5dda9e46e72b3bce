"""Random small search instances and the comparison against brute force, shared by the engines' tests.

Candidate tables use few distinct values, so ties are common; worker caps, replica GPU lists, pool
caps, budgets and SLAs are drawn too. Compared with the oracle: the identical and packed optimum
(integer objective, TPOT, GPUs used), the identical frontier and the packed frontier.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from servopt.search.options import ReplicaSpec, WorkerOptions
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
# Reproducible runs (the same instances every time); each test sets its own max_examples.
PROPERTY = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
# Any positive value: the comparisons are in integer rate units and ms, not tokens.
TOKENS_PER_REQUEST = 100


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


def deployment_key(dep):
    return (dep.value_units, dep.tpot_ms, dep.gpus_used)


def front(points):
    return tuple((p.tpot_ms, p.deployment.value_units) for p in points)


def assert_equals_oracle(result, oracle) -> None:
    """A mode result has the brute-force optima and both frontiers."""
    assert deployment_key(result.identical) == deployment_key(oracle.identical)
    assert deployment_key(result.packed) == deployment_key(oracle.packed)
    assert front(result.frontier) == oracle.frontier
    assert front(result.packed_frontier) == oracle.packed_frontier


def agg_runner(agg, *, sla, total_gpus, max_types):
    """``run(settings)``: solve_agg on the instance with its packed frontier."""

    def run(settings=None):
        return solve_agg(
            agg,
            sla=sla,
            total_gpus=total_gpus,
            tokens_per_request=TOKENS_PER_REQUEST,
            max_replica_types=max_types,
            packed_frontier=True,
            settings=settings,
        )

    return run


def disagg_runner(prefill, decode, *, sla, total_gpus, replica, max_types):
    """``run(settings)``: solve_disagg on the instance with its packed frontier."""

    def run(settings=None):
        return solve_disagg(
            prefill,
            decode,
            sla=sla,
            total_gpus=total_gpus,
            tokens_per_request=TOKENS_PER_REQUEST,
            replica=replica,
            max_replica_types=max_types,
            packed_frontier=True,
            settings=settings,
        )

    return run
