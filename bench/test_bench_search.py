"""Search speed per GPU budget: agg + disagg, identical + packed, full Pareto sweep, warm.

Run:  pytest bench/test_bench_search.py --benchmark-enable
Tables are synthetic but sized like real ones (agg ~7.7k, prefill 64, decode ~1.9k options before
pruning; ``tests.search.synthetic``). Deterministic counters go to ``extra_info``. Both
composition engines ("menu", "cpsat": ``SolverSettings.composition``) run in one benchmark group
per budget, so the report shows their ratio; the cpsat engine runs 3 rounds (seconds each).
"""

from __future__ import annotations

import numpy as np
import pytest
from tests.search import synthetic

from servopt.search.options import ReplicaSpec, Sla
from servopt.search.settings import SolverSettings
from servopt.search.solve import solve

# The peer's default replica sizes for disagg: 1, 2, 4, then multiples of 8 up to 128.
REPLICA = ReplicaSpec(num_gpu_per_replica=(1, 2, 4, *range(8, 129, 8)), max_gpu_per_replica=128)
SLA = Sla(ttft_ms=2000.0, tpot_ms=30.0)


@pytest.fixture(scope="module")
def tables():
    rng = np.random.default_rng(0)
    return dict(
        agg=synthetic.agg_options(rng, layouts_per_size=16),
        prefill=synthetic.prefill_options(rng, layouts_per_size=4, max_batch=4),
        decode=synthetic.decode_options(rng, layouts_per_size=8),
    )


COMPOSITIONS = ["menu", "cpsat"]
CPSAT_ROUNDS = 3


def _run(tables, total_gpus, packed_frontier=False, composition="menu"):
    return solve(
        **tables,
        sla=SLA,
        total_gpus=total_gpus,
        tokens_per_request=1000,
        replica=REPLICA,
        packed_frontier=packed_frontier,
        settings=SolverSettings(composition=composition),
    )


def _measure(benchmark, composition, *args):
    if composition == "cpsat":
        return benchmark.pedantic(_run, args=(*args, composition), rounds=CPSAT_ROUNDS, iterations=1)
    return benchmark(_run, *args, composition)


def _record(benchmark, result):
    for mode in (result.agg, result.disagg):
        c = mode.counters
        benchmark.extra_info[mode.mode] = {
            "options_in": c.options_in,
            "options_kept": c.options_kept,
            "replica_rows": c.replica_rows,
            "solves": c.solves,
            "frontier_points": c.frontier_points,
            "deterministic_time": round(c.deterministic_time, 6),
            "identical_tokens_per_s_per_gpu": round(mode.identical.tokens_per_s_per_gpu, 3),
            "packed_gain": round(mode.packed_gain, 5),
            "all_optimal": c.all_optimal,
        }


def _same_answers(a, b):
    """Both engines: equal integer objectives, TPOT and GPUs, identical and packed, and frontiers."""
    for mode in ("agg", "disagg"):
        x, y = getattr(a, mode), getattr(b, mode)
        for kind in ("identical", "packed"):
            dx, dy = getattr(x, kind), getattr(y, kind)
            assert (dx.value_units, dx.tpot_ms, dx.gpus_used) == (dy.value_units, dy.tpot_ms, dy.gpus_used)
        for front in ("frontier", "packed_frontier"):
            fx, fy = getattr(x, front) or (), getattr(y, front) or ()
            assert [(p.tpot_ms, p.deployment.value_units) for p in fx] == [
                (p.tpot_ms, p.deployment.value_units) for p in fy
            ]


@pytest.mark.parametrize("composition", COMPOSITIONS)
@pytest.mark.parametrize("total_gpus", [8, 512, 4096, 16384])
def test_bench_search(benchmark, tables, total_gpus, composition):
    benchmark.group = f"search {total_gpus} GPUs"
    menu = _run(tables, total_gpus)  # warm: numba kernels compiled/loaded, ortools imported
    result = _measure(benchmark, composition, tables, total_gpus, False)
    _record(benchmark, result)
    assert result.agg.counters.all_optimal and result.disagg.counters.all_optimal
    _same_answers(result, menu)


@pytest.mark.parametrize("composition", COMPOSITIONS)
@pytest.mark.parametrize("total_gpus", [512, 16384])
def test_bench_search_with_packed_frontier(benchmark, tables, total_gpus, composition):
    benchmark.group = f"search {total_gpus} GPUs, packed frontier"
    menu = _run(tables, total_gpus, packed_frontier=True)
    result = _measure(benchmark, composition, tables, total_gpus, True)
    _record(benchmark, result)
    assert result.agg.counters.all_optimal and result.disagg.counters.all_optimal
    _same_answers(result, menu)
