"""GPU memory per worker candidate: weights, activations, KV cache, communicator buffers, runtime.

The accounting is the peer's (reference §4.4), vectorised over candidates:

- weights: every op's weight bytes over the pipeline split;
- activations: ``2 * tokens * (heads * head_dim) * c_family(min(tp, 8))`` with a floor, plus
  DeepSeek's MoE block-scale workspace; decode tokens of a speculative step count ``nextn + 1``
  times;
- KV cache: ``batch * bytes_per_sequence`` (not split by pp: every stage holds all of it;
  sliding-window layers hold at most the window);
- NCCL buffers keyed by ``min(tp, 8)`` and a fixed runtime overhead from the system spec.

Two checks remove a candidate: the total reaches the GPU's capacity, or the KV cache exceeds the
budget the serving framework would grant it (TRT-LLM: a fraction of the memory left after
everything else; vLLM and SGLang: a fraction of the whole GPU minus everything else).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from servopt.hardware import SystemSpec
from servopt.models.arch import ModelArch
from servopt.models.ops import quant_bytes
from servopt.models.sliding_window import prices_sliding_window

GIB = 1 << 30
MIB = 1 << 20

# Activation bytes per (token x attention width x 2 bytes), keyed by min(tp, 8): measured on
# TRT-LLM (the peer reuses them for vLLM); SGLang's Python runtime holds more.
_TRTLLM_COEFFICIENTS = {
    "dense": {1: 11.0, 2: 6.5, 4: 5.0, 8: 5.0},
    "moe": {1: 22.0, 2: 13.0, 4: 10.0, 8: 10.0},
    "mla_moe": {1: 22.0, 2: 13.0, 4: 10.0, 8: 10.0},
}
_SGLANG_COEFFICIENTS = {
    "dense": {1: 14.0, 2: 8.5, 4: 6.5, 8: 6.5},
    "moe": {1: 28.0, 2: 17.0, 4: 13.0, 8: 13.0},
    "mla_moe": {1: 28.0, 2: 17.0, 4: 13.0, 8: 13.0},
}
ACTIVATION_COEFFICIENTS = {
    "trtllm": _TRTLLM_COEFFICIENTS,
    "vllm": _TRTLLM_COEFFICIENTS,
    "sglang": _SGLANG_COEFFICIENTS,
}

# Activation floor per GPU.
MIN_ACTIVATION_BYTES = {"trtllm": 70 * MIB, "vllm": 70 * MIB, "sglang": 90 * MIB}

# SGLang's extra activation and runtime overhead (Python execution, CUDA graphs).
ACTIVATION_OVERHEAD_FRAC = {"trtllm": 0.0, "vllm": 0.0, "sglang": 0.15}
OTHERS_OVERHEAD_FRAC = {"trtllm": 0.0, "vllm": 0.0, "sglang": 0.20}

# DeepSeek-style MoE keeps fp32 block scales (one per 128 elements) for every routed copy of a token.
MOE_WORKSPACE_BLOCK = 128
MOE_WORKSPACE_SCALE_BYTES = 4

# KV-cache budget rules: the fraction of memory the framework gives the KV cache by default, plus
# TRT-LLM's reserved slice and the peer's tolerance.
TRTLLM_FREE_GPU_MEMORY_FRACTION = 0.9
TRTLLM_KV_RESERVED_FRACTION = 0.015
KV_CACHE_TOLERANCE = 0.02
VLLM_GPU_MEMORY_UTILIZATION = {"0.14": 0.9, "0.19": 0.9, "0.22": 0.92, "0.24": 0.92}
VLLM_DEFAULT_GPU_MEMORY_UTILIZATION = 0.92
SGLANG_FALLBACK_MEM_FRACTION_STATIC = 0.88

# TRT-LLM sizes activations for its engine token budget in aggregated serving.
TRTLLM_MAX_NUM_TOKENS = 8192


class Memory(NamedTuple):
    """Per-candidate memory in GiB and the two out-of-memory verdicts."""

    weights: np.ndarray
    activations: np.ndarray
    kvcache: np.ndarray
    nccl: np.ndarray
    others: np.ndarray
    total: np.ndarray
    oom: np.ndarray  # total reaches the GPU capacity
    kv_oom: np.ndarray  # KV cache exceeds the framework's budget

    @property
    def fits(self) -> np.ndarray:
        return ~(self.oom | self.kv_oom)


def kv_bytes_per_token(arch: ModelArch, tp: np.ndarray, kv_quant: str) -> np.ndarray:
    """KV-cache bytes per token on one GPU, all layers (MLA: one latent vector, not split by tp)."""
    b = quant_bytes("kvcache_quant_mode", kv_quant)
    if arch.family == "mla_moe":
        dims = arch.mla
        width = (dims.kv_lora_rank + dims.qk_rope_head_dim) if dims else 576
        return np.full(np.shape(tp), float(arch.num_layers * width * b))
    kv_heads = -(-arch.num_kv_heads // np.asarray(tp))
    return (kv_heads * arch.head_dim * arch.num_layers * 2 * b).astype(np.float64)


def kv_bytes_per_sequence(
    arch: ModelArch, tp: np.ndarray, kv_quant: str, seq_tokens: np.ndarray
) -> np.ndarray:
    """KV-cache bytes of one sequence of ``seq_tokens`` on one GPU.

    Sliding-window layers (GPT-OSS) keep at most the window's keys, so their share stops growing
    at ``sliding_window`` tokens while the full-attention layers keep growing.
    """
    seq = np.asarray(seq_tokens, dtype=np.float64)
    per_token = kv_bytes_per_token(arch, tp, kv_quant)
    if not prices_sliding_window(arch) or arch.family == "mla_moe":
        return seq * per_token
    per_layer_token = per_token / arch.num_layers
    full_layers = arch.num_layers - arch.num_sliding_layers
    capped = np.minimum(np.maximum(seq, 0.0), arch.sliding_window)
    return per_layer_token * (arch.num_sliding_layers * capped + full_layers * seq)


def activation_width(arch: ModelArch) -> int:
    """Width of the activations the coefficients multiply: attention heads x head size."""
    if arch.family == "mla_moe":
        return arch.hidden_size
    return arch.num_heads * arch.head_dim


def memory_usage(
    arch: ModelArch,
    backend: str,
    system: SystemSpec,
    *,
    weights_bytes: np.ndarray,
    tp: np.ndarray,
    pp: np.ndarray,
    dp: np.ndarray,
    moe_ep: np.ndarray,
    batch: np.ndarray,
    num_tokens: np.ndarray,
    kv_seq_tokens: np.ndarray,
    kv_quant: str,
    nextn: int = 0,
    mtp_scaled_tokens: np.ndarray | None = None,
    kv_fraction: float,
    kv_fraction_of_free: bool,
    kv_reserved: float,
) -> Memory:
    """Memory of each candidate. ``mtp_scaled_tokens`` = decode tokens among ``num_tokens``
    (None: all of them verify ``nextn + 1`` tokens)."""
    tp, pp, dp, moe_ep, batch = (np.asarray(a, dtype=np.int64) for a in (tp, pp, dp, moe_ep, batch))
    num_tokens = np.asarray(num_tokens, dtype=np.float64)
    weights = np.asarray(weights_bytes, dtype=np.float64) / pp

    tp_key = np.minimum(tp, 8)
    coeff_table = ACTIVATION_COEFFICIENTS[backend][arch.family]
    coeff = np.select([tp_key == k for k in coeff_table], list(coeff_table.values()), default=np.nan)
    acts = 2.0 * num_tokens * activation_width(arch) * coeff
    if arch.family == "mla_moe" and arch.num_experts:
        acts = acts + (
            num_tokens
            * arch.hidden_size
            * dp
            * arch.num_experts
            * arch.topk
            / moe_ep
            / MOE_WORKSPACE_BLOCK
            * MOE_WORKSPACE_SCALE_BYTES
        )
    acts = np.maximum(acts, MIN_ACTIVATION_BYTES[backend])
    if nextn > 0:
        if mtp_scaled_tokens is None:
            acts = acts * (nextn + 1)
        else:
            share = np.clip(np.asarray(mtp_scaled_tokens, dtype=np.float64), 0.0, num_tokens)
            scaled = np.where(
                num_tokens > 0, (num_tokens - share + share * (nextn + 1)) / np.maximum(num_tokens, 1), 1.0
            )
            acts = acts * scaled
    acts = acts * (1.0 + ACTIVATION_OVERHEAD_FRAC[backend])

    kv = batch * kv_bytes_per_sequence(arch, tp, kv_quant, kv_seq_tokens)
    nccl_table = system.empirical.nccl_mem_bytes
    nccl = np.select(
        [tp_key == k for k in nccl_table], [float(v) for v in nccl_table.values()], default=np.nan
    )
    others = np.full(weights.shape, system.empirical.other_mem_bytes * (1.0 + OTHERS_OVERHEAD_FRAC[backend]))

    total = (weights + acts + kv + nccl + others) / GIB
    capacity = system.gpu.mem_capacity_bytes / GIB
    oom = total >= capacity
    kv_gib = kv / GIB
    non_kv = total - kv_gib
    scale = (1.0 - kv_reserved) * (1.0 - KV_CACHE_TOLERANCE)
    if kv_fraction_of_free:
        budget = (capacity - non_kv) * kv_fraction * scale
    else:
        budget = capacity * kv_fraction * scale - non_kv
    kv_oom = ~oom & (kv_gib > budget)
    return Memory(weights / GIB, acts / GIB, kv_gib, nccl / GIB, others / GIB, total, oom, kv_oom)


def sglang_mem_fraction_static(capacity_bytes: int, tp: int, pp: int, dp: int) -> float:
    """SGLang's default ``mem_fraction_static``: capacity minus its reserved pools (v0.5.16 rules)."""
    capacity_mb = capacity_bytes / MIB
    if capacity_mb < 20 * 1024:
        chunked_prefill, graph_max_bs = 2048, 8
    elif capacity_mb < 35 * 1024:
        chunked_prefill, graph_max_bs = 2048, (24 if tp < 4 else 80)
    elif capacity_mb < 60 * 1024:
        chunked_prefill, graph_max_bs = 4096, (32 if tp < 4 else 160)
    elif capacity_mb < 160 * 1024:
        chunked_prefill, graph_max_bs = 8192, (256 if tp < 4 else 512)
    else:
        chunked_prefill, graph_max_bs = 16384, 512
    reserved_mb = 512 + 1.5 * chunked_prefill + tp * pp / 8 * 1024 + graph_max_bs * 2
    if dp > 1:
        reserved_mb += graph_max_bs * dp * 3
        if graph_max_bs > 300:
            reserved_mb += graph_max_bs * dp * 1.5
    if capacity_mb > 60 * 1024:
        reserved_mb = max(reserved_mb, 10 * 1024)
    return round((capacity_mb - reserved_mb) / capacity_mb, 3)


