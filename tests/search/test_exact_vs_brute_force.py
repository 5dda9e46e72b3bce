"""Optimality: on random small instances CP-SAT's answers and frontiers equal brute force exactly.

The instances and the comparison are :mod:`brute_cases`' (few distinct values, so ties are common;
worker caps, replica GPU lists, pool caps, budgets and SLAs drawn); infeasibility is compared too.
"""

from __future__ import annotations

import contextlib
from unittest import mock

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from tests.search.enumerate import brute_force_agg, brute_force_disagg

from servopt.errors import InfeasibleError
from servopt.search import xpyd_model
from servopt.search.options import Sla

from .brute_cases import (
    DISAGG_TTFT,
    PAIR_KEY,
    PROPERTY,
    SLA_TPOT,
    SLA_TTFT,
    agg_runner,
    assert_equals_oracle,
    disagg_runner,
    replica_specs,
    tables,
)


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
    assert_equals_oracle(result, oracle)
    assert result.packed.value_units >= result.identical.value_units
    assert result.counters.all_optimal


@settings(PROPERTY, max_examples=150)
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
    _compare(agg_runner(agg, sla=sla, total_gpus=total_gpus, max_types=max_types), oracle, two_stage)


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
    run = disagg_runner(prefill, decode, sla=sla, total_gpus=total_gpus, replica=replica, max_types=max_types)
    _compare(run, oracle, two_stage)
