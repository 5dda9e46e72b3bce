"""The lazy simulator kernel against its eager oracle, and the engine behaviours that matter."""

import numpy as np
import pytest
from tests.simulate import eager_sim, synthetic

import servopt_kernels.sim as lazy
from servopt.errors import ServoptError
from servopt.simulate.engine import Deployment, InstanceKind, run
from servopt.simulate.policy import ENGINE_DEFAULTS
from servopt.simulate.step_time import StepTables
from servopt.simulate.workload import Requests


def smooth_tables(scale: float) -> StepTables:
    """A plausible pass cost: linear in tokens, attention linear in requests x KV length."""
    tok = np.array([0.0, 1e5])
    dec = np.array([0.0, 1e4])
    kv = np.array([0.0, 1e5])
    pre = np.array([0.0, 1e5])
    gen_attn = np.outer(dec, kv) * 1e-7 * scale
    gen_full = 5.0 * scale + dec[:, None] * 0.02 * scale + gen_attn
    ctx_attn = np.outer(tok, pre) * 1e-8 * scale + (tok**2)[:, None] * 1e-9 * scale
    ctx_full = 5.0 * scale + tok[:, None] * 0.05 * scale + ctx_attn
    return StepTables(
        tok, 5.0 * scale + tok * 0.05 * scale, dec, kv, gen_full, gen_attn, tok, pre, ctx_full, ctx_attn
    )


def deployment(backend: str, disagg: bool, kv_tokens: int) -> Deployment:
    policy = ENGINE_DEFAULTS[backend].with_overrides(
        kv_block_tokens=1, max_batch_size=48, max_num_tokens=3000
    )
    if disagg:
        return Deployment(
            (
                InstanceKind("prefill", 2, policy, kv_tokens, smooth_tables(1.0), 2.0),
                InstanceKind("decode", 3, policy, kv_tokens, smooth_tables(0.7), 4.0),
            ),
            xfer_fixed_ms=0.5,
            xfer_ms_per_token=0.001,
        )
    return Deployment((InstanceKind("agg", 2, policy, kv_tokens, smooth_tables(1.0), 2.0),))


def both(dep, req, clients, monkeypatch):
    a = run(dep, req, clients=clients)
    with monkeypatch.context() as m:
        m.setattr(lazy, "simulate", eager_sim.simulate)
        b = run(dep, req, clients=clients)
    return a, b


