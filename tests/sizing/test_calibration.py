"""A calibration profile in rate sizing, as ``cli simulate`` applies it: scaled step tables and an
iteration overhead on every worker option, the request overhead in every verification run (an exact
shift of open-loop TTFTs), and a search that still finds the brute-force answer (its stability
bound, measured without the client-side overhead, stays optimistic)."""

import numpy as np
import pytest
from tests.sizing.test_minimize import brute_agg, instance

from servopt.simulate.adjust import Adjustments
from servopt.sizing.minimize import Sizer
from servopt.sizing.options import adjust_options

ADJ = Adjustments(request_overhead_ms=60.0, iteration_overhead_ms=1.5, prefill_scale=1.2, decode_scale=0.9)


def test_options_get_the_scales_and_the_iteration_overhead():
    _, _, options = instance(0)
    assert adjust_options(options, Adjustments()) is options
    for raw, cal in zip(options, adjust_options(options, ADJ), strict=True):
        t, u = raw.kind.tables, cal.kind.tables
        assert np.array_equal(u.tok_ms, t.tok_ms * 1.2) and np.array_equal(u.ctx_full_ms, t.ctx_full_ms * 1.2)
        assert np.array_equal(u.gen_full_ms, t.gen_full_ms * 0.9) and np.array_equal(
            u.gen_attn_ms, t.gen_attn_ms * 0.9
        )
        assert cal.kind.policy.iteration_overhead_ms == 1.5
        assert cal.kind.policy.max_batch_size == raw.kind.policy.max_batch_size


def test_verification_runs_carry_the_request_overhead():
    # Open loop: every request reaches the engines the same 60 ms later, so the engines see the
    # same arrivals shifted and every TTFT grows by exactly that, TPOT unchanged.
    offered, targets, options = instance(3)
    raw, cal = (
        Sizer(offered, targets, budget=96),
        Sizer(offered, targets, budget=96, request_overhead_ms=60.0),
    )
    for o in options[:2]:
        n = raw.agg_bound(o) + 1
        a, b = raw.agg_verdict(o, n), cal.agg_verdict(o, n)
        assert b.ttft_ms == pytest.approx(a.ttft_ms + 60.0, abs=1e-6)
        assert b.tpot_ms == pytest.approx(a.tpot_ms, abs=1e-9)


@pytest.mark.parametrize("seed", range(20))
def test_calibrated_sizing_equals_brute_force(seed):
    offered, targets, options = instance(seed)
    options = adjust_options(options, ADJ)
    got = Sizer(offered, targets, budget=96, request_overhead_ms=ADJ.request_overhead_ms).size_agg(options)
    oracle = Sizer(offered, targets, budget=96, request_overhead_ms=ADJ.request_overhead_ms)
    assert (got.gpus if got else None) == brute_agg(oracle, options)
