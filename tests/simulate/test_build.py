"""The disaggregated KV-transfer model: one NVLink domain, the network, and two systems."""

import pytest
from tests.simulate.conftest import real_setup

from servopt.models.parallel import Layout
from servopt.simulate.build import WorkerPlan, kv_transfer_model
from servopt.simulate.policy import engine_policy


def plans(prefill_workers: int) -> list[WorkerPlan]:
    policy = engine_policy("trtllm")
    return [
        WorkerPlan("prefill", Layout(1, 1, 1, 1, 1), prefill_workers, policy),
        WorkerPlan("decode", Layout(2, 1, 1, 1, 1), 1, policy),
    ]


def test_kv_between_two_systems_crosses_the_slower_network():
    _, h200 = real_setup("QWEN3_32B", "trtllm", "h200_sxm")
    _, h100 = real_setup("QWEN3_32B", "trtllm", "h100_sxm")
    within = kv_transfer_model(h200, plans(2))  # 4 GPUs: one NVLink domain
    across_nodes = kv_transfer_model(h200, plans(20))  # 22 GPUs: the scale-out network
    two_systems = kv_transfer_model(h200, plans(2), h100)
    assert within[1] < across_nodes[1]
    # Two systems share no NVLink domain, however small the replica.
    slower = min(h200.system.node.network_bw_bytes_per_s, h100.system.node.network_bw_bytes_per_s)
    assert two_systems[1] == pytest.approx(across_nodes[1] * h200.system.node.network_bw_bytes_per_s / slower)
    assert two_systems[0] == pytest.approx(
        1000.0 * max(h200.system.empirical.p2p_latency_s, h100.system.empirical.p2p_latency_s)
    )
    # The same system named as the decode system changes nothing.
    assert kv_transfer_model(h200, plans(2), h200) == within