def vllm_memory_utilization(version: str | None) -> float:
    for prefix, value in VLLM_GPU_MEMORY_UTILIZATION.items():
        if version and str(version).startswith(prefix):
            return value
    return VLLM_DEFAULT_GPU_MEMORY_UTILIZATION


class KvBudgetRule(NamedTuple):
    fraction: np.ndarray | float
    of_free: bool
    reserved: float


def kv_budget_rule(
    backend: str, system: SystemSpec, version: str | None, *, static: bool, tp=1, pp=1, dp=1
) -> KvBudgetRule:
    """The framework's KV-cache budget rule for a static worker (disagg) or an agg worker."""
    if backend == "trtllm":
        return KvBudgetRule(TRTLLM_FREE_GPU_MEMORY_FRACTION, True, TRTLLM_KV_RESERVED_FRACTION)
    if backend == "vllm":
        return KvBudgetRule(vllm_memory_utilization(version), False, 0.0)
    if static:
        # SGLang derives its static fraction from the capacity and the layout (a few distinct layouts).
        tp, pp, dp = np.broadcast_arrays(np.asarray(tp), np.asarray(pp), np.asarray(dp))
        triples = np.stack([tp.ravel(), pp.ravel(), dp.ravel()], axis=1)
        unique, inverse = np.unique(triples, axis=0, return_inverse=True)
        cap = system.gpu.mem_capacity_bytes
        fractions = np.array([sglang_mem_fraction_static(cap, *(int(v) for v in row)) for row in unique])
        return KvBudgetRule(fractions[inverse.ravel()].reshape(tp.shape), False, 0.0)
    return KvBudgetRule(SGLANG_FALLBACK_MEM_FRACTION_STATIC, False, 0.0)


def candidate_memory(
    lops, cand, *, num_tokens, kv_seq_tokens, mtp_scaled_tokens, rule: KvBudgetRule
) -> Memory:
    """``memory_usage`` of every candidate row (``lops``: LayoutOps, ``cand``: Candidates), the layout
    columns and the model setup filled in; callers give the phase-specific token counts."""
    setup = lops.setup
    tp, pp, dp, moe_ep = (lops.column(c)[cand.layout] for c in ("tp", "pp", "dp", "moe_ep"))
    return memory_usage(
        setup.arch,
        setup.backend,
        setup.system,
        weights_bytes=lops.weight_bytes[cand.layout],
        tp=tp,
        pp=pp,
        dp=dp,
        moe_ep=moe_ep,
        batch=cand.batch,
        num_tokens=num_tokens,
        kv_seq_tokens=np.full(len(cand.batch), kv_seq_tokens),
        kv_quant=setup.quant.kvcache,
        nextn=setup.nextn,
        mtp_scaled_tokens=mtp_scaled_tokens,
        kv_fraction=rule.fraction,
        kv_fraction_of_free=rule.of_free,
        kv_reserved=rule.reserved,
    )
