"""Search entry points: answers, the 504-of-512 example, infeasibility, determinism, counters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.search import synthetic

from servopt.errors import InfeasibleError, ServoptError
from servopt.search.conventions import Conventions
from servopt.search.options import ReplicaSpec, Sla, WorkerOptions
from servopt.search.settings import SolverSettings
from servopt.search.solve import solve, solve_agg, solve_disagg

PEER_REPLICA_SIZES = (1, 2, 4, *range(8, 129, 8))


def _one_prefill_one_decode():
    prefill = WorkerOptions.from_arrays(gpus=[2], rate_per_s=[4.0], ttft_ms=[200.0], row=[7])
    decode = WorkerOptions.from_arrays(gpus=[4], rate_per_s=[3.0], tpot_ms=[20.0], concurrency=[64], row=[9])
    return prefill, decode


def test_disagg_replica_matches_the_peer_arithmetic():
    prefill, decode = _one_prefill_one_decode()
    res = solve_disagg(
        prefill,
        decode,
        sla=Sla(1000, 50),
        total_gpus=16,
        tokens_per_request=1000,
        replica=ReplicaSpec(max_prefill_worker=4, max_decode_worker=4),
        max_replica_types=1,
    )
    dep = res.identical
    (g,) = dep.groups
    # Best per replica over x, y <= 4 within 16 GPUs: rates 0.9*4x = 3.6x and 0.92*3y = 2.76y.
    best = max(
        (min(3.6 * x, 2.76 * y) * (16 // (2 * x + 4 * y)), -(2 * x + 4 * y) * (16 // (2 * x + 4 * y)), x, y)
        for x in range(1, 5)
        for y in range(1, 5)
        if 2 * x + 4 * y <= 16
    )
    assert (g.prefill_workers, g.decode_workers) == best[2:]
    assert g.count == 16 // g.gpus
    assert g.rate_per_s == pytest.approx(min(3.6 * g.prefill_workers, 2.76 * g.decode_workers))
    assert g.ttft_ms == pytest.approx(1.8 * 200.0) and g.tpot_ms == 20.0
    assert (g.prefill_row, g.decode_row) == (7, 9) and g.concurrency == 64 * g.decode_workers
    assert dep.tokens_per_s_per_gpu == pytest.approx(g.count * g.rate_per_s * 1000 / 16)
    assert dep.tokens_per_s_per_user == pytest.approx(50.0)


def test_conventions_are_overridable():
    prefill, decode = _one_prefill_one_decode()
    kw = dict(
        sla=Sla(1000, 50),
        total_gpus=6,
        tokens_per_request=1,
        replica=ReplicaSpec(max_prefill_worker=1, max_decode_worker=1),
    )
    base = solve_disagg(prefill, decode, **kw).identical
    strict = solve_disagg(prefill, decode, conventions=Conventions(1.0, 1.0, 1.0), **kw).identical
    assert base.groups[0].rate_per_s == pytest.approx(min(3.6, 2.76))
    assert strict.groups[0].rate_per_s == pytest.approx(3.0) and strict.ttft_ms == 200.0


def test_packed_uses_the_idle_gpus():
    """The peer's 512-GPU case: 504 GPUs in identical 24-GPU replicas, 8 idle; packing uses them."""
    prefill = WorkerOptions.from_arrays(gpus=[8], rate_per_s=[10.0], ttft_ms=[100.0])
    decode = WorkerOptions.from_arrays(gpus=[8], rate_per_s=[6.0], tpot_ms=[20.0])
    replica = ReplicaSpec(num_gpu_per_replica=PEER_REPLICA_SIZES, max_prefill_worker=1, max_decode_worker=2)
    res = solve_disagg(prefill, decode, sla=Sla(), total_gpus=512, tokens_per_request=1000, replica=replica)
    # 1P2D = 24 GPUs at min(9, 11.04) = 9 req/s beats 1P1D = 16 GPUs at 5.52: 21 x 24 = 504 GPUs.
    assert res.identical.groups[0].gpus == 24 and res.identical.gpus_used == 504
    assert res.identical.rate_per_s == pytest.approx(21 * 9.0)
    # Packed: 20 x 24 + 2 x 16 = 512 GPUs, 180 + 11.04 req/s.
    assert res.packed.gpus_used == 512 and sorted(g.gpus for g in res.packed.groups) == [16, 24]
    assert res.packed.rate_per_s == pytest.approx(191.04)
    assert res.packed.tokens_per_s > res.identical.tokens_per_s
    assert res.packed_gain == pytest.approx(res.packed.tokens_per_s / res.identical.tokens_per_s - 1)


