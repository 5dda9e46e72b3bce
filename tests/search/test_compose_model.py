"""The "cpsat" composition engine: equal to brute force and to the "menu" engine; one test per
constraint group of ``ComposeModel`` against plain enumeration; determinism and counters."""

from __future__ import annotations

import contextlib
from unittest import mock

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from tests.search import synthetic
from tests.search.enumerate import brute_force_agg, brute_force_disagg

from servopt.errors import InfeasibleError, ServoptError
from servopt.search import compose, compose_model
from servopt.search.compose_model import ComposeModel
from servopt.search.compose_problem import ComposeProblem
from servopt.search.options import ReplicaSpec, Sla, WorkerOptions
from servopt.search.result import Counters
from servopt.search.settings import SolverSettings
from servopt.search.solve import solve, solve_disagg
from servopt_kernels.xpyd_enum import best_identical, best_packing, enumerate_replicas

from .brute_cases import (
    DISAGG_TTFT,
    PAIR_KEY,
    PROPERTY,
    SLA_TPOT,
    SLA_TTFT,
    agg_runner,
    assert_equals_oracle,
    deployment_key,
    disagg_runner,
    front,
    replica_specs,
    tables,
)

CPSAT = SolverSettings(composition="cpsat")
MENU = SolverSettings()
PEER_REPLICA_SIZES = (1, 2, 4, *range(8, 129, 8))


# --- the whole engine: brute force and the menu engine on random small instances -----------------


def _check(run, oracle, two_stage, hints):
    """The cpsat engine equals the oracle (brute force) and the menu engine, or all are infeasible.

    ``two_stage`` forces the GPU tie-break into a second solve; without ``hints`` the model gets
    no warm start from the menu engine, so it finds every answer on its own.
    """
    patch = contextlib.ExitStack()
    if two_stage:
        patch.enter_context(mock.patch.object(compose_model, "FOLD_LIMIT", 0))
    if not hints:
        patch.enter_context(mock.patch.object(compose.ComposeEngine, "_hint_at", lambda self, *args: None))
    if oracle.identical is None:
        with patch, pytest.raises(InfeasibleError) as cp_err:
            run(CPSAT)
        with pytest.raises(InfeasibleError) as menu_err:
            run(MENU)
        assert str(cp_err.value) == str(menu_err.value)
        event(f"infeasible: {cp_err.value.field}")
        return
    with patch:
        cp = run(CPSAT)
    menu = run(MENU)
    assert cp.counters.all_optimal
    for res in (cp, menu):
        assert_equals_oracle(res, oracle)
    event(f"packed gain: {cp.packed.value_units > cp.identical.value_units}")


@settings(PROPERTY, max_examples=400)
@given(
    agg=tables(6, ttft=True, tpot=True),
    total_gpus=st.integers(1, 40),
    max_types=st.integers(1, 3),
    ttft=SLA_TTFT,
    tpot=SLA_TPOT,
    two_stage=st.booleans(),
    hints=st.booleans(),
)
def test_agg_equals_brute_force_and_menu(agg, total_gpus, max_types, ttft, tpot, two_stage, hints):
    sla = Sla(ttft, tpot)
    oracle = brute_force_agg(agg, sla=sla, total_gpus=total_gpus, max_types=max_types)
    _check(agg_runner(agg, sla=sla, total_gpus=total_gpus, max_types=max_types), oracle, two_stage, hints)


