"""Defaults: the seed's where it gives them, the peer's (aiconfigurator 0.12.0) for the rest."""

from __future__ import annotations

import logging
import warnings

import pytest

from servopt.config import default_experiments, defaults

from .conftest import DENSE, MOE


def test_seed_defaults():
    top = defaults.top_level_defaults()
    assert top == {
        "backend_name": "trtllm",
        "backend_version": None,
        "isl": 4000,
        "osl": 1000,
        "ttft": 1000.0,
        "tpot": 40.0,  # the seed's; the peer's own Task default is 50 ms
        "enable_wide_ep": False,
        "robust": False,  # plan at the predictions, not the error band's pessimistic end
    }


def test_default_config_blocks():
    agg = defaults.default_config(serving_mode="agg", arch=DENSE, backend="trtllm", system="h200_sxm")
    assert agg["nextn"] == 0 and agg["nextn_accept_rates"] == [0.85, 0, 0, 0, 0]
    assert agg["worker_config"]["num_gpu_per_worker"] == agg["worker_config"]["tp_list"] == [1, 2, 4, 8]
    assert (
        agg["worker_config"]["gemm_quant_mode"] == "float16"
        and agg["worker_config"]["comm_quant_mode"] == "half"
    )
    disagg = defaults.default_config(serving_mode="disagg", arch=MOE, backend="trtllm", system="h200_sxm")
    assert disagg["decode_worker_config"]["moe_ep_list"] == [1, 2, 4, 8, 16]
    assert disagg["decode_worker_config"]["gemm_quant_mode"] == "fp8_block"
    assert disagg["replica_config"] == {
        "num_gpu_per_replica": [1, 2, 4, 8, *range(16, 129, 8)],
        "max_gpu_per_replica": 128,
        "max_prefill_worker": 32,
        "max_decode_worker": 32,
    }
    assert disagg["advanced_tuning_config"] == {
        "prefill_latency_correction_scale": 1.1,
        "decode_latency_correction_scale": 1.08,
        "prefill_max_batch_size": 1,
        "decode_max_batch_size": 512,
    }
    dense_rack = defaults.default_config(serving_mode="agg", arch=DENSE, backend="vllm", system="gb200")
    assert dense_rack["worker_config"]["tp_list"] == [1, 2, 4, 8, 16]


def _peer_task(**kwargs):
    task_v2 = pytest.importorskip(
        "aiconfigurator.sdk.task_v2", reason="the peer (aiconfigurator) is not installed"
    )
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return task_v2.Task(**kwargs)
    finally:
        logging.disable(logging.NOTSET)


_DIMS = {
    "num_gpu_per_worker": "num_gpu",
    "tp_list": "tp",
    "pp_list": "pp",
    "dp_list": "dp",
    "moe_tp_list": "moe_tp",
    "moe_ep_list": "moe_ep",
}


@pytest.mark.peer
@pytest.mark.parametrize(
    ("model", "hf_id", "system", "backend"),
    [
        ("QWEN3_32B", "Qwen/Qwen3-32B", "gb200", "trtllm"),  # dense, NVL72 widens tp to 16
        ("QWEN3_30B_A3B", "Qwen/Qwen3-30B-A3B", "h200_sxm", "sglang"),  # MoE (no large-EP data)
    ],
)
def test_default_search_space_equals_the_peers(model, hf_id, system, backend):
    total = 512
    agg, disagg = default_experiments(model, total, system, backend=backend)
    peer_agg = _peer_task(
        serving_mode="agg", model_path=hf_id, system_name=system, backend_name=backend, total_gpus=total
    )
    peer = _peer_task(
        serving_mode="disagg",
        prefill_model_path=hf_id,
        decode_model_path=hf_id,
        prefill_system_name=system,
        decode_system_name=system,
        prefill_backend_name=backend,
        decode_backend_name=backend,
        total_gpus=total,
    )
    for key, dim in _DIMS.items():
        assert list(getattr(agg.worker("agg"), key)) == getattr(peer_agg, f"agg_{dim}_candidates"), key
        for role in ("prefill", "decode"):
            assert list(getattr(disagg.worker(role), key)) == getattr(peer, f"{role}_{dim}_candidates"), (
                role,
                key,
            )
    w = agg.worker("agg")
    assert (
        w.gemm_quant_mode,
        w.moe_quant_mode,
        w.kvcache_quant_mode,
        w.fmha_quant_mode,
        w.comm_quant_mode,
    ) == tuple(
        m.name.replace("bfloat16", "float16")
        for m in (
            peer_agg.gemm_quant_mode,
            peer_agg.moe_quant_mode,
            peer_agg.kvcache_quant_mode,
            peer_agg.fmha_quant_mode,
            peer_agg.comm_quant_mode,
        )
    )
    assert (agg.isl, agg.osl, agg.ttft, agg.config.nextn) == (
        peer_agg.isl,
        peer_agg.osl,
        peer_agg.ttft,
        peer_agg.nextn,
    )
    assert list(disagg.replica.num_gpu_per_replica) == peer.num_gpu_per_replica
    assert disagg.replica.max_gpu_per_replica == peer.max_gpu_per_replica
    assert (disagg.replica.max_prefill_worker, disagg.replica.max_decode_worker) == (
        peer.max_prefill_workers,
        peer.max_decode_workers,
    )
    tuning = disagg.tuning
    assert (tuning.prefill_latency_correction_scale, tuning.decode_latency_correction_scale) == (
        peer.prefill_latency_correction,
        peer.decode_latency_correction,
    )
    assert (tuning.prefill_max_batch_size, tuning.decode_max_batch_size) == (
        peer.prefill_max_batch_size,
        peer.decode_max_batch_size,
    )