def test_frontier_is_pareto_and_contains_the_answer():
    rng = np.random.default_rng(3)
    prefill = synthetic.prefill_options(rng, layouts_per_size=2)
    decode = synthetic.decode_options(rng, layouts_per_size=2)
    replica = ReplicaSpec(num_gpu_per_replica=PEER_REPLICA_SIZES, max_gpu_per_replica=128)
    res = solve_disagg(
        prefill, decode, sla=Sla(2000, 30), total_gpus=64, tokens_per_request=1000, replica=replica
    )
    tpots = [p.tpot_ms for p in res.frontier]
    values = [p.deployment.value_units for p in res.frontier]
    assert len(res.frontier) > 3
    assert tpots == sorted(tpots, reverse=True) and len(set(tpots)) == len(tpots)
    assert values == sorted(values, reverse=True) and len(set(values)) == len(values)
    answer = next(p.deployment for p in res.frontier if p.tpot_ms <= 30)
    assert answer == res.identical
    assert res.identical.tpot_ms <= 30 and res.identical.ttft_ms <= 2000
    assert res.counters.frontier_points == len(res.frontier)


@pytest.mark.parametrize("mode", ["agg", "disagg"])
def test_same_input_same_output(mode):
    def run():
        rng = np.random.default_rng(11)
        if mode == "agg":
            return solve_agg(
                synthetic.agg_options(rng, layouts_per_size=2),
                sla=Sla(3000, 40),
                total_gpus=512,
                tokens_per_request=1000,
            )
        return solve_disagg(
            synthetic.prefill_options(rng),
            synthetic.decode_options(rng, layouts_per_size=2),
            sla=Sla(2000, 30),
            total_gpus=512,
            tokens_per_request=1000,
            replica=ReplicaSpec(num_gpu_per_replica=PEER_REPLICA_SIZES),
        )

    a, b = run(), run()
    assert a.identical == b.identical and a.packed == b.packed and a.frontier == b.frontier
    assert a.counters == b.counters


def test_deterministic_counters_and_scale():
    """Counters a regression can trip: pruning sizes, solves, CP-SAT deterministic time (1 worker).

    Budgets 8..16384 GPUs solve the same-sized models (sizes are capped per replica), so the work
    stays flat; the recorded figures are from the commit that added this test.
    """
    rng = np.random.default_rng(5)
    prefill = synthetic.prefill_options(rng, layouts_per_size=4, max_batch=4)
    decode = synthetic.decode_options(rng, layouts_per_size=8)
    replica = ReplicaSpec(num_gpu_per_replica=PEER_REPLICA_SIZES, max_gpu_per_replica=128)
    counters = {}
    for G in (8, 512, 4096, 16384):
        res = solve_disagg(
            prefill, decode, sla=Sla(2000, 30), total_gpus=G, tokens_per_request=1000, replica=replica
        )
        counters[G] = res.counters
        assert res.counters.all_optimal
        assert res.counters.options_in == {"prefill": 64, "decode": len(decode)}
        assert res.counters.options_kept["prefill"] <= 4
        assert res.counters.options_kept["decode"] < len(decode) / 3
    for G, (solves, det_time) in RECORDED.items():
        assert counters[G].solves <= solves + 2
        assert counters[G].deterministic_time <= 1.5 * det_time + 1e-4
        assert counters[G].solves <= counters[G].frontier_points + 2  # one solve per frontier point


# (solves, CP-SAT deterministic_time) per budget, recorded with num_workers=1 (ortools 9.15).
RECORDED = {8: (41, 2.3e-5), 512: (49, 5.8e-4), 4096: (57, 7.7e-4), 16384: (56, 6.3e-4)}


# --- infeasible targets: InfeasibleError (exit 1) with the binding constraint -------------------------


def _agg():
    return WorkerOptions.from_arrays(
        gpus=[2, 4, 8], rate_per_s=[1.0, 2.0, 4.0], ttft_ms=[900.0, 500.0, 300.0], tpot_ms=[40.0, 25.0, 15.0]
    )


@pytest.mark.parametrize(
    ("kw", "field", "closest"),
    [
        (dict(sla=Sla(1000, 50), total_gpus=1), "total_gpus", "smallest aggregated worker (2 GPUs)"),
        (dict(sla=Sla(200, 50), total_gpus=8), "ttft", "closest achievable TTFT 300 ms"),
        (dict(sla=Sla(600, 20), total_gpus=4), "tpot", "closest achievable TPOT 25 ms"),
    ],
)
def test_agg_infeasible(kw, field, closest):
    with pytest.raises(InfeasibleError) as err:
        solve_agg(_agg(), tokens_per_request=10, **kw)
    assert err.value.field == field and err.value.exit_code == 1
    assert closest in str(err.value)


