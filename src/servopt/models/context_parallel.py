"""Context parallelism (cp): a graph's prefill over cp ranks that each take a share of every prompt.

SGLang's prefill context parallelism (``--attn-cp-size``, the in-sequence "zigzag" split) cuts each
prompt into 2 cp chunks and gives rank i chunks i and 2cp - 1 - i, so the ranks' causal attention
work is balanced; every rank holds the whole model (attention tp = dp = 1: SGLang does not combine
cp with attention TP or DP) and all-gathers the KV of the other ranks before attention. The
context phase is priced as the peer (aiconfigurator 0.12.0) prices it, read off its op lists and
checked op by op (tests/evaluate/test_fidelity_context_parallel.py, GQA;
tests/evaluate/test_fidelity_mla_context_parallel.py, MLA):

- token-major ops (embedding, norms, GEMMs incl. the LM head, all-reduces, pipeline hops) see
  ceil(tokens / cp) tokens per rank (``OpSpec.seq_split``);
- attention is rank 0's zigzag pair (``OpSpec.cp``, priced in ``evaluate.phase``): GQA attention,
  the context MLA kernel and SGLang's wide-EP MLA kernel; a whole-MLA-module table is priced at
  the full prompt over cp (the peer's "uniform" form, ``_mla_op``);
- one NCCL all-gather per layer of every token's KV over the cp ranks (the full prompt's tokens;
  MLA: the compressed latent + rope key);
- MoE: the expert GEMMs see all tokens (the dispatch all-gathers every rank's hidden states, then
  reduce-scatters them: ``models.moe.dispatch_terms`` with ``cp``); DeepEP's context all-to-all
  sees the tokens of tp * cp attention ranks.

Decode is not context-parallel: the generation ops of a cp layout are those of tp 1 (MLA: the
decode MoE dispatch is one all-reduce, ``models.moe.dispatch_terms``). Memory is not reduced
either (each rank holds every weight and the full KV; the peer checked SGLang 0.5.13).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from servopt.errors import InvalidLayoutError
from servopt.models.arch import ModelArch
from servopt.models.dense import kv_heads_per_gpu
from servopt.models.ops import Family, OpSpec, QuantModes, quant_bytes
from servopt.models.parallel import Layout

# The one backend whose context parallelism is modelled (the peer's enumeration refuses cp > 1
# elsewhere: TRT-LLM's ring attention is not wired in it).
CP_BACKENDS = ("sglang",)
# Graph families whose prefill servopt prices over cp ranks: GQA attention, sliding-window layers
# (GPT-OSS) included, each attention op zigzagged with its window; MLA (DeepSeek-V3, Kimi) in the
# peer's "uniform" form (``_mla_op``).
CP_FAMILIES = ("dense", "moe", "mla_moe")

# Ops whose work is per token and split over the cp ranks.
_TOKEN_MAJOR = frozenset({Family.GEMM, Family.ELEMENTWISE, Family.EMBEDDING, Family.ALLREDUCE, Family.P2P})


def unsupported_reason(arch: ModelArch, backend: str, role: str) -> str | None:
    """Why ``arch`` on ``backend`` cannot have cp > 1 in a ``role`` worker (None: it can)."""
    if backend not in CP_BACKENDS:
        return f"context parallelism (cp > 1) is modelled on {', '.join(CP_BACKENDS)} only (backend is {backend})"
    if role == "decode":
        return "decode workers are not context-parallel (SGLang's cp splits the prefill)"
    if arch.family not in CP_FAMILIES:
        return f"context parallelism is not modelled for {arch.name} (GQA and MLA attention models only)"
    return None


def supports_context_parallel(arch: ModelArch, backend: str, role: str) -> bool:
    return unsupported_reason(arch, backend, role) is None


def check_context_parallel(arch: ModelArch, layout: Layout, backend: str, role: str) -> None:
    """One clear error for a cp > 1 layout servopt cannot price (cp = 1 always passes)."""
    cp = layout.cp
    if cp == 1:
        return
    reason = unsupported_reason(arch, backend, role)
    if reason:
        raise InvalidLayoutError("cp", cp, reason, allowed=["1"])
    if layout.tp != 1 or layout.dp != 1:
        raise InvalidLayoutError(
            "cp",
            cp,
            f"SGLang context parallelism needs attention tp = dp = 1 (got tp {layout.tp}, dp {layout.dp})",
        )


def _kv_bytes_per_token(arch: ModelArch, layout: Layout, quant: QuantModes) -> float:
    """One layer's KV cache bytes per token: K and V heads, or MLA's compressed latent + rope key."""
    kv = quant_bytes("kvcache_quant_mode", quant.kvcache)
    if arch.mla is not None:
        return (arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim) * kv
    return 2 * kv_heads_per_gpu(arch, layout.tp) * arch.head_dim * kv


def kv_all_gather(arch: ModelArch, layout: Layout, quant: QuantModes, scale: float) -> OpSpec:
    """The per-layer all-gather of every token's KV over the cp ranks (comm-dtype elements)."""
    kv_bytes = _kv_bytes_per_token(arch, layout, quant)
    elements = kv_bytes / quant_bytes("comm_quant_mode", quant.comm)
    return OpSpec(
        "context_cp_all_gather",
        Family.NCCL,
        scale,
        collective="all_gather",
        num_gpus=layout.cp,
        hidden=int(elements),
    )


# MLA attention ops (the whole-module table, the SGLang wide-EP kernel, the granular context MLA).
_MLA_ATTENTION = frozenset({Family.MLA_MODULE, Family.WIDEEP_CONTEXT_MLA, Family.CONTEXT_MLA})


def _mla_op(op: OpSpec, layout: Layout) -> OpSpec:
    """MLA attention over cp ranks, as the peer prices it: the attention kernels (context MLA,
    SGLang's wide-EP MLA) as rank 0's zigzag pair, like GQA attention; the whole-module table in
    its "uniform" form (the peer's ``attn_count_div``), priced at the full prompt with the layer
    count divided by cp, its granular fallback splitting the projections by token like any GEMM."""
    cp = layout.cp
    if op.family is not Family.MLA_MODULE:
        return replace(op, cp=cp)
    fallback = tuple(
        _mla_op(f, layout) if f.family in _MLA_ATTENTION
        else replace(f, seq_split=cp) if f.family in _TOKEN_MAJOR
        else f
        for f in op.fallback
    )  # fmt: skip
    return replace(op, scale=op.scale / cp, fallback=fallback)


def context_parallel_ops(
    ops: Iterable[OpSpec], arch: ModelArch, layout: Layout, quant: QuantModes
) -> tuple[OpSpec, ...]:
    """The context ops of ``layout`` over its cp ranks (unchanged when cp = 1)."""
    ops = tuple(ops)
    cp = layout.cp
    if cp == 1:
        return ops
    out: list[OpSpec] = []
    for op in ops:
        if op.family in _MLA_ATTENTION:
            out.append(_mla_op(op, layout))
            out.append(kv_all_gather(arch, layout, quant, op.scale))
        elif op.family is Family.MOE_A2A:
            # DeepEP's context dispatch/combine see per-attention-rank tokens, and the cp ranks
            # widen that attention group as tp does (the peer's attention_tp_size = tp * cp).
            out.append(replace(op, token_split=op.token_split * cp))
        elif op.family is Family.CONTEXT_ATTENTION:
            out.append(replace(op, cp=cp))
            out.append(kv_all_gather(arch, layout, quant, op.scale))
        elif op.family in _TOKEN_MAJOR:
            out.append(replace(op, seq_split=cp))
        else:
            out.append(op)
    return tuple(out)
