"""The simulator against queueing theory: M/D/1 (Pollaczek-Khinchine), M/M/1 tail, M/M/c (Erlang C).

Requests are single-token (osl 1) so a request's service is one prefill pass; service times come
from synthetic step tables. Seeds are fixed: the figures are deterministic.
"""

import math

import numpy as np
import pytest
from tests.simulate.synthetic import one_at_a_time, tables

from servopt.simulate.engine import run
from servopt.simulate.workload import Requests

N = 200_000
WARMUP = N // 10


def poisson_arrivals(rate_per_ms: float, n: int, seed: int) -> np.ndarray:
    gaps = np.random.default_rng(seed).exponential(1.0 / rate_per_ms, n)
    gaps[0] = 0.0
    return np.cumsum(gaps)


@pytest.mark.parametrize("rho", [0.5, 0.8, 0.9])
def test_md1_mean_wait_matches_pollaczek_khinchine(rho):
    service_ms = 2.0
    arrivals = poisson_arrivals(rho / service_ms, N, seed=1)
    req = Requests(arrivals, np.full(N, 100, dtype=np.int64), np.ones(N, dtype=np.int64))
    raw = run(one_at_a_time(1, tables(per_pass_ms=service_ms)), req)
    wait = (raw.t_first - raw.t_arrive - service_ms)[WARMUP:]
    expected = rho * service_ms / (2.0 * (1.0 - rho))
    assert wait.mean() == pytest.approx(expected, rel=0.03)


def test_mm1_p99_response_matches_exponential_tail():
    # Exponential service: prompt lengths geometric with a large mean, service linear in tokens.
    rho, mean_tokens, ms_per_token = 0.8, 2000.0, 0.001
    rng = np.random.default_rng(7)
    isl = rng.geometric(1.0 / mean_tokens, N).astype(np.int64)
    mean_service = float(isl.mean()) * ms_per_token
    arrivals = poisson_arrivals(rho / mean_service, N, seed=8)
    raw = run(
        one_at_a_time(1, tables(per_token_ms=ms_per_token)), Requests(arrivals, isl, np.ones(N, np.int64))
    )
    response = (raw.t_first - raw.t_arrive)[WARMUP:]
    mu, lam = 1.0 / mean_service, rho / mean_service
    expected_p99 = math.log(100.0) / (mu - lam)
    assert np.percentile(response, 99) == pytest.approx(expected_p99, rel=0.05)


def erlang_c_wait(c: int, lam: float, mu: float) -> float:
    """Mean wait in queue of M/M/c."""
    a = lam / mu
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam)


def test_mmc_mean_wait_matches_erlang_c():
    c, rho, mean_tokens, ms_per_token = 4, 0.85, 2000.0, 0.001
    rng = np.random.default_rng(11)
    isl = rng.geometric(1.0 / mean_tokens, N).astype(np.int64)
    mean_service = float(isl.mean()) * ms_per_token
    lam = rho * c / mean_service
    arrivals = poisson_arrivals(lam, N, seed=12)
    raw = run(
        one_at_a_time(c, tables(per_token_ms=ms_per_token)), Requests(arrivals, isl, np.ones(N, np.int64))
    )
    wait = (raw.t_first - raw.t_arrive - isl * ms_per_token)[WARMUP:]
    assert wait.mean() == pytest.approx(erlang_c_wait(c, lam, 1.0 / mean_service), rel=0.03)


def test_pushing_to_least_loaded_waits_longer_than_a_shared_queue():
    # Join-the-shortest-queue at arrival cannot beat a shared queue (work-conserving M/M/c).
    c, rho = 4, 0.85
    rng = np.random.default_rng(3)
    isl = rng.geometric(1.0 / 2000.0, 50_000).astype(np.int64)
    arrivals = poisson_arrivals(rho * c / (isl.mean() * 0.001), 50_000, seed=4)
    req = Requests(arrivals, isl, np.ones(50_000, np.int64))
    shared = run(one_at_a_time(c, tables(per_token_ms=0.001), pull=True), req)
    pushed = run(one_at_a_time(c, tables(per_token_ms=0.001), pull=False), req)
    assert (pushed.t_first - pushed.t_arrive).mean() > (shared.t_first - shared.t_arrive).mean()


def test_closed_loop_littles_law():
    # N clients, no think time, service S one at a time: throughput 1/S, response N*S.
    clients, service_ms, n = 8, 3.0, 4000
    req = Requests(np.zeros(n), np.full(n, 10, np.int64), np.ones(n, np.int64))
    raw = run(one_at_a_time(1, tables(per_pass_ms=service_ms)), req, clients=clients)
    response = (raw.t_done - raw.t_arrive)[clients:-clients]
    assert response.mean() == pytest.approx(clients * service_ms, rel=1e-9)
    assert raw.t_done.max() == pytest.approx(n * service_ms, rel=1e-9)
