"""TRT-LLM's batch waiting (no attention DP) in the simulator: hand-computed waits, and off = unchanged."""

import numpy as np
import pytest
from tests.simulate import synthetic

from servopt.errors import ServoptError
from servopt.simulate.engine import Deployment, InstanceKind, run
from servopt.simulate.policy import ENGINE_DEFAULTS
from servopt.simulate.workload import Requests

PASS_MS = 10.0


def _engine(iters: int, ratio: float, *, max_tokens: int = 8192, ranks: int = 1) -> Deployment:
    """TRT-like instances (mixed passes, whole-request KV) whose every pass costs PASS_MS."""
    policy = ENGINE_DEFAULTS["trtllm"].with_overrides(
        kv_block_tokens=1,
        max_batch_size=8,
        max_num_tokens=max_tokens,
        iteration_overhead_ms=PASS_MS,
        batch_wait_timeout_iters=iters,
        batch_wait_max_tokens_ratio=ratio,
    )
    kind = InstanceKind("agg", ranks, policy, 10**7, synthetic.tables(), 1.0, ranks_per_worker=ranks)
    return Deployment((kind,))


def _requests(arrivals_ms, isl, osl):
    return Requests(np.array(arrivals_ms, float), np.array(isl, np.int64), np.array(osl, np.int64))


def test_context_waits_for_the_timeout_and_the_count_restarts():
    # r0 is prefilled in [0, 10) and decodes in passes from 10. r1 (35) is asked about at 40, 50, 60
    # (counts 0, 1, 2 < 3: held) and released at 70 (count 3): prefilled in [70, 80). The count
    # restarts: r2 (75) is held at 80, 90, 100 and prefilled in [110, 120). Without waiting both are
    # prefilled at the first pass after they arrive. 11 tokens never reach 0.8 x 8192.
    req = _requests([0.0, 35.0, 75.0], [10, 10, 10], [1000, 1000, 5])
    on = run(_engine(3, 0.8), req)
    off = run(_engine(0, 0.0), req)
    np.testing.assert_allclose(on.t_first - on.t_arrive, [PASS_MS, 45.0, 45.0])
    np.testing.assert_allclose(off.t_first - off.t_arrive, [PASS_MS, 15.0, 15.0])


def test_enough_tokens_end_the_wait():
    # Budget 100, ratio 0.5: at 40 r1's 30 context tokens + 1 decode token = 31 < 50 (held); at 50
    # r1 and r2 give 61 >= 50: both are prefilled in [50, 60), long before the timeout (10).
    req = _requests([0.0, 35.0, 45.0], [10, 30, 30], [1000, 5, 5])
    raw = run(_engine(10, 0.5, max_tokens=100), req)
    np.testing.assert_allclose(raw.t_first[1:] - raw.t_arrive[1:], [25.0, 15.0])


def test_no_decodes_means_no_wait_and_the_count_is_kept():
    # r0 (osl 5) decodes its tokens 2..5 in [10, 50). r1 (25) is held at 30 and 40 (count 2); at 50
    # nothing decodes, so TRT-LLM does not ask: r1 is prefilled in [50, 60) and the count stays 2.
    # r2 (65) is held at 70 (count 3) and released at 80: [80, 90), 25 ms after it came.
    req = _requests([0.0, 25.0, 65.0], [10, 10, 10], [5, 1000, 5])
    raw = run(_engine(3, 0.8), req)
    assert raw.t_done[0] == pytest.approx(50.0)
    np.testing.assert_allclose(raw.t_first[1:] - raw.t_arrive[1:], [35.0, 25.0])
    # An idle engine never waits.
    alone = run(_engine(40, 0.8), _requests([5.0], [10], [5]))
    assert alone.t_first[0] - 5.0 == pytest.approx(PASS_MS)


def test_a_ratio_alone_never_waits():
    # timeout 0: TRT-LLM's "count >= timeout" always holds, so the ratio changes nothing.
    req = _requests([0.0, 35.0], [10, 10], [1000, 5])
    raw = run(_engine(0, 0.8), req)
    assert raw.t_first[1] - 35.0 == pytest.approx(15.0)


@pytest.mark.parametrize("clients", [0, 6])
def test_off_is_unchanged_and_attention_dp_ignores_it(clients):
    rng = np.random.default_rng(5)
    n = 300
    req = Requests(
        np.sort(rng.uniform(0, 3000, n)), rng.integers(5, 900, n).astype(np.int64),
        rng.integers(2, 200, n).astype(np.int64),
    )  # fmt: skip
    base = _engine(0, 0.0)
    plain = ENGINE_DEFAULTS["trtllm"].with_overrides(
        kv_block_tokens=1, max_batch_size=8, iteration_overhead_ms=PASS_MS
    )
    default = Deployment((InstanceKind("agg", 1, plain, 10**7, synthetic.tables(), 1.0),))
    on = run(_engine(40, 0.8), req, clients=clients)
    off = run(base, req, clients=clients)
    np.testing.assert_array_equal(run(default, req, clients=clients).t_first, off.t_first)
    assert np.mean(on.t_first - on.t_arrive) > np.mean(off.t_first - off.t_arrive)
    # Attention-DP ranks (TRT-LLM skips batch waiting with attention DP): the same run as off.
    adp_on = run(_engine(40, 0.8, ranks=2), req, clients=clients)
    adp_off = run(_engine(0, 0.0, ranks=2), req, clients=clients)
    for name in ("t_arrive", "t_first", "t_done", "preemptions", "itl_hist", "timeline"):
        np.testing.assert_array_equal(getattr(adp_on, name), getattr(adp_off, name))


def test_fields_are_checked_and_off_by_default():
    assert all(p.batch_wait_timeout_iters == 0 for p in ENGINE_DEFAULTS.values())
    assert all(p.batch_wait_max_tokens_ratio == 0.0 for p in ENGINE_DEFAULTS.values())
    with pytest.raises(ServoptError, match="batch_wait_timeout_iters"):
        ENGINE_DEFAULTS["trtllm"].with_overrides(batch_wait_timeout_iters=-1)
    with pytest.raises(ServoptError, match="batch_wait_max_tokens_ratio"):
        ENGINE_DEFAULTS["trtllm"].with_overrides(batch_wait_max_tokens_ratio=1.5)


def test_decode_workers_never_wait():
    # A decode worker's queue holds transferred requests, not context: its admissions are unchanged.
    rng = np.random.default_rng(7)
    n = 200
    req = Requests(
        np.sort(rng.uniform(0, 2000, n)), rng.integers(5, 400, n).astype(np.int64),
        rng.integers(2, 100, n).astype(np.int64),
    )  # fmt: skip

    def disagg(iters, ratio):
        policy = ENGINE_DEFAULTS["trtllm"].with_overrides(
            kv_block_tokens=1, max_batch_size=8, iteration_overhead_ms=PASS_MS,
            batch_wait_timeout_iters=iters, batch_wait_max_tokens_ratio=ratio,
        )  # fmt: skip
        prefill = InstanceKind("prefill", 1, ENGINE_DEFAULTS["trtllm"], 10**7, synthetic.tables(), 1.0)
        decode = InstanceKind("decode", 1, policy, 10**7, synthetic.tables(), 1.0)
        return Deployment((prefill, decode))

    on, off = run(disagg(40, 0.8), req), run(disagg(0, 0.0), req)
    for name in ("t_first", "t_done", "itl_hist"):
        np.testing.assert_array_equal(getattr(on, name), getattr(off, name))
