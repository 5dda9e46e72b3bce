"""TRT-LLM wide-EP graph of an MLA + MoE model (DeepSeek-V3/R1, Kimi-K2 with large EP).

What changes against the fused graph (:mod:`servopt.models.mla`), as TRT-LLM's wide-EP path runs it:

- attention is always the granular MLA stack (no whole-module table) with an explicit
  ``q_a_layernorm``; in decode the absorption BMM overlaps the rope + KV-cache write on a second
  stream (overlap block 2);
- the MoE block is router GEMM, all-to-all dispatch, EP expert compute (global tokens), all-to-all
  combine, then one reduce-add of the routed top-k and shared outputs. The shared expert is
  replicated whole on every rank (attention DP, no tensor split); in decode it overlaps the
  routed path (overlap block 1);
- decode layers run ``PDL_FACTOR`` faster (programmatic dependent launch hides launch gaps).

A phase whose comm backend is not resolved keeps the fused MoE block (a prefill worker may be
large-EP in context only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from servopt.hardware import SystemSpec
from servopt.models.arch import ModelArch
from servopt.models.deepep import ep_expert_op
from servopt.models.dense import both_phases, elementwise, embedding, logits, p2p
from servopt.models.mla import (
    MLA_MOE_DISTRIBUTION,
    latent_projections,
    mla_dims,
    mla_kernel_ops,
    output_projection,
    shared_expert_ops,
)
from servopt.models.moe import routed_expert_ops, router_gemm
from servopt.models.ops import Family, OpSpec, Overlap, PhaseOps, QuantModes
from servopt.models.parallel import Layout
from servopt.models.wide_ep import A2A_BY_NAME, nodes_for, wire_dtype

# Decode-layer discount of TRT-LLM's wide-EP path (programmatic dependent launch), on every op.
PDL_FACTOR = 0.9
# DeepSeek/Kimi checkpoints carry exactly one full-size shared expert.
SHARED_EXPERTS = 1


def _attention(phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, scale: float) -> list[OpSpec]:
    h = arch.hidden_size
    kernels = mla_kernel_ops(phase, arch, layout, quant, scale)
    if phase == "generation":
        # The absorption BMM runs beside the rope + KV-cache write (overlap block 2).
        d = mla_dims(arch)
        rope_width = d.kv_lora_rank + d.qk_rope_head_dim
        bmm_pre, *rest = kernels
        rope = elementwise(f"{phase}_rope_kvcache", scale, rope_width, rope_width)
        kernels = [replace(bmm_pre, overlap=Overlap.GROUP_C), replace(rope, overlap=Overlap.GROUP_D), *rest]
    return [
        elementwise(f"{phase}_add_norm_1", scale, 2 * h, 2 * h),
        *latent_projections(phase, arch, layout, quant, scale, q_norm=True),
        *kernels,
        output_projection(phase, arch, layout, quant, scale),
        elementwise(f"{phase}_add_norm_2", scale, 2 * h, 2 * h),
    ]


def _routed(
    phase: str,
    arch: ModelArch,
    layout: Layout,
    quant: QuantModes,
    system: SystemSpec,
    comm: str,
    scale: float,
) -> list[OpSpec]:
    h = arch.hidden_size
    spec = A2A_BY_NAME[comm]
    a2a = dict(
        a2a_backend=comm,
        hidden=h,
        topk=arch.topk,
        experts=arch.num_experts,
        moe_ep=layout.moe_ep,
        nodes=nodes_for(layout.moe_ep * layout.moe_tp, system.node.gpus_per_node),
    )
    ops = [router_gemm(phase, arch, scale)]
    for comm_phase in spec.comm_phases[:-1]:
        ops.append(
            OpSpec(
                f"{phase}_moe_{comm_phase}",
                Family.MOE_A2A,
                scale,
                a2a_phase=comm_phase,
                a2a_dtype=wire_dtype(system.name, comm, quant.moe, comm_phase, phase) or "",
                **a2a,
            )
        )
    ops.append(ep_expert_op(phase, arch, layout, quant, scale, distribution=MLA_MOE_DISTRIBUTION))
    ops.append(
        OpSpec(
            f"{phase}_moe_combine",
            Family.MOE_A2A,
            scale,
            a2a_phase="combine",
            a2a_dtype=wire_dtype(system.name, comm, quant.moe, "combine", phase) or "",
            **a2a,
        )
    )
    return ops


def _shared(phase: str, arch: ModelArch, quant: QuantModes, scale: float) -> list[OpSpec]:
    """The whole shared expert on every rank (no tensor split under attention DP)."""
    inter = arch.shared_expert_inter_size or SHARED_EXPERTS * arch.moe_inter_size
    return shared_expert_ops(phase, arch, quant, scale, inter, tp=1)


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
    scale = arch.num_layers * mtp * (PDL_FACTOR if phase == "generation" else 1.0)
    ops = [embedding(phase, arch, arch.vocab_size, mtp), *_attention(phase, arch, layout, quant, scale)]
    backend = comm.get(phase)
    shared = _shared(phase, arch, quant, scale)
    if backend is None:
        # This phase stays on the fused dispatch (its role never runs it; kept for completeness).
        routed = routed_expert_ops(phase, arch, layout, quant, "trtllm", system, scale, MLA_MOE_DISTRIBUTION)
    else:
        routed = _routed(phase, arch, layout, quant, system, backend, scale)
    if phase == "context":
        ops += [routed[0], *shared, *routed[1:]]
    else:
        ops += [replace(op, overlap=Overlap.GROUP_A) for op in routed]
        ops += [replace(op, overlap=Overlap.GROUP_B) for op in shared]
    ops.append(elementwise(f"{phase}_moe_reduce_add", scale, 2 * h, h))
    ops.append(logits(phase, arch, layout.tp, mtp))
    ops.append(p2p(phase, arch, layout.pp, mtp))
    return tuple(ops)


def mla_wide_ep_ops(
    arch: ModelArch,
    layout: Layout,
    quant: QuantModes,
    system: SystemSpec,
    comm: Mapping[str, str],
    nextn: int = 0,
) -> PhaseOps:
    """Context and generation op lists of an MLA + MoE model on TRT-LLM's wide-EP path."""
    return both_phases(arch, nextn, lambda phase, mtp: _phase(phase, arch, layout, quant, system, comm, mtp))