@settings(PROPERTY, max_examples=700)
@given(
    prefill=tables(3, ttft=True, keys=PAIR_KEY, rates=st.sampled_from([1.0, 2.0, 4.0, 8.0, 15.0])),
    decode=tables(6, tpot=True, keys=PAIR_KEY, gpus=st.sampled_from([1, 2, 2, 4])),
    replica=replica_specs(),
    total_gpus=st.integers(2, 40),
    max_types=st.integers(1, 2),
    ttft=DISAGG_TTFT,
    tpot=SLA_TPOT,
    two_stage=st.booleans(),
    hints=st.booleans(),
)
def test_disagg_equals_brute_force_and_menu(
    prefill, decode, replica, total_gpus, max_types, ttft, tpot, two_stage, hints
):
    sla = Sla(ttft, tpot)
    oracle = brute_force_disagg(
        prefill, decode, sla=sla, total_gpus=total_gpus, replica=replica, max_types=max_types
    )
    run = disagg_runner(prefill, decode, sla=sla, total_gpus=total_gpus, replica=replica, max_types=max_types)
    _check(run, oracle, two_stage, hints)


@settings(PROPERTY, max_examples=300)
@given(
    prefill=tables(3, ttft=True, rates=st.sampled_from([1.0, 2.0, 4.0, 8.0, 15.0])),
    decode=tables(5, tpot=True, gpus=st.sampled_from([1, 2, 2, 4])),
    sizes=st.one_of(st.none(), st.lists(st.integers(3, 24), min_size=2, max_size=6)),
    workers=st.integers(2, 4),
    total_gpus=st.integers(20, 64),
    two_stage=st.booleans(),
    hints=st.booleans(),
)
def test_disagg_packing_equals_brute_force_and_menu(
    prefill, decode, sizes, workers, total_gpus, two_stage, hints
):
    """Budgets that leave room for a second replica type, so packing is exercised often."""
    replica = ReplicaSpec(
        num_gpu_per_replica=tuple(sizes) if sizes else None,
        max_prefill_worker=workers,
        max_decode_worker=workers,
    )
    sla = Sla()
    oracle = brute_force_disagg(prefill, decode, sla=sla, total_gpus=total_gpus, replica=replica, max_types=2)
    run = disagg_runner(prefill, decode, sla=sla, total_gpus=total_gpus, replica=replica, max_types=2)
    _check(run, oracle, two_stage, hints)


# --- one constraint group at a time, on ComposeModel, against plain enumeration --------------------


def _problem(*, p_gpus, p_units, d_gpus, d_units, d_level=None, G, sizes=None, **kw) -> ComposeProblem:
    d_gpus = np.asarray(d_gpus, dtype=np.int64)
    p_gpus = np.asarray(p_gpus, dtype=np.int64)
    d_level = (
        np.zeros(d_gpus.size, dtype=np.int64) if d_level is None else np.asarray(d_level, dtype=np.int64)
    )
    fields = dict(
        d_key=np.zeros(d_gpus.size, dtype=np.int64),
        d_ttft_ok=np.ones(d_gpus.size, dtype=np.bool_),
        p_key=np.zeros(p_gpus.size, dtype=np.int64),
        p_ttft_ok=np.ones(p_gpus.size, dtype=np.bool_),
        max_x=4,
        max_y=4,
    )
    fields.update(kw)
    return ComposeProblem(
        d_gpus=d_gpus,
        d_units=np.asarray(d_units, dtype=np.int64),
        d_level=d_level,
        p_gpus=p_gpus,
        p_units=np.asarray(p_units, dtype=np.int64),
        n_levels=int(d_level.max()) + 1,
        sizes=np.arange(1, G + 1, dtype=np.int64) if sizes is None else np.asarray(sizes, dtype=np.int64),
        total_gpus=G,
        **{k: np.asarray(v) if isinstance(v, list) else v for k, v in fields.items()},
    )


