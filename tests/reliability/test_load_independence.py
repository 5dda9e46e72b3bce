"""Answers do not depend on machine load: CP-SAT stops on deterministic time (a count of work), never
on the clock, and property tests have no wall-clock deadline."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import Phase, settings
from ortools.sat.python import cp_model
from tests.search import synthetic

from servopt.errors import ServoptError
from servopt.search.options import ReplicaSpec, Sla
from servopt.search.settings import DEFAULT_MAX_DETERMINISTIC_TIME, SolverSettings
from servopt.search.solve import solve


def test_settings_limit_deterministic_time_and_leave_the_clock_unlimited():
    params = cp_model.CpSolver().parameters
    SolverSettings().apply(params)
    assert params.max_deterministic_time == DEFAULT_MAX_DETERMINISTIC_TIME
    assert math.isinf(params.max_time_in_seconds)  # CP-SAT's default: no wall-clock limit
    assert params.num_workers == 1  # one worker: the search path itself is reproducible


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_a_deterministic_limit_must_be_finite_and_positive(bad):
    with pytest.raises(ServoptError):
        SolverSettings(max_deterministic_time=bad)


@pytest.mark.parametrize("composition", ["menu", "cpsat"])
def test_repeated_solves_do_the_same_work_and_give_the_same_answer(composition):
    rng = np.random.default_rng(3)
    tables = dict(
        agg=synthetic.agg_options(rng, layouts_per_size=4),
        prefill=synthetic.prefill_options(rng, layouts_per_size=2, max_batch=4),
        decode=synthetic.decode_options(rng, layouts_per_size=3),
    )

    def run():
        return solve(
            **tables,
            sla=Sla(ttft_ms=2000.0, tpot_ms=30.0),
            total_gpus=64,
            tokens_per_request=1000,
            replica=ReplicaSpec(num_gpu_per_replica=(1, 2, 4, 8, 16), max_gpu_per_replica=16),
            settings=SolverSettings(composition=composition),
        )

    a, b = run(), run()
    for x, y in ((a.agg, b.agg), (a.disagg, b.disagg)):
        # The work counter is CP-SAT's deterministic time: equal to the last digit, run to run.
        assert x.counters.deterministic_time == y.counters.deterministic_time
        assert x.counters.solves == y.counters.solves and x.counters.all_optimal and y.counters.all_optimal
        assert x.identical.value_units == y.identical.value_units
        assert x.packed.value_units == y.packed.value_units


def test_property_tests_have_no_deadline_and_report_without_shrinking():
    assert settings.default.deadline is None
    assert Phase.shrink not in settings.default.phases
