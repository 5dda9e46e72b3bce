"""A record's benchmark as the replay draws it: each load's arrivals and request count per replica."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from servopt.calibrate.public_csv import read_measurements
from servopt.calibrate.replay import Replay, benchmark_requests
from servopt.calibrate.setups import to_setup

SAMPLE = Path(__file__).parent / "data" / "public_sample.csv"


@pytest.fixture(scope="module")
def sample():
    return {r.row: r for r in read_measurements(SAMPLE)}


def test_burst_and_max_throughput_arrive_at_once_split_over_replicas(sample):
    burst = to_setup(sample[10])  # dstack: 1024 requests at t=0 on one 8-GPU replica
    req = benchmark_requests(burst, clients=0)
    assert len(req.isl) == 1024 and not req.arrival_ms.any()
    two = dataclasses.replace(burst, replicas=2)
    assert len(benchmark_requests(two, clients=0).isl) == 512
    bench = to_setup(sample[2])  # trtllm-bench throughput: the documented 3000
    assert len(benchmark_requests(bench, clients=0).isl) == 3000


def test_open_loop_is_poisson_at_the_replicas_share_of_the_rate(sample):
    s = dataclasses.replace(to_setup(sample[3]), num_requests=4000, request_rate=8.0, replicas=2)
    req = benchmark_requests(s, clients=0)
    gaps_s = np.diff(req.arrival_ms) / 1000.0
    assert len(req.isl) == 2000 and req.arrival_ms[0] == 0.0
    # 4 req/s per replica; exponential gaps have a coefficient of variation of 1.
    assert gaps_s.mean() == pytest.approx(0.25, rel=0.1) and gaps_s.std() / gaps_s.mean() == pytest.approx(
        1, rel=0.1
    )


def test_only_a_closed_loop_has_clients(sample):
    assert Replay(to_setup(sample[13])).clients == 4
    open_loop = Replay(to_setup(sample[3]))
    assert open_loop.clients == 0
    out = open_loop.run()
    # 2 QPS of 467/256 on tp4 Llama-3.1-70B is far from saturation: throughput ~ rate x osl / GPUs.
    assert out.output_tok_s_per_gpu == pytest.approx(2.0 * 256 / 4, rel=0.15)


def test_disagg_replay_runs_both_pools(sample):
    # The sample's InferenceX xPyD row without MTP, at 12 clients: 1 prefill + 6 decode workers.
    record = dataclasses.replace(sample[7], spec="none", spec_nextn=None, concurrency=12)
    replay = Replay(to_setup(record))
    roles = {k.role: k for k in replay.deployment.kinds}
    assert set(roles) == {"prefill", "decode"}
    assert roles["prefill"].count == 1 * 4 and roles["decode"].count == 6  # attention-DP lanes
    assert replay.deployment.gpus == 52 and replay.clients == 12
    assert len(replay.requests.isl) == 120  # InferenceX: 10 x CONC requests
    out = replay.run()
    assert all(np.isfinite(v) and v > 0 for v in (out.ttft_ms, out.tpot_ms, out.output_tok_s_per_gpu))
    # The transfer model of the system spec is in the deployment (a 52-GPU replica crosses nodes).
    assert replay.deployment.xfer_fixed_ms > 0 and replay.deployment.xfer_ms_per_token > 0
