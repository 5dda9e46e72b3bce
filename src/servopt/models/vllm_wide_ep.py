"""vLLM wide-EP graph of an MLA + MoE model (DeepSeek-V3/R1 with DeepEP large expert parallelism).

The peer's op list for vLLM large EP (read off its op specs, tp1 dp=ep): the fused graph's
attention (the MLA module table, else vLLM's granular MHA-over-latent ops), norms, router GEMM and
whole shared expert, then DeepEP dispatch (normal kernel, 20 SMs, in prefill; low-latency in
decode), expert compute from the regular MoE table at (moe_tp 1, moe_ep) over the global tokens,
DeepEP combine; LM head, the explicit tp all-reduces (none at tp 1) and pipeline hops. Unlike the
fused decode, the shared expert does not overlap the routed path.

DeepEP on vLLM was measured on one 8-GPU node; wider EP reads that slice (the peer's documented,
optimistic stand-in, ``perf_db.wide_ep_queries``).

With attention TP (tp > 1, dp = ep / tp) attention, LM head and the per-layer tp all-reduces shard
as on the fused graph, but the MoE block does not: the shared expert stays whole on every rank, and
in prefill it and the DeepEP dispatch/combine run x // tp tokens per rank (the TP ranks split the
token stream); decode runs every token on every rank. The router GEMM reads all tokens and expert
compute the global tokens (per-rank x attention dp), as at tp 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from servopt.hardware import SystemSpec
from servopt.models.arch import ModelArch
from servopt.models.deepep import deepep_routed_ops
from servopt.models.dense import allreduce, both_phases, elementwise, embedding, logits, p2p
from servopt.models.mla import MLA_MOE_DISTRIBUTION, attention_block, shared_expert_ops
from servopt.models.moe import router_gemm
from servopt.models.ops import Family, OpSpec, PhaseOps, QuantModes
from servopt.models.parallel import Layout
from servopt.models.wide_ep import nodes_for


def _phase(
    phase: str,
    arch: ModelArch,
    layout: Layout,
    quant: QuantModes,
    system: SystemSpec,
    comm: Mapping[str, str],
    mtp: float,
) -> tuple[OpSpec, ...]:
    h = arch.hidden_size
    layers = arch.num_layers * mtp
    shared_inter = arch.shared_expert_inter_size or arch.moe_inter_size * max(arch.num_shared_experts, 1)
    # Attention TP splits the prefill's token stream over the TP ranks ahead of the MoE block.
    split = layout.tp if phase == "context" else 1
    routed = deepep_routed_ops(
        phase, arch, layout, quant, comm[phase], layers,
        nodes=nodes_for(layout.moe_ep, system.node.gpus_per_node), distribution=MLA_MOE_DISTRIBUTION,
    )  # fmt: skip
    routed = [replace(op, token_split=split) if op.family is Family.MOE_A2A else op for op in routed]
    shared = [
        replace(op, token_split=split)
        for op in shared_expert_ops(phase, arch, quant, layers, shared_inter, tp=1)
    ]
    return (
        embedding(phase, arch, arch.vocab_size, mtp),
        elementwise(f"{phase}_add_norm_1", layers, 2 * h, 2 * h),
        attention_block(phase, arch, layout, quant, "vllm", layers),
        elementwise(f"{phase}_add_norm_2", layers, 2 * h, 2 * h),
        router_gemm(phase, arch, layers),
        *shared,
        *routed,
        logits(phase, arch, layout.tp, mtp),
        allreduce(f"{phase}_tp_allreduce", arch, layout.tp, 2 * layers),
        p2p(phase, arch, layout.pp, mtp),
    )


def vllm_wide_ep_ops(
    arch: ModelArch,
    layout: Layout,
    quant: QuantModes,
    system: SystemSpec,
    comm: Mapping[str, str],
    nextn: int = 0,
) -> PhaseOps:
    """Context and generation op lists of an MLA + MoE model on vLLM's DeepEP wide-EP path."""
    return both_phases(arch, nextn, lambda phase, mtp: _phase(phase, arch, layout, quant, system, comm, mtp))