def test_large_ep_eps_follow_the_data():
    from servopt.models.registry import resolve_model

    eps = _large_ep_eps(resolve_model("DEEPSEEK_V3"), "trtllm", "h200_sxm")
    assert eps == {role: [16, 32, 64, 128, 256] for role in ("agg", "prefill", "decode")}
    assert _large_ep_eps(resolve_model("QWEN3_235B_A22B"), "trtllm", "h200_sxm") == {}
    assert _large_ep_eps(DENSE, "trtllm", "h200_sxm") == {}


def test_large_ep_ladder_and_replica_budget():
    from servopt.models.registry import resolve_model

    arch = resolve_model("DEEPSEEK_V3")
    cov = {role: [16, 32, 64] for role in ("agg", "prefill", "decode")}
    d = defaults.default_config(
        serving_mode="disagg", arch=arch, backend="trtllm", system="h200_sxm", large_ep=cov
    )
    assert d["prefill_worker_config"]["moe_ep_list"] == [1, 2, 4, 8, 16, 32]
    assert d["decode_worker_config"]["dp_list"] == [1, 2, 4, 8, 16, 32, 64]
    assert d["decode_worker_config"]["moe_tp_list"] == [1, 2, 4, 8, 16]
    assert d["replica_config"]["num_gpu_per_replica"] is None
    assert d["replica_config"]["max_gpu_per_replica"] == 512
    a = defaults.default_config(
        serving_mode="agg", arch=arch, backend="trtllm", system="h200_sxm", large_ep=cov
    )
    assert a["worker_config"]["num_gpu_per_worker"] == [1, 2, 4, 8, 16, 32, 64]
    # The seed's enable_wide_ep keeps its explicit lists.
    w = defaults.default_config(
        serving_mode="disagg",
        arch=arch,
        backend="trtllm",
        system="h200_sxm",
        enable_wide_ep=True,
        large_ep=cov,
    )
    assert w["decode_worker_config"]["num_gpu_per_worker"] == [4, 8, 16, 32, 64]
    assert w["decode_worker_config"]["moe_tp_list"] == [1]


@pytest.mark.peer
@pytest.mark.parametrize("backend", ["trtllm", "sglang", "vllm"])
@pytest.mark.parametrize("serving_mode", ["agg", "disagg"])
def test_large_ep_search_space_equals_the_peers(serving_mode, backend):
    """DeepSeek-V3 on h200_sxm: on every backend the data covers EP 16..256 (SGLang through the
    older versions' wide-EP tables), so both add the ladder."""
    total = 512
    agg, disagg = default_experiments("DEEPSEEK_V3", total, "h200_sxm", backend=backend)
    hf = "deepseek-ai/DeepSeek-V3"
    if serving_mode == "agg":
        peer = _peer_task(
            serving_mode="agg", model_path=hf, system_name="h200_sxm", total_gpus=total, backend_name=backend
        )
        for key, dim in _DIMS.items():
            assert list(getattr(agg.worker("agg"), key)) == getattr(peer, f"agg_{dim}_candidates"), key
        return
    peer = _peer_task(
        serving_mode="disagg",
        prefill_model_path=hf,
        decode_model_path=hf,
        prefill_system_name="h200_sxm",
        decode_system_name="h200_sxm",
        total_gpus=total,
        prefill_backend_name=backend,
        decode_backend_name=backend,
    )
    for key, dim in _DIMS.items():
        for role in ("prefill", "decode"):
            assert list(getattr(disagg.worker(role), key)) == getattr(peer, f"{role}_{dim}_candidates"), (
                role,
                key,
            )
    assert disagg.replica.num_gpu_per_replica == peer.num_gpu_per_replica  # None: any size up to the cap
    assert disagg.replica.max_gpu_per_replica == peer.max_gpu_per_replica


def test_ladder_on_every_backend_with_a_large_ep_graph():
    """DeepSeek-V3's large EP is covered and modelled on SGLang and vLLM too; plain MoE families
    have no large-EP graph on any backend, so no ladder."""
    from servopt.models.registry import resolve_model

    for backend in ("sglang", "vllm"):
        eps = _large_ep_eps(resolve_model("DEEPSEEK_V3"), backend, "h200_sxm")
        assert eps == {role: [16, 32, 64, 128, 256] for role in ("agg", "prefill", "decode")}
        assert _large_ep_eps(resolve_model("QWEN3_235B_A22B"), backend, "h200_sxm") == {}


def _large_ep_eps(arch, backend, system):
    from servopt.config.catalog import DefaultCatalog

    return DefaultCatalog().large_ep_eps(arch, backend, system, None, None)
