"""TRT-LLM's attention-DP balancing in the simulator: hand-computed waits, and off = unchanged."""

import numpy as np
import pytest
from tests.simulate import synthetic

from servopt.errors import ServoptError
from servopt.simulate.engine import Deployment, InstanceKind, run
from servopt.simulate.policy import ENGINE_DEFAULTS
from servopt.simulate.workload import Requests

PASS_MS = 10.0


def _worker(ranks: int, timeout: int, ranks_per_worker: int | None = None) -> Deployment:
    """TRT-like ranks (mixed passes, whole-request KV) whose every pass costs PASS_MS."""
    policy = ENGINE_DEFAULTS["trtllm"].with_overrides(
        kv_block_tokens=1, max_batch_size=8, iteration_overhead_ms=PASS_MS, adp_balance_timeout_iters=timeout
    )
    kind = InstanceKind(
        "agg", ranks, policy, 10**7, synthetic.tables(), 1.0, ranks_per_worker=ranks_per_worker or ranks
    )
    return Deployment((kind,))


def _requests(arrivals_ms, osl):
    n = len(arrivals_ms)
    return Requests(np.array(arrivals_ms, float), np.full(n, 10, np.int64), np.array(osl, np.int64))


def test_a_lone_context_waits_for_the_timeout():
    # r0, r1 at 0 go to ranks 0 and 1 (least pending); both have context: released together,
    # prefilled in [0, 10), then decode in passes starting 10, 20, ... r2 at 35 goes to rank 0. Rank 0
    # counts every pass at which not all ranks have context: 10 -> 1, 20 -> 2, 30 -> 3, 40 -> 4 (r2
    # held), 50 -> 5 = timeout: r2 is prefilled in [50, 60). Without balancing: [40, 50).
    req = _requests([0.0, 0.0, 35.0], [1000, 1000, 5])
    on = run(_worker(2, 5), req)
    off = run(_worker(2, 0), req)
    np.testing.assert_array_equal(on.t_first[:2], [PASS_MS, PASS_MS])
    assert on.t_first[2] - 35.0 == pytest.approx(25.0)
    assert off.t_first[2] - 35.0 == pytest.approx(15.0)


def test_context_on_every_rank_is_released_together():
    # As above with timeout 10, and r3 at 42 on rank 1. At 50 rank 0 (first in instance order) has
    # r2 but rank 1 has not polled r3 yet (its last poll was at 40): hold. Rank 1 at 50 polls r3, sees
    # context on both ranks: it prefills r3 in [50, 60) and releases rank 0, which prefills r2 at its
    # next pass, [60, 70).
    req = _requests([0.0, 0.0, 35.0, 42.0], [1000, 1000, 5, 5])
    raw = run(_worker(2, 10), req)
    assert raw.t_first[2] - 35.0 == pytest.approx(35.0)
    assert raw.t_first[3] - 42.0 == pytest.approx(18.0)


def test_a_rank_with_nothing_to_decode_releases_at_once():
    # r1 at 5 finds rank 1 idle: not every rank decodes, so it is prefilled at once, [5, 15).
    req = _requests([0.0, 5.0], [1000, 5])
    raw = run(_worker(2, 60), req)
    assert raw.t_first[1] - 5.0 == pytest.approx(PASS_MS)


def test_balancing_waits_grow_ttft_and_leave_decoding_alone():
    rng = np.random.default_rng(3)
    n = 200
    req = Requests(
        np.sort(rng.uniform(0, 4000, n)), rng.integers(50, 400, n).astype(np.int64),
        rng.integers(50, 300, n).astype(np.int64),
    )  # fmt: skip
    on = run(_worker(4, 60), req)
    off = run(_worker(4, 0), req)
    assert np.all(on.t_first >= 0) and np.all(on.t_done >= on.t_first)
    assert np.mean(on.t_first - on.t_arrive) > np.mean(off.t_first - off.t_arrive) + PASS_MS


def test_ranks_are_balanced_within_their_worker_only():
    # Two workers of two ranks: r0-r3 at 0 on ranks 0-3, then r4 (35) and r5 (42) on ranks 0 and 1
    # play the second test's script in worker 0; worker 1's ranks, without context, do not hold it.
    req = _requests([0.0, 0.0, 0.0, 0.0, 35.0, 42.0], [1000] * 4 + [5, 5])
    raw = run(_worker(4, 10, ranks_per_worker=2), req)
    assert raw.t_first[4] - 35.0 == pytest.approx(35.0)
    assert raw.t_first[5] - 42.0 == pytest.approx(18.0)


@pytest.mark.parametrize("clients", [0, 6])
def test_off_is_unchanged(clients):
    # Off (timeout 0) the rank grouping is unused; one rank per worker with balancing on is also
    # the same run (a rank is balanced with itself).
    rng = np.random.default_rng(11)
    n = 300
    req = Requests(
        np.sort(rng.uniform(0, 3000, n)), rng.integers(5, 900, n).astype(np.int64),
        rng.integers(2, 200, n).astype(np.int64),
    )  # fmt: skip
    base = run(_worker(4, 0, ranks_per_worker=1), req, clients=clients)
    for dep in (_worker(4, 0), _worker(4, 60, ranks_per_worker=1)):
        raw = run(dep, req, clients=clients)
        for name in ("t_arrive", "t_first", "t_done", "preemptions", "itl_hist", "timeline"):
            np.testing.assert_array_equal(getattr(raw, name), getattr(base, name))


def test_timeout_is_checked_and_off_by_default():
    assert all(p.adp_balance_timeout_iters == 0 for p in ENGINE_DEFAULTS.values())
    with pytest.raises(ServoptError, match="adp_balance_timeout_iters"):
        ENGINE_DEFAULTS["trtllm"].with_overrides(adp_balance_timeout_iters=-1)
