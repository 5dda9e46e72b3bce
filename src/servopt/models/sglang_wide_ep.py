"""SGLang wide-EP graph of an MLA + MoE model (DeepSeek-V3/R1 with DeepEP large expert parallelism).

The peer prices SGLang large EP from SGLang's own legacy collections, not from the fused op list
(read off its op specs for DeepSeek-V3, tp1 dp=ep in {8, 16, 32}; checked op by op against its
queries in ``tests/evaluate/test_fidelity_sglang_wide_ep.py``). Per layer:

- the latent down-projection GEMM (2112 x hidden) twice: once as ``qkv_a_proj`` and once as
  ``downscale`` (the peer's list carries both), then the whole attention as one measured kernel
  (``wideep_{context,generation}_mla`` table, flashinfer lane, at the checkpoint's fp8_block MLA
  dtype) -- no q/kv up-projections, output projection or second norm;
- the shared expert whole on every rank (gate/up, activation, down), then DeepEP dispatch, the
  DeepEP MoE expert compute (SGLang's per-phase table, global tokens) and DeepEP combine; the
  normal (high-throughput) kernel prices prefill at 20 SMs, the low-latency kernel decode;
- no router GEMM, no LM head, no overlap of the shared and routed experts in decode.

With attention TP (tp > 1) the prefill splits the token-major work over the TP ranks: the first
down-projection, the shared expert and the all-to-all run x // tp tokens per rank, an NCCL
all-gather and reduce-scatter of the hidden states (x * hidden elements) surround attention at
heads / tp; decode runs every token on every rank and has no TP collectives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from servopt.models.arch import ModelArch
from servopt.models.deepep import deepep_routed_ops
from servopt.models.dense import both_phases, elementwise, embedding
from servopt.models.mla import MLA_MOE_DISTRIBUTION, mla_dims, shared_expert_ops
from servopt.models.ops import CommTerm, Family, OpSpec, PhaseOps, QuantModes
from servopt.models.parallel import Layout
from servopt.models.wide_ep import nodes_for

# The attention kernel lane of the collected wide-EP MLA rows the peer reads on SGLang.
MLA_KERNEL = "flashinfer"
# The DeepEP collections measured 8-GPU HGX nodes (EP size = 8 x nodes).
DEEPEP_NODE_GPUS = 8
# The wide-EP compute kernel of each phase (perf_db.tables.SGLANG_WIDEEP_MOE_KERNELS).
_KERNEL_OF_PHASE = {"context": "sglang_deepep_context", "generation": "sglang_deepep_generation"}


def _down_projection(
    name: str, arch: ModelArch, quant: QuantModes, scale: float, token_split: int = 1
) -> OpSpec:
    """The latent down-projection: q_lora_rank + kv_lora_rank + rope dim (2112 on DeepSeek-V3)."""
    d = mla_dims(arch)
    width = d.q_lora_rank + d.kv_lora_rank + d.qk_rope_head_dim
    return OpSpec(
        name, Family.GEMM, scale, n=width, k=arch.hidden_size, quant=quant.gemm, token_split=token_split
    )


def _tp_collective(phase: str, collective: str, arch: ModelArch, tp: int, scale: float) -> OpSpec:
    """The attention-TP all-gather / reduce-scatter of a prefill with tp > 1 (x * hidden elements)."""
    short = "all_gather" if collective == "all_gather" else "reduce_scatter"
    return OpSpec(
        f"{phase}_tp_{short}",
        Family.MOE_DISPATCH,
        scale,
        hidden=arch.hidden_size,
        terms=(CommTerm(collective, tp),),
    )


def _attention(phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, scale: float) -> OpSpec:
    family = Family.WIDEEP_CONTEXT_MLA if phase == "context" else Family.WIDEEP_GENERATION_MLA
    return OpSpec(
        f"{phase}_attention",
        family,
        scale,
        heads=arch.num_heads // layout.tp,
        kernel=MLA_KERNEL,
        fmha_quant=quant.gemm,  # the collected kernel's MLA dtype is the checkpoint's GEMM quant
        kv_quant=quant.kvcache,
    )


def _phase(
    phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, comm: Mapping[str, str], mtp: float
) -> tuple[OpSpec, ...]:
    h = arch.hidden_size
    scale = arch.num_layers * mtp
    tp = layout.tp
    # With attention TP the prefill splits the token-major work over the TP ranks (and gathers /
    # scatters the hidden states around attention); decode runs every token on every rank.
    split = tp if phase == "context" else 1
    shared_inter = arch.shared_expert_inter_size or arch.moe_inter_size
    # The peer names the shared expert's ops like a dense FFN on this path.
    gate_up, act, down = shared_expert_ops(phase, arch, quant, scale, shared_inter, tp=1)
    shared = [
        replace(gate_up, name=f"{phase}_gate_ffn1_gemm", token_split=split),
        replace(act, name=f"{phase}_act_gate", token_split=split),
        replace(down, name=f"{phase}_ffn2_gemm", token_split=split),
    ]
    routed = deepep_routed_ops(
        phase, arch, layout, quant, comm[phase], scale, nodes=nodes_for(layout.moe_ep, DEEPEP_NODE_GPUS),
        distribution=MLA_MOE_DISTRIBUTION, kernel=_KERNEL_OF_PHASE[phase],
    )  # fmt: skip
    routed = [replace(op, token_split=split) if op.family is Family.MOE_A2A else op for op in routed]
    gather = [_tp_collective(phase, "all_gather", arch, tp, scale)] if split > 1 else []
    scatter = [_tp_collective(phase, "reduce_scatter", arch, tp, scale)] if split > 1 else []
    return (
        _down_projection(f"{phase}_qkv_a_proj_gemm", arch, quant, scale, token_split=split),
        *gather,
        embedding(phase, arch, arch.vocab_size, mtp),
        elementwise(f"{phase}_add_norm_1", scale, 2 * h, 2 * h),
        _down_projection(f"{phase}_downscale_gemm", arch, quant, scale),
        _attention(phase, arch, layout, quant, scale),
        *scatter,
        *shared,
        *routed,
    )


def sglang_wide_ep_ops(
    arch: ModelArch, layout: Layout, quant: QuantModes, comm: Mapping[str, str], nextn: int = 0
) -> PhaseOps:
    """Context and generation op lists of an MLA + MoE model on SGLang's DeepEP wide-EP path
    (``comm`` names both phases' all-to-all backends)."""
    return both_phases(arch, nextn, lambda phase, mtp: _phase(phase, arch, layout, quant, comm, mtp))
