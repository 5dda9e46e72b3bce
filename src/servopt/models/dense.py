"""Dense GQA transformers (Llama, Qwen3 dense): the per-phase op lists.

Per layer: add+norm, QKV projection, attention, output projection, add+norm, gated FFN (gate/up
GEMM, activation, down GEMM), and two tensor-parallel all-reduces; once per model: the embedding
(with its all-reduce over the vocabulary shards) and the LM head. The attention pieces are shared
with the MoE family (:func:`attention_ops`).
"""

from __future__ import annotations

from collections.abc import Callable

from servopt.models.arch import ModelArch
from servopt.models.ops import Family, OpSpec, PhaseOps, QuantModes
from servopt.models.parallel import Layout

# The LM head and the router always run in bf16, whatever the checkpoint quantization.
LOGITS_QUANT = "float16"

# Element-wise ops read their inputs and write their outputs in bf16.
ELEMENTWISE_BYTES = 2


def mtp_factor(nextn: int, num_layers: int) -> float:
    """Work of one speculative-decoding iteration relative to a plain step: L + nextn layers."""
    return (num_layers + nextn) / num_layers if nextn > 0 else 1.0


def both_phases(arch: ModelArch, nextn: int, build: Callable[[str, float], tuple[OpSpec, ...]]) -> PhaseOps:
    """``build(phase, mtp)`` for prefill (one pass) and decode (scaled for ``nextn`` draft tokens)."""
    return PhaseOps(
        context=build("context", 1.0), generation=build("generation", mtp_factor(nextn, arch.num_layers))
    )


def elementwise(name: str, scale: float, dim_in: int, dim_out: int) -> OpSpec:
    """A memory-bound op reading ``dim_in`` and writing ``dim_out`` bf16 elements per token."""
    return OpSpec(name, Family.ELEMENTWISE, scale, bytes_per_token=ELEMENTWISE_BYTES * (dim_in + dim_out))


def kv_heads_per_gpu(arch: ModelArch, tp: int) -> int:
    """KV heads each GPU holds: replicated when tp exceeds the KV head count."""
    return -(-arch.num_kv_heads // tp)


def attention_ops(
    phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, layer_scale: float
) -> list[OpSpec]:
    """add_norm_1 .. add_norm_2 of a GQA layer (QKV GEMM, attention, output GEMM)."""
    h = arch.hidden_size
    tp = layout.tp
    kv = kv_heads_per_gpu(arch, tp)
    q_width = arch.num_heads * arch.head_dim
    attn_family = Family.CONTEXT_ATTENTION if phase == "context" else Family.GENERATION_ATTENTION
    return [
        elementwise(f"{phase}_add_norm_1", layer_scale, 2 * h, 2 * h),
        OpSpec(
            f"{phase}_qkv_gemm",
            Family.GEMM,
            layer_scale,
            n=q_width // tp + arch.head_dim * kv * 2,
            k=h,
            quant=quant.gemm,
        ),
        OpSpec(
            f"{phase}_attention",
            attn_family,
            layer_scale,
            heads=arch.num_heads // tp,
            kv_heads=kv,
            head_dim=arch.head_dim,
            window=0,
            qk_norm=arch.qk_norm,
            kv_quant=quant.kvcache,
            fmha_quant=quant.fmha,
        ),
        OpSpec(
            f"{phase}_proj_gemm",
            Family.GEMM,
            layer_scale,
            n=h,
            k=q_width // tp,
            quant=quant.gemm,
            low_precision_input=True,
        ),
        elementwise(f"{phase}_add_norm_2", layer_scale, 2 * h, 2 * h),
    ]


def embedding(phase: str, arch: ModelArch, vocab_rows: int, scale: float) -> OpSpec:
    return OpSpec(f"{phase}_embedding", Family.EMBEDDING, scale, n=vocab_rows, hidden=arch.hidden_size)


def logits(phase: str, arch: ModelArch, tp: int, scale: float) -> OpSpec:
    return OpSpec(
        f"{phase}_logits_gemm",
        Family.GEMM,
        scale,
        n=arch.vocab_size // tp,
        k=arch.hidden_size,
        quant=LOGITS_QUANT,
        logits=True,
    )


def allreduce(name: str, arch: ModelArch, tp: int, scale: float) -> OpSpec:
    return OpSpec(name, Family.ALLREDUCE, scale, hidden=arch.hidden_size, num_gpus=tp)


def p2p(phase: str, arch: ModelArch, pp: int, scale: float) -> OpSpec:
    """(pp - 1) activation hops between pipeline stages per forward pass."""
    return OpSpec(f"{phase}_p2p", Family.P2P, (pp - 1) * scale, hidden=arch.hidden_size, num_gpus=pp)


def _phase(phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, mtp: float) -> tuple[OpSpec, ...]:
    tp = layout.tp
    layers = arch.num_layers * mtp
    inter = arch.inter_size
    return (
        embedding(phase, arch, arch.vocab_size // tp, mtp),
        *attention_ops(phase, arch, layout, quant, layers),
        OpSpec(
            f"{phase}_gate_ffn1_gemm",
            Family.GEMM,
            layers,
            n=2 * inter // tp,
            k=arch.hidden_size,
            quant=quant.gemm,
        ),
        elementwise(f"{phase}_act_gate", layers, 2 * inter // tp, inter // tp),
        OpSpec(
            f"{phase}_ffn2_gemm",
            Family.GEMM,
            layers,
            n=arch.hidden_size,
            k=inter // tp,
            quant=quant.gemm,
            low_precision_input=True,
        ),
        logits(phase, arch, tp, mtp),
        allreduce(f"{phase}_embedding_ar", arch, tp, mtp),
        allreduce(f"{phase}_ar_1", arch, tp, layers),
        allreduce(f"{phase}_ar_2", arch, tp, layers),
        p2p(phase, arch, layout.pp, mtp),
    )


def dense_ops(arch: ModelArch, layout: Layout, quant: QuantModes, nextn: int = 0) -> PhaseOps:
    """Context and generation op lists of a dense GQA model (generation scaled for nextn)."""
    return both_phases(arch, nextn, lambda phase, mtp: _phase(phase, arch, layout, quant, mtp))
