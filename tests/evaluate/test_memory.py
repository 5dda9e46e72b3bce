"""Memory per GPU: the vectorised model against a scalar transcription, and the KV budget rules."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from servopt.evaluate.memory import (
    ACTIVATION_COEFFICIENTS,
    kv_budget_rule,
    memory_usage,
    sglang_mem_fraction_static,
    vllm_memory_utilization,
)
from servopt.hardware import load_system
from servopt.models.registry import resolve_model

SYSTEM = load_system("h200_sxm")
GIB = 1 << 30


def _naive(
    arch,
    backend,
    weights,
    tp,
    pp,
    dp,
    ep,
    batch,
    tokens,
    kv_seq,
    kv_bytes,
    nextn,
    mtp_scaled,
    frac,
    of_free,
    reserved,
):
    """One candidate, written out from the peer's description (reference §4.4)."""
    coeff = ACTIVATION_COEFFICIENTS[backend][arch.family][min(tp, 8)]
    width = arch.hidden_size if arch.family == "mla_moe" else arch.num_heads * arch.head_dim
    act = 2 * tokens * width * coeff
    if arch.family == "mla_moe":
        act += tokens * arch.hidden_size * dp * arch.num_experts * arch.topk / ep / 128 * 4
    act = max(act, (90 if backend == "sglang" else 70) * 2**20)
    if nextn:
        if mtp_scaled is None:
            act *= nextn + 1
        else:
            share = min(max(mtp_scaled, 0), tokens)
            act *= (tokens - share + share * (nextn + 1)) / tokens
    if backend == "sglang":
        act *= 1.15
    if arch.family == "mla_moe":
        per_token = arch.num_layers * 576 * kv_bytes
    else:
        per_token = math.ceil(arch.num_kv_heads / tp) * arch.head_dim * arch.num_layers * 2 * kv_bytes
    kv = batch * kv_seq * per_token
    nccl = SYSTEM.empirical.nccl_mem_bytes[min(tp, 8)]
    other = SYSTEM.empirical.other_mem_bytes * (1.2 if backend == "sglang" else 1.0)
    total = (weights / pp + act + kv + nccl + other) / GIB
    cap = SYSTEM.gpu.mem_capacity_bytes / GIB
    oom = total >= cap
    non_kv = total - kv / GIB
    scale = (1 - reserved) * 0.98
    budget = (cap - non_kv) * frac * scale if of_free else cap * frac * scale - non_kv
    return total, oom, (not oom) and kv / GIB > budget


@pytest.mark.parametrize("backend", ["trtllm", "vllm", "sglang"])
@pytest.mark.parametrize("model", ["QWEN3_32B", "QWEN3_235B_A22B", "DEEPSEEK_V3"])
def test_memory_matches_scalar_reference(model, backend):
    rng = random.Random(f"{model}{backend}")
    arch = resolve_model(model)
    n = 40
    tp = np.array([rng.choice([1, 2, 4, 8, 16]) for _ in range(n)])
    pp = np.array([rng.choice([1, 2]) for _ in range(n)])
    dp = np.array([rng.choice([1, 2, 8]) for _ in range(n)])
    ep = np.array([rng.choice([1, 4, 8]) for _ in range(n)])
    batch = np.array([rng.choice([1, 16, 256]) for _ in range(n)])
    tokens = np.array([rng.choice([1, 64, 8192, 64000]) for _ in range(n)])
    kv_seq = np.array([rng.choice([1001, 5000, 9000]) for _ in range(n)])
    weights = np.array([rng.uniform(1e9, 3e11) for _ in range(n)])
    nextn = rng.choice([0, 1, 2])
    mtp = np.array([rng.choice([0, 1, 63]) for _ in range(n)])
    rule = kv_budget_rule(backend, SYSTEM, "0.24.0", static=True, tp=tp, pp=pp, dp=dp)
    mem = memory_usage(
        arch, backend, SYSTEM, weights_bytes=weights, tp=tp, pp=pp, dp=dp, moe_ep=ep, batch=batch,
        num_tokens=tokens, kv_seq_tokens=kv_seq, kv_quant="fp8", nextn=nextn, mtp_scaled_tokens=mtp,
        kv_fraction=rule.fraction, kv_fraction_of_free=rule.of_free, kv_reserved=rule.reserved,
    )  # fmt: skip
    frac = np.broadcast_to(rule.fraction, (n,))
    for i in range(n):
        total, oom, kv_oom = _naive(
            arch, backend, weights[i], int(tp[i]), int(pp[i]), int(dp[i]), int(ep[i]), int(batch[i]), int(tokens[i]),
            int(kv_seq[i]), 1.0, nextn, int(mtp[i]), float(frac[i]), rule.of_free, rule.reserved,
        )  # fmt: skip
        assert mem.total[i] == pytest.approx(total, rel=1e-12)
        assert bool(mem.oom[i]) == oom and bool(mem.kv_oom[i]) == kv_oom


def test_kv_budget_rules_per_backend():
    trt = kv_budget_rule("trtllm", SYSTEM, None, static=True)
    assert (trt.fraction, trt.of_free, trt.reserved) == (0.9, True, 0.015)
    assert kv_budget_rule("vllm", SYSTEM, "0.19.1", static=False).fraction == 0.9
    assert (
        kv_budget_rule("vllm", SYSTEM, "0.24.0", static=False).fraction
        == vllm_memory_utilization("0.24")
        == 0.92
    )
    assert kv_budget_rule("sglang", SYSTEM, None, static=False).fraction == 0.88
    static = kv_budget_rule(
        "sglang", SYSTEM, None, static=True, tp=np.array([1, 8]), pp=1, dp=np.array([1, 8])
    )
    assert list(static.fraction) == [
        sglang_mem_fraction_static(SYSTEM.gpu.mem_capacity_bytes, 1, 1, 1),
        sglang_mem_fraction_static(SYSTEM.gpu.mem_capacity_bytes, 8, 1, 8),
    ]


@pytest.mark.peer
def test_sglang_static_fraction_matches_peer():
    backend = pytest.importorskip("aiconfigurator_core.sdk.backends.sglang_backend")
    for cap in (24 << 30, 48 << 30, 80 << 30, SYSTEM.gpu.mem_capacity_bytes, 180 << 30):
        for tp, pp, dp in ((1, 1, 1), (4, 1, 1), (8, 2, 1), (1, 1, 8), (2, 1, 4)):
            assert sglang_mem_fraction_static(cap, tp, pp, dp) == backend.derive_sglang_mem_fraction_static(
                cap, tp, pp, dp
            )


def test_sliding_window_kv_is_capped_at_the_window():
    """GPT-OSS: sliding layers hold at most the window's keys, full layers the whole sequence."""
    from servopt.evaluate.memory import kv_bytes_per_sequence, kv_bytes_per_token

    arch = resolve_model("GPT_OSS_120B")
    tp = np.array([1, 4, 8])
    seq = np.array([50, 128, 5000])
    got = kv_bytes_per_sequence(arch, tp, "fp8", seq)
    for i in range(3):
        kv_heads = -(-arch.num_kv_heads // int(tp[i]))
        per_layer_token = kv_heads * arch.head_dim * 2 * 1.0
        full = arch.num_layers - arch.num_sliding_layers
        naive = per_layer_token * (full * int(seq[i]) + arch.num_sliding_layers * min(int(seq[i]), 128))
        assert got[i] == naive
    # Within the window every layer grows: the linear rule.
    assert got[0] == 50 * kv_bytes_per_token(arch, tp, "fp8")[0]
