"""PerfDatabase queries: broadcasting, slice keys as arrays, provenance, SOL mode, errors."""

from __future__ import annotations

import numpy as np
import pytest

from servopt.errors import ServoptError, UnknownNameError
from servopt.perf_db.database import PROV_SOL, open_database


def test_slice_key_arguments_accept_arrays(h200):
    # Two tp layouts in one batch: per-GPU heads and kv heads differ per row.
    heads = np.array([64, 32, 16, 8])
    kv_heads = np.array([8, 4, 2, 1])
    batched = h200.generation_attention_ms("bfloat16", 16, 4096, heads, kv_heads, 128)
    single = [
        h200.generation_attention_ms("bfloat16", 16, 4096, int(n), int(k), 128)
        for n, k in zip(heads, kv_heads, strict=True)
    ]
    np.testing.assert_array_equal(batched, np.ravel(single))


def test_broadcasting_and_shape(h200):
    b = np.arange(1, 7).reshape(2, 3)
    out = h200.context_attention_ms("bfloat16", "bfloat16", b, 1024, 0, 32, 8, 128)
    assert out.shape == (2, 3)
    assert (np.diff(out.ravel()) > 0).all()  # more batch, more time


def test_provenance_codes(h200):
    lat, prov = h200.moe_ms(
        "fp8_block", "power_law_1.01", 8, 256, 7168, 2048, 1, 8, [1, 100, 1_000_000], provenance=True
    )
    assert prov.tolist() == [0, 1, 3]
    assert (lat > 0).all()


def test_prefix_reuse_costs_less(h200):
    full = h200.context_attention_ms("bfloat16", "bfloat16", 1, 4096, 0, 32, 8, 128)
    cached = h200.context_attention_ms("bfloat16", "bfloat16", 1, 2048, 2048, 32, 8, 128)
    assert 0 < cached < full


def test_missing_nan_mode_and_raise_mode(h200):
    lat, prov = h200.generation_attention_ms("fp8", 1, 100, 32, 3, 128, provenance=True, missing="nan")
    assert np.isnan(lat) and prov == -1
    with pytest.raises(ServoptError, match=r"generation_attention.*no measured slice"):
        h200.generation_attention_ms("fp8", 1, 100, 32, 3, 128)


def test_unknown_names_list_the_allowed_ones(h200):
    with pytest.raises(UnknownNameError, match="allowed: bfloat16, fp8"):
        h200.context_attention_ms("fp4", "bfloat16", 1, 10, 0, 8, 8, 128)
    with pytest.raises(UnknownNameError, match="all_gather"):
        h200.nccl_ms("broadcast", "half", 8, 1000)
    with pytest.raises(UnknownNameError, match="unknown system"):
        open_database("h300", "trtllm")
    with pytest.raises(UnknownNameError, match="unknown backend"):
        open_database("h200_sxm", "tensorrt")
    with pytest.raises(UnknownNameError, match="queryable"):
        open_database("h200_sxm", "trtllm", "0.0.1")


def test_version_aliases(h200, perf_cache):
    assert h200.version == "1.3.0rc20"
    nxt = open_database("h200_sxm", "trtllm", "next", cache_dir=str(perf_cache))
    assert nxt.version == "1.3.0rc23"
    # rc23 ships only MoE rows; everything else back-fills from rc20.
    assert nxt.table_info["gemm_perf"]["sources"][0].startswith("fallback:")
    assert nxt.gemm_ms("fp8", 64, 4096, 4096) == pytest.approx(h200.gemm_ms("fp8", 64, 4096, 4096))


def test_collectives_are_free_on_one_gpu_and_scale_past_the_node(h200):
    lat = h200.custom_allreduce_ms([1, 8, 16], 2**20)
    assert lat[0] == 0.0
    # Past 8 GPUs the ring leaves NVLink (450 GB/s) for the network (50 GB/s): ~9x slower.
    assert 5 < lat[2] / lat[1] < 12


def test_sol_mode_every_method(perf_cache):
    db = open_database("h200_sxm", "trtllm", sol=True, cache_dir=str(perf_cache))
    calls = [
        db.gemm_ms("fp8", 128, 4096, 4096, provenance=True),
        db.context_attention_ms("bfloat16", "fp8", 2, 1000, 0, 32, 8, 128, provenance=True),
        db.generation_attention_ms("fp8", 8, 1000, 32, 8, 128, provenance=True),
        db.context_mla_ms("bfloat16", "fp8", 1, 1000, 0, 16, provenance=True),
        db.generation_mla_ms("fp8", 8, 1000, 16, provenance=True),
        db.mla_module_ms("generation", "fp8_block", "fp8", 8, 1000, 0, 16, provenance=True),
        db.mla_bmm_ms("pre", "fp8", 64, 16, provenance=True),
        db.moe_ms("fp8", "uniform", 8, 128, 4096, 1536, 1, 8, 512, provenance=True),
        db.custom_allreduce_ms(8, 2**20, provenance=True),
        db.nccl_ms("all_gather", "half", 8, 2**20, provenance=True),
        db.compute_scale_ms(64, 4096, provenance=True),
    ]
    for lat, prov in calls:
        assert np.all(np.asarray(lat) > 0) and np.all(prov == PROV_SOL)
    # The roofline is a lower bound of the measured latency.
    measured = open_database("h200_sxm", "trtllm", cache_dir=str(perf_cache))
    assert calls[0][0] <= measured.gemm_ms("fp8", 128, 4096, 4096)
    # 2 * 128 * 4096 * 4096 FLOP at 1978 TFLOP/s vs 1*(128*4096*2 + 4096^2) bytes at 4.8 TB/s.
    expect = max(2 * 128 * 4096 * 4096 / 1978e12, (128 * 4096 * 2 + 4096 * 4096) / 4.8e12) * 1e3
    assert float(calls[0][0]) == pytest.approx(expect, rel=1e-9)


def test_roofline_only_system_answers_everything():
    db = open_database("a100_pcie", "vllm")
    assert db.roofline_only and db.sol
    lat, prov = db.context_attention_ms("bfloat16", "bfloat16", 1, 2048, 0, 32, 8, 128, provenance=True)
    assert lat > 0 and prov == PROV_SOL
    assert db.mem_op_ms(1e6) == pytest.approx(1e6 / db.system.gpu.mem_bw_bytes_per_s * 1e3)


def test_analytic_ops_use_the_empirical_constants(h200):
    spec = h200.system
    expect = (1e6 / (spec.gpu.mem_bw_bytes_per_s * 0.8) + 3e-6) * 1e3
    assert h200.mem_op_ms(1e6) == pytest.approx(expect)
    assert h200.p2p_ms(0) == pytest.approx(spec.empirical.p2p_latency_s * 1e3)