@pytest.mark.parametrize("backend", ["vllm", "sglang", "trtllm"])
@pytest.mark.parametrize("disagg", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_lazy_kernel_equals_eager_oracle(backend, disagg, seed, monkeypatch):
    rng = np.random.default_rng(seed)
    n = 400
    isl = rng.integers(1, 2500, n)
    osl = rng.integers(1, 300, n)
    closed = seed % 2 == 0
    arrivals = np.zeros(n) if closed else np.cumsum(rng.exponential(40.0, n))
    req = Requests(arrivals - arrivals[0], isl.astype(np.int64), osl.astype(np.int64))
    a, b = both(deployment(backend, disagg, kv_tokens=10**7), req, 24 if closed else 0, monkeypatch)
    assert a.iterations == b.iterations
    for name in ("t_arrive", "t_first", "t_done"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(a.itl_hist, b.itl_hist)
    assert np.all(a.t_done >= 0) and a.preemptions.sum() == 0


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_preemption_keeps_kv_within_capacity_and_everyone_finishes(backend):
    rng = np.random.default_rng(1)
    n = 300
    req = Requests(
        np.zeros(n), rng.integers(500, 2000, n).astype(np.int64), rng.integers(200, 800, n).astype(np.int64)
    )
    cap = 12_000  # a handful of requests at a time
    dep = deployment(backend, False, kv_tokens=cap)
    raw = run(dep, req, clients=32)
    assert np.all(raw.t_done > 0)
    assert raw.preemptions.sum() > 0
    assert raw.timeline[:, 3].max() <= 2 * cap  # two instances
    assert np.all(raw.t_first >= raw.t_arrive) and np.all(raw.t_done >= raw.t_first)


def test_full_reservation_never_preempts_and_queues_instead():
    rng = np.random.default_rng(2)
    n = 200
    req = Requests(
        np.zeros(n), rng.integers(500, 2000, n).astype(np.int64), rng.integers(200, 800, n).astype(np.int64)
    )
    raw = run(deployment("trtllm", False, kv_tokens=12_000), req, clients=32)
    assert raw.preemptions.sum() == 0 and np.all(raw.t_done > 0)
    assert raw.timeline[:, 1].max() > 0  # requests waited for KV


def test_disaggregated_second_token_waits_for_the_kv_transfer():
    n = 1
    req = Requests(np.zeros(n), np.array([2000]), np.array([3]))
    slow = deployment("trtllm", True, 10**7)
    slow = Deployment(slow.kinds, xfer_fixed_ms=0.0, xfer_ms_per_token=1.0)  # 2 s transfer
    fast = Deployment(slow.kinds, xfer_fixed_ms=0.0, xfer_ms_per_token=0.0)
    a, b = run(slow, req), run(fast, req)
    assert a.t_first[0] == b.t_first[0]  # the prefill worker sends the first token
    assert a.t_done[0] - b.t_done[0] == pytest.approx(2000.0)


def test_same_input_same_output():
    rng = np.random.default_rng(3)
    req = Requests(
        np.cumsum(rng.exponential(5.0, 500)),
        rng.integers(1, 3000, 500).astype(np.int64),
        rng.integers(1, 400, 500).astype(np.int64),
    )
    dep = deployment("vllm", True, 10**6)
    a, b = run(dep, req), run(dep, req)
    for name in ("t_first", "t_done", "itl_hist", "timeline"):
        assert np.array_equal(getattr(a, name), getattr(b, name))


def test_request_overhead_delays_every_request_by_exactly_that_much():
    rng = np.random.default_rng(4)
    n = 400
    req = Requests(
        np.cumsum(rng.exponential(30.0, n)),
        rng.integers(1, 2000, n).astype(np.int64),
        rng.integers(1, 200, n).astype(np.int64),
    )
    dep = deployment("vllm", False, 10**6)
    base = run(dep, req)
    late = run(Deployment(dep.kinds, request_overhead_ms=25.0), req)
    # Open loop: the same dynamics, shifted; TTFT and E2E grow by the overhead.
    np.testing.assert_allclose(late.t_first - late.t_arrive, base.t_first - base.t_arrive + 25.0, rtol=1e-12)
    np.testing.assert_allclose(late.t_done - late.t_arrive, base.t_done - base.t_arrive + 25.0, rtol=1e-12)
    # Closed loop, one client: each request waits the overhead once more.
    one = Requests(np.zeros(20), np.full(20, 100, np.int64), np.full(20, 5, np.int64))
    a = run(dep, one, clients=1)
    b = run(Deployment(dep.kinds, request_overhead_ms=10.0), one, clients=1)
    assert b.t_done[-1] - a.t_done[-1] == pytest.approx(20 * 10.0)


@pytest.mark.parametrize("backend", ["vllm", "sglang", "trtllm"])
@pytest.mark.parametrize("disagg", [False, True])
def test_recorded_token_times_reproduce_every_inter_token_gap(backend, disagg):
    rng = np.random.default_rng(9)
    n = 300
    req = Requests(
        np.cumsum(rng.exponential(20.0, n)),
        rng.integers(1, 2000, n).astype(np.int64),
        rng.integers(1, 120, n).astype(np.int64),
    )
    raw = run(deployment(backend, disagg, 10**7), req, record_tokens=True)
    hist = np.zeros_like(raw.itl_hist)
    for r in range(n):
        times = raw.token_times_ms(r, int(req.osl[r]))
        assert times[0] == raw.t_first[r] and times[-1] == pytest.approx(raw.t_done[r])
        gaps = np.diff(times)
        assert np.all(gaps > 0)
        for g in gaps:
            hist[lazy._itl_bin(g)] += 1
    np.testing.assert_array_equal(hist, raw.itl_hist)


def _polling(interval: int, pass_ms: float) -> Deployment:
    """One SGLang-like instance (prefill passes alone) whose every pass costs ``pass_ms``."""
    policy = ENGINE_DEFAULTS["sglang"].with_overrides(
        kv_block_tokens=1, max_batch_size=8, recv_interval=interval
    )
    return Deployment((InstanceKind("agg", 1, policy, 10**7, synthetic.tables(per_pass_ms=pass_ms), 2.0),))


@pytest.mark.parametrize("interval", [1, 3, 10])
@pytest.mark.parametrize("arrive_ms", [0.5, 7.3, 33.0, 71.9, 250.1])
def test_an_arrival_waits_for_the_next_poll(interval, arrive_ms):
    # Request 0 arrives at 0 and decodes for long: its prefill pass is [0, D), its decode passes
    # start at D, 2D, ...; the engine polls after the prefill pass (at D) and then every
    # `interval` decode passes (D + j * interval * D). Request 1 arriving at a is admitted at the
    # first poll after a and prefilled in one pass: its TTFT is (next poll - a) + D.
    step = 4.0
    req = Requests(np.array([0.0, arrive_ms]), np.array([10, 10], np.int64), np.array([400, 2], np.int64))
    raw = run(_polling(interval, step), req)
    period = interval * step
    next_poll = step + np.ceil((arrive_ms - step) / period) * period if arrive_ms > step else step
    assert raw.t_first[1] - raw.t_arrive[1] == pytest.approx(next_poll - arrive_ms + step, abs=1e-9)


def test_polling_never_delays_a_request_that_finds_the_engine_idle():
    # One client: every request arrives when nothing decodes, and the idle loop polls at once.
    rng = np.random.default_rng(5)
    one = Requests(
        np.zeros(30), rng.integers(5, 900, 30).astype(np.int64), rng.integers(2, 60, 30).astype(np.int64)
    )
    base = run(_polling(1, 3.0), one, clients=1)
    late = run(_polling(30, 3.0), one, clients=1)
    for name in ("t_arrive", "t_first", "t_done"):
        np.testing.assert_array_equal(getattr(late, name), getattr(base, name))


def test_interval_one_is_the_engine_default_and_is_checked():
    assert all(p.recv_interval == 1 for p in ENGINE_DEFAULTS.values())
    with pytest.raises(ServoptError, match="recv_interval"):
        ENGINE_DEFAULTS["sglang"].with_overrides(recv_interval=0)
