"""Calibration adjustments applied to a built deployment: neutral is the identity, scales scale."""

from __future__ import annotations

import numpy as np
from tests.simulate.synthetic import one_at_a_time, tables

from servopt.simulate.adjust import Adjustments, adjust
from servopt.simulate.engine import run
from servopt.simulate.workload import Requests


def synthetic_deployment():
    # A prefill pass costs 5 ms + 0.01 ms per token, a decode pass 5 ms.
    return one_at_a_time(1, tables(per_pass_ms=5.0, per_token_ms=0.01))


def _one(isl=512, osl=64) -> Requests:
    return Requests(np.zeros(1), np.array([isl]), np.array([osl]))


def test_neutral_adjustments_return_the_same_deployment():
    dep = synthetic_deployment()
    assert adjust(dep, Adjustments()) is dep


def test_decode_scale_multiplies_decode_steps_and_leaves_prefill():
    dep = synthetic_deployment()
    base = run(dep, _one(), clients=1)
    slow = run(adjust(dep, Adjustments(decode_scale=1.25)), _one(), clients=1)
    first = base.t_first - base.t_arrive
    assert np.allclose(slow.t_first - slow.t_arrive, first)
    decode = base.t_done - base.t_first
    assert np.allclose(slow.t_done - slow.t_first, 1.25 * decode)


def test_iteration_and_request_overheads_add_their_time():
    dep = synthetic_deployment()
    base = run(dep, _one(osl=11), clients=1)
    adj = run(
        adjust(dep, Adjustments(request_overhead_ms=40.0, iteration_overhead_ms=2.0)), _one(osl=11), clients=1
    )
    # 40 ms before the queue, 2 ms more on the prefill pass; then 10 decode passes 2 ms longer each.
    assert np.allclose(adj.t_first - adj.t_arrive, base.t_first - base.t_arrive + 42.0)
    assert np.allclose(adj.t_done - adj.t_first, base.t_done - base.t_first + 20.0)