@pytest.mark.parametrize(
    ("kw", "field", "text"),
    [
        (dict(sla=Sla(), total_gpus=5), "total_gpus", "smallest disaggregated replica"),
        (
            dict(sla=Sla(), total_gpus=64, replica=ReplicaSpec(max_gpu_per_replica=4)),
            "max_gpu_per_replica",
            "= 6 GPUs",
        ),
        (
            dict(sla=Sla(), total_gpus=64, replica=ReplicaSpec(num_gpu_per_replica=(7, 9))),
            "num_gpu_per_replica",
            "allowed size",
        ),
        (dict(sla=Sla(300, 50), total_gpus=64), "ttft", "closest achievable TTFT 360 ms"),
        (dict(sla=Sla(1000, 10), total_gpus=64), "tpot", "closest achievable TPOT 20 ms"),
    ],
)
def test_disagg_infeasible(kw, field, text):
    prefill, decode = _one_prefill_one_decode()
    with pytest.raises(InfeasibleError) as err:
        solve_disagg(prefill, decode, tokens_per_request=10, **kw)
    assert err.value.field == field and err.value.exit_code == 1
    assert text in str(err.value)


def test_disagg_pairing_infeasible():
    prefill, decode = _one_prefill_one_decode()
    prefill = WorkerOptions.from_arrays(gpus=[2], rate_per_s=[4.0], ttft_ms=[200.0], pair_key=[2])
    decode = WorkerOptions.from_arrays(gpus=[4], rate_per_s=[3.0], tpot_ms=[20.0], pair_key=[4])
    with pytest.raises(InfeasibleError, match="pair_key"):
        solve_disagg(prefill, decode, sla=Sla(), total_gpus=64, tokens_per_request=10)


def test_solve_both_modes():
    prefill, decode = _one_prefill_one_decode()
    res = solve(
        agg=_agg(), prefill=prefill, decode=decode, sla=Sla(1000, 30), total_gpus=16, tokens_per_request=100
    )
    assert res.agg is not None and res.disagg is not None and not res.infeasible
    assert res.best in (res.agg, res.disagg)
    assert res.best.identical.tokens_per_s_per_gpu == max(
        res.agg.identical.tokens_per_s_per_gpu, res.disagg.identical.tokens_per_s_per_gpu
    )
    # TPOT 15 ms: only the 8-GPU agg worker meets it; disagg is reported infeasible, not raised.
    res = solve(
        agg=_agg(), prefill=prefill, decode=decode, sla=Sla(1000, 15), total_gpus=16, tokens_per_request=100
    )
    assert res.disagg is None and "tpot" in res.infeasible["disagg"] and res.best is res.agg
    with pytest.raises(InfeasibleError) as err:
        solve(
            agg=_agg(),
            prefill=prefill,
            decode=decode,
            sla=Sla(1000, 5),
            total_gpus=16,
            tokens_per_request=100,
        )
    assert "agg" in str(err.value) and "disagg" in str(err.value)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        (dict(total_gpus=0), "total_gpus"),
        (dict(tokens_per_request=0), "tokens_per_request"),
        (dict(tokens_per_request=math.nan), "tokens_per_request"),
        (dict(max_replica_types=0), "max_replica_types"),
    ],
)
def test_bad_arguments(kw, field):
    args = dict(sla=Sla(), total_gpus=8, tokens_per_request=10) | kw
    with pytest.raises(ServoptError) as err:
        solve_agg(_agg(), **args)
    assert err.value.field == field
    with pytest.raises(ServoptError, match="options"):
        solve(sla=Sla(), total_gpus=8, tokens_per_request=1)


def test_frontier_off_still_answers():
    prefill, decode = _one_prefill_one_decode()
    on = solve_disagg(prefill, decode, sla=Sla(1000, 30), total_gpus=32, tokens_per_request=1)
    off = solve_disagg(
        prefill, decode, sla=Sla(1000, 30), total_gpus=32, tokens_per_request=1, frontier=False
    )
    assert off.frontier == () and off.identical == on.identical and off.packed == on.packed


@pytest.mark.parametrize("mode", ["agg", "disagg"])
def test_stopped_before_any_deployment_is_not_called_infeasible(mode):
    # Too little work allowed for CP-SAT to find a first deployment: the menu engine says so, as
    # the cpsat engine does, instead of diagnosing an infeasible target with a wrong reason.
    rng = np.random.default_rng(5)
    tables = (
        {"agg": synthetic.agg_options(rng, layouts_per_size=2)}
        if mode == "agg"
        else {
            "prefill": synthetic.prefill_options(rng, layouts_per_size=2, max_batch=2),
            "decode": synthetic.decode_options(rng, layouts_per_size=1),
        }
    )
    tiny = SolverSettings(params="max_deterministic_time: 0.000000001")
    with pytest.raises(ServoptError) as err:
        solve(**tables, sla=Sla(2000, 30), total_gpus=256, tokens_per_request=1000, settings=tiny)
    assert err.value.field == "max_deterministic_time" and not isinstance(err.value, InfeasibleError)
    assert "composition 'menu'" in str(err.value)