def _naive(p: ComposeProblem, cap: int, max_types: int, identical: bool):
    """(value, TPOT level, GPUs used) by the oracle kernels: every replica, every deployment."""
    allowed = np.zeros(p.total_gpus + 1, dtype=np.bool_)
    allowed[p.sizes[p.sizes <= p.total_gpus]] = True
    size, units, level, *_ = enumerate_replicas(
        p.p_gpus[p.p_ttft_ok],
        p.p_units[p.p_ttft_ok],
        p.p_key[p.p_ttft_ok],
        p.d_gpus,
        p.d_units,
        p.d_level,
        p.d_key,
        p.max_x,
        p.max_y,
        allowed,
        p.max_p_pool,
        p.max_d_pool,
    )
    ok = units > 0
    if identical:
        best = best_identical(size[ok], units[ok], level[ok], cap, p.total_gpus)
    else:
        best = best_packing(size[ok], units[ok], level[ok], cap, p.total_gpus, max_types)
    return None if best[3] < 0 else (int(best[0]), int(best[1]), int(best[2]))


def _solve(p: ComposeProblem, *, cap=None, max_types=2, identical=False, product=None):
    model = ComposeModel(p, max_types=max_types, identical=identical, product=product)
    choice = model.solve(p.n_levels - 1 if cap is None else cap, CPSAT, Counters())
    return model, choice


def _answer(choice):
    return (
        None
        if choice is None
        else (choice.packing.value, choice.packing.tpot_level, choice.packing.gpus_used)
    )


def _assert_naive(p, **kw):
    model, choice = _solve(p, **kw)
    cap = p.n_levels - 1 if kw.get("cap") is None else kw["cap"]
    assert _answer(choice) == _naive(p, cap, kw.get("max_types", 2), kw.get("identical", False))
    assert all(r.status in ("OPTIMAL", "INFEASIBLE") for r in model.reports)
    return choice


# One prefill option (2 GPUs, 10 units) and one decode option (1 GPU, 4 units): the best replica is
# balanced at 2P5D (20 units on 9 GPUs); 1P3D (10 on 5) is a close second per GPU.
BASE = dict(p_gpus=[2], p_units=[10], d_gpus=[1], d_units=[4], max_x=4, max_y=8)


def test_replica_rate_is_min_of_pools_and_identical_fills_budget():
    choice = _assert_naive(_problem(**BASE, G=18), identical=True)
    rows = choice.rows
    assert (int(rows.x[0]), int(rows.y[0]), int(rows.size[0])) == (2, 5, 9)
    assert rows.units[0] == min(2 * 10, 5 * 4) and choice.packing.counts.tolist() == [2]


def test_worker_cap_binds():
    # y <= 2: no balanced replica; the cap must hold and the optimum moves.
    choice = _assert_naive(_problem(**(BASE | dict(max_y=2)), G=18), identical=True)
    assert int(choice.rows.y.max()) <= 2


def test_size_list_excludes_the_unconstrained_optimum():
    free = _assert_naive(_problem(**BASE, G=18), identical=True)
    listed = _assert_naive(_problem(**BASE, G=18, sizes=[4, 6, 7]), identical=True)
    assert int(free.rows.size[0]) == 9 and int(listed.rows.size[0]) in (4, 6, 7)
    assert listed.packing.value < free.packing.value


def test_pool_caps_bind():
    choice = _assert_naive(_problem(**BASE, G=18, max_p_pool=2, max_d_pool=3), max_types=2)
    assert np.all(choice.rows.x * 2 <= 2) and np.all(choice.rows.y <= 3)


def test_pairing_keys():
    # The fast prefill option (key 1) may not pair with the only decode option (key 2); the slow
    # one (key -1, a wildcard) may.
    p = _problem(
        p_gpus=[2, 2],
        p_units=[20, 5],
        p_key=[1, -1],
        d_gpus=[1],
        d_units=[4],
        d_key=[2],
        max_x=4,
        max_y=8,
        G=16,
    )
    choice = _assert_naive(p, max_types=2)
    assert set(choice.rows.prefill.tolist()) == {1}


def test_ttft_filter():
    p = _problem(**(BASE | dict(p_gpus=[2, 2], p_units=[10, 40])), p_ttft_ok=[True, False], G=18)
    choice = _assert_naive(p, max_types=2)
    assert set(choice.rows.prefill.tolist()) == {0}


