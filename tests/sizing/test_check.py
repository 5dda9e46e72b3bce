"""The verdict of one deployment: an open-loop run stopped early (its verdict settled) must give
exactly the whole run's verdict, with fewer simulator passes."""

import math

import numpy as np
import pytest
from tests.sizing.test_minimize import instance, option

from servopt.simulate.engine import Deployment, run
from servopt.sizing.check import (
    Verdict,
    attainment,
    check,
    early_stop,
    fail_at,
    measured,
    percentiles,
)
from servopt_kernels import sim


@pytest.mark.parametrize("percentile", [50.0, 90.0, 99.0, 99.9, 12.5])
def test_fail_at_values_past_a_limit_put_the_percentile_past_it(percentile):
    rng = np.random.default_rng(int(percentile * 10))
    for n in [1, 2, 3, 7, 10, 99, 100, 101, 1000, 1234, 13107]:
        k = fail_at(n, percentile)
        assert 1 <= k <= n
        for _ in range(5):
            # k values just past the limit (1.0), the rest as high as they may be without passing it.
            values = np.concatenate([np.full(n - k, 1.0), 1.0 + rng.uniform(1e-12, 1e-9, k)])
            assert np.percentile(rng.permutation(values), percentile) > 1.0


def whole_verdict(dep, req, targets, lifetime) -> Verdict:
    raw = run(dep, req)
    assert raw.stop == sim.STOP_NONE
    t, p = percentiles(raw, req, targets, lifetime)
    binding = "ttft" if t > targets.ttft_ms else ("tpot" if p > targets.tpot_ms else "")
    return Verdict(binding == "", t, p, binding)


def deployments(seed: int):
    """Agg and disagg deployments around the load's capacity, so verdicts go both ways."""
    rng = np.random.default_rng(seed)
    agg = instance(seed)[2][int(rng.integers(0, 4))]
    yield Deployment((agg.workers(int(rng.integers(1, 12))),), request_overhead_ms=0.0)
    p, d = option("prefill", 1, 1.0, 64), option("decode", 1, 0.8, int(rng.choice([8, 16, 64])))
    yield Deployment((p.workers(int(rng.integers(1, 6))), d.workers(int(rng.integers(1, 8)))), 2.0, 1e-3)


@pytest.mark.parametrize("chunk", range(4))
def test_early_stopped_verdict_equals_the_whole_run(chunk):
    passes_early = passes_whole = passes_done = 0
    stops = {sim.STOP_WATCHED_DONE: 0, sim.STOP_TTFT: 0, sim.STOP_TPOT: 0}
    for seed in range(chunk * 40, chunk * 40 + 40):
        offered, targets, _ = instance(seed)
        req = offered.requests(targets)
        lifetime = offered.lifetime_ms(targets)
        for dep in deployments(seed):
            whole = whole_verdict(dep, req, targets, lifetime)
            assert check(dep, req, targets, lifetime) == whole or (
                not whole.ok and _settled_fail(dep, req, targets, lifetime, whole)
            )
            early = run(dep, req, early_stop=early_stop(req, targets, lifetime))
            full, m = run(dep, req), measured(req, lifetime)
            stops[early.stop] = stops.get(early.stop, 0) + 1
            passes_early += early.iterations
            passes_whole += full.iterations
            if early.stop == sim.STOP_WATCHED_DONE:
                # The measured requests' times are the whole run's, bit for bit.
                assert np.array_equal(early.t_first[m], full.t_first[m])
                assert np.array_equal(early.t_done[m], full.t_done[m])
            # Stopped once the measured requests are done (max_goodput_per_gpu): same attainment.
            done = run(dep, req, early_stop=early_stop(req, targets, lifetime, fail=False))
            assert done.stop in (sim.STOP_NONE, sim.STOP_WATCHED_DONE)
            passes_done += done.iterations
            assert attainment(done, req, targets, lifetime) == attainment(full, req, targets, lifetime)
    # Every kind of stop happened, and the early runs did less work.
    assert all(count > 0 for count in stops.values()), stops
    assert passes_early < 0.8 * passes_whole and passes_done < passes_whole


def _settled_fail(dep, req, targets, lifetime, whole: Verdict) -> bool:
    """A failing verdict stopped early: both values inf, binding the target it proved missed (the
    whole run's value at that percentile is past it)."""
    v = check(dep, req, targets, lifetime)
    proven = {"ttft": (whole.ttft_ms, targets.ttft_ms), "tpot": (whole.tpot_ms, targets.tpot_ms)}
    value, limit = proven[v.binding]
    return not v.ok and math.isinf(v.ttft_ms) and math.isinf(v.tpot_ms) and value > limit