def test_tpot_cap_edits_one_model():
    # Decode options: slow TPOT fast rate, fast TPOT slow rate. One model answers every cap.
    p = _problem(**(BASE | dict(d_gpus=[1, 1], d_units=[4, 1])), d_level=[1, 0], G=18)
    model = ComposeModel(p, max_types=2, identical=False)
    for cap in (1, 0, 1):
        choice = model.solve(cap, CPSAT, Counters())
        assert _answer(choice) == _naive(p, cap, 2, False)
        assert choice.packing.tpot_level <= cap
    assert model.solve(-1, CPSAT, Counters()) is None


def test_packing_two_types_uses_the_budget():
    # 21 GPUs: identical 2 x 9 GPUs idles 3; packing adds a 1P1D replica (3 GPUs) in the gap.
    p = _problem(**BASE, G=21)
    ident = _assert_naive(p, identical=True)
    packed = _assert_naive(p, max_types=2)
    assert packed.packing.value > ident.packing.value
    assert packed.packing.gpus_used <= 21 and len(packed.rows) == 2
    assert packed.rows.size[0] < packed.rows.size[1]  # distinct sizes, ascending (size order)


@pytest.mark.parametrize("product", ["binary", "multiplication"])
@pytest.mark.parametrize("fold_limit", [0, compose_model.FOLD_LIMIT])
def test_products_and_tie_break_stages_agree(product, fold_limit):
    p = _problem(**(BASE | dict(d_gpus=[1, 1, 2], d_units=[4, 3, 9])), d_level=[2, 0, 1], G=29)
    with mock.patch.object(compose_model, "FOLD_LIMIT", fold_limit):
        for cap in range(3):
            model, choice = _solve(p, cap=cap, product=product)
            assert _answer(choice) == _naive(p, cap, 2, False)
            # Unfolded, every solve is two stages (value, then GPUs); the TPOT tie-break re-solves.
            assert len(model.reports) % 2 == 0 if fold_limit == 0 else len(model.reports) >= 1


def test_bad_product_and_composition_names():
    with pytest.raises(ValueError, match="product"):
        ComposeModel(_problem(**BASE, G=8), max_types=1, identical=True, product="mccormick")
    with pytest.raises(ServoptError) as err:
        SolverSettings(composition="milp")
    assert err.value.field == "composition" and "cpsat" in str(err.value)


def test_nothing_fits():
    p = _problem(**BASE, G=2)  # a replica needs 3 GPUs at least
    model, choice = _solve(p)
    assert choice is None and model.empty


def test_hint_from_above_the_cap_is_repaired():
    p = _problem(**(BASE | dict(d_gpus=[1, 1], d_units=[4, 1])), d_level=[1, 0], G=18)
    model = ComposeModel(p, max_types=2, identical=False)
    high = model.solve(1, CPSAT, Counters())
    assert high.packing.tpot_level == 1
    low = model.solve(0, CPSAT, Counters(), hint=high)
    assert _answer(low) == _naive(p, 0, 2, False)


# --- determinism and counters -----------------------------------------------------------------------


def _bench_like(G, **kw):
    rng = np.random.default_rng(5)
    prefill = synthetic.prefill_options(rng, layouts_per_size=2, max_batch=2)
    decode = synthetic.decode_options(rng, layouts_per_size=1)
    replica = ReplicaSpec(num_gpu_per_replica=PEER_REPLICA_SIZES, max_gpu_per_replica=64)
    return solve_disagg(
        prefill, decode, sla=Sla(2000, 30), total_gpus=G, tokens_per_request=1000, replica=replica, **kw
    )


# (solves, CP-SAT deterministic_time) of the cpsat run below, 1 worker (ortools 9.15).
RECORDED = (107, 0.0018)


def test_deterministic_counters_and_equal_to_menu_on_a_realistic_table():
    a, b = _bench_like(256, settings=CPSAT), _bench_like(256, settings=CPSAT)
    assert a.identical == b.identical and a.packed == b.packed and a.frontier == b.frontier
    assert a.counters == b.counters
    menu = _bench_like(256)
    assert deployment_key(a.identical) == deployment_key(menu.identical)
    assert deployment_key(a.packed) == deployment_key(menu.packed)
    assert front(a.frontier) == front(menu.frontier)
    c = a.counters
    assert c.all_optimal and c.replica_rows == 0  # the cpsat engine has no replica menu
    # Per frontier point a solve and its menu hint's solve, plus the last cap's, the packed
    # answer, and the TPOT tie-break's re-solves where the lowest level was not found directly.
    assert c.solves <= 2 * c.frontier_points + 6
    assert c.solves <= RECORDED[0] + 2
    assert c.deterministic_time <= 1.5 * RECORDED[1] + 1e-3


def test_both_modes_and_infeasibility_like_menu():
    agg = WorkerOptions.from_arrays(
        gpus=[2, 4, 8], rate_per_s=[1.0, 2.0, 4.0], ttft_ms=[900.0, 500.0, 300.0], tpot_ms=[40.0, 25.0, 15.0]
    )
    prefill = WorkerOptions.from_arrays(gpus=[2], rate_per_s=[4.0], ttft_ms=[200.0])
    decode = WorkerOptions.from_arrays(gpus=[4, 2], rate_per_s=[3.0, 1.0], tpot_ms=[20.0, 12.0])
    kw = dict(agg=agg, prefill=prefill, decode=decode, total_gpus=30, tokens_per_request=100)
    cp, menu = solve(**kw, sla=Sla(1000, 30), settings=CPSAT), solve(**kw, sla=Sla(1000, 30))
    for mode in ("agg", "disagg"):
        assert deployment_key(getattr(cp, mode).identical) == deployment_key(getattr(menu, mode).identical)
        assert deployment_key(getattr(cp, mode).packed) == deployment_key(getattr(menu, mode).packed)
    for sla in (Sla(1000, 5), Sla(100, 30)):
        with pytest.raises(InfeasibleError) as cp_err:
            solve(**kw, sla=sla, settings=CPSAT)
        with pytest.raises(InfeasibleError) as menu_err:
            solve(**kw, sla=sla)
        assert str(cp_err.value) == str(menu_err.value)


def test_unproven_answers_are_flagged():
    # Stop at the first solution: the identical hint (40 units) comes back unproven (optimum 44).
    p = _problem(**BASE, G=21)
    ident = ComposeModel(p, max_types=1, identical=True).solve(0, CPSAT, Counters())
    model = ComposeModel(p, max_types=2, identical=False)
    first = model.solve(
        0, SolverSettings(composition="cpsat", params="stop_after_first_solution: true"), Counters(), ident
    )
    assert first.packing.value == 40 and not model.proven
    assert [r.status for r in model.reports] == ["FEASIBLE"]
    res = _bench_like(
        64, settings=SolverSettings(composition="cpsat", params="stop_after_first_solution: true")
    )
    assert not res.counters.all_optimal and res.identical.status == "FEASIBLE"  # verified all the same


def test_stopped_before_any_deployment_is_not_called_infeasible():
    # No warm starts from the menu engine, and too little work allowed to find a first deployment.
    no_hints = mock.patch.object(compose.ComposeEngine, "_hint_at", lambda self, *args: None)
    tiny = SolverSettings(composition="cpsat", params="max_deterministic_time: 0.00001")
    with no_hints, pytest.raises(ServoptError) as err:
        _bench_like(256, settings=tiny)
    assert err.value.field == "max_deterministic_time" and not isinstance(err.value, InfeasibleError)


def test_naive_helper_by_hand():
    # The unit tests' oracle on BASE at 9 GPUs: 2P5D, 20 units, one replica.
    assert _naive(_problem(**BASE, G=9), 0, 1, True) == (20, 0, 9)
