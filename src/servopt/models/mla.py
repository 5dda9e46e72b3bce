"""MLA + MoE transformers (DeepSeek-V3/R1, Kimi-K2): latent attention, shared + routed experts.

Attention is priced as one whole-module table (projections, rope, attention, BMMs, output
projection measured together) when the data covers the head count, else as its granular pieces
(a fallback op). vLLM runs the absorbed attention as plain MHA kernels, so its granular path uses
the GQA attention tables. In decode the routed experts and the shared expert run on parallel
streams: the overlap block costs the slower of the two. Every layer is priced as a MoE layer
(the dense first layers are not special-cased), as the peer does.
"""

from __future__ import annotations

from dataclasses import replace

from servopt.errors import ServoptError
from servopt.hardware import SystemSpec
from servopt.models.arch import MlaDims, ModelArch
from servopt.models.dense import allreduce, both_phases, elementwise, embedding, logits, p2p
from servopt.models.moe import routed_expert_ops
from servopt.models.ops import Family, OpSpec, Overlap, PhaseOps, QuantModes
from servopt.models.parallel import Layout

# DeepSeek's expert-load skew (flatter than classic MoE: many fine-grained experts).
MLA_MOE_DISTRIBUTION = "power_law_1.01"

# The MLA kernels were measured at DeepSeek-V3's 128 heads; per-GPU heads are 128 / tp.
MLA_KERNEL_NATIVE_HEADS = 128

# DeepSeek-V3 MLA dimensions, used when a checkpoint does not state them.
DEFAULT_MLA = MlaDims(
    q_lora_rank=1536, kv_lora_rank=512, qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128
)


def mla_dims(arch: ModelArch) -> MlaDims:
    return arch.mla or DEFAULT_MLA


def bmm_quant(gemm_quant: str) -> str:
    """The absorbed-attention BMMs run in fp8 unless the checkpoint is bf16."""
    return "float16" if gemm_quant == "float16" else "fp8"


def latent_projections(
    phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, scale: float, *, q_norm: bool = False
) -> list[OpSpec]:
    """Down-projection to the q/kv latents, then the q (and in prefill the kv) up-projections.

    ``q_norm`` adds the ``q_a_layernorm`` between them that TRT-LLM's wide-EP graph prices.
    """
    d = mla_dims(arch)
    tp, heads = layout.tp, arch.num_heads
    downscale = d.q_lora_rank + d.kv_lora_rank + d.qk_rope_head_dim
    q_width = heads * (d.qk_nope_head_dim + d.qk_rope_head_dim)
    kv_width = heads * (d.qk_nope_head_dim + d.v_head_dim)
    ops = [
        OpSpec(
            f"{phase}_downscale_gemm", Family.GEMM, scale, n=downscale, k=arch.hidden_size, quant=quant.gemm
        )
    ]
    if q_norm:
        ops.append(elementwise(f"{phase}_q_a_layernorm", scale, d.q_lora_rank, d.q_lora_rank))
    ops.append(
        OpSpec(
            f"{phase}_q_b_proj_gemm", Family.GEMM, scale, n=q_width // tp, k=d.q_lora_rank, quant=quant.gemm
        )
    )
    if phase == "context":
        ops.append(
            OpSpec(
                f"{phase}_kv_b_proj_gemm",
                Family.GEMM,
                scale,
                n=kv_width // tp,
                k=d.kv_lora_rank,
                quant=quant.gemm,
            )
        )
    return ops


def mla_kernel_ops(
    phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, scale: float
) -> list[OpSpec]:
    """TRT-LLM's MLA kernels: context MLA in prefill; absorption BMM, generation MLA, BMM back in decode."""
    tp = layout.tp
    if phase == "context":
        return [
            OpSpec(
                f"{phase}_attention",
                Family.CONTEXT_MLA,
                scale,
                heads=MLA_KERNEL_NATIVE_HEADS // tp,
                kv_quant=quant.kvcache,
                fmha_quant=quant.fmha,
            )
        ]
    bmm = bmm_quant(quant.gemm)
    heads = arch.num_heads // tp
    return [
        OpSpec(f"{phase}_bmm_pre", Family.MLA_BMM, scale, heads=heads, quant=bmm, pre=True),
        OpSpec(
            f"{phase}_attention",
            Family.GENERATION_MLA,
            scale,
            heads=MLA_KERNEL_NATIVE_HEADS // tp,
            kv_quant=quant.kvcache,
        ),
        OpSpec(f"{phase}_bmm_post", Family.MLA_BMM, scale, heads=heads, quant=bmm, pre=False),
    ]


def output_projection(phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, scale: float) -> OpSpec:
    o_width = arch.num_heads * mla_dims(arch).v_head_dim
    return OpSpec(
        f"{phase}_proj_gemm", Family.GEMM, scale, n=arch.hidden_size, k=o_width // layout.tp, quant=quant.gemm
    )


def shared_expert_ops(
    phase: str, arch: ModelArch, quant: QuantModes, scale: float, inter: int, tp: int
) -> list[OpSpec]:
    """The shared expert's gate/up GEMM, activation and down GEMM, its ``inter`` width split over ``tp``."""
    h = arch.hidden_size
    return [
        OpSpec(f"{phase}_shared_gate_up_gemm", Family.GEMM, scale, n=2 * inter // tp, k=h, quant=quant.gemm),
        elementwise(f"{phase}_shared_act_gate", scale, 2 * inter // tp, inter // tp),
        OpSpec(f"{phase}_shared_ffn2_gemm", Family.GEMM, scale, n=h, k=inter // tp, quant=quant.gemm),
    ]


def _granular_attention(
    phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, backend: str, scale: float
) -> tuple[OpSpec, ...]:
    ops = latent_projections(phase, arch, layout, quant, scale)
    if backend == "vllm":
        # vLLM's MLA runs as MHA over decompressed heads (kv heads = heads, head size = v_head_dim).
        tp = layout.tp
        family = Family.CONTEXT_ATTENTION if phase == "context" else Family.GENERATION_ATTENTION
        ops.append(
            OpSpec(
                f"{phase}_attention",
                family,
                scale,
                heads=arch.num_heads // tp,
                kv_heads=arch.num_kv_heads // tp,
                head_dim=mla_dims(arch).v_head_dim,
                kv_quant=quant.kvcache,
                fmha_quant=quant.fmha,
            )
        )
    else:
        ops += mla_kernel_ops(phase, arch, layout, quant, scale)
    ops.append(output_projection(phase, arch, layout, quant, scale))
    return tuple(ops)


def attention_block(
    phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, backend: str, scale: float
):
    granular = _granular_attention(phase, arch, layout, quant, backend, scale)
    return OpSpec(
        f"{phase}_mla_block",
        Family.MLA_MODULE,
        scale,
        heads=arch.num_heads // layout.tp,
        quant=quant.gemm,
        kv_quant=quant.kvcache,
        fmha_quant=quant.fmha,
        fallback=granular,
    )


def _shared_expert(
    phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, scale: float
) -> list[OpSpec]:
    inter = arch.shared_expert_inter_size or arch.moe_inter_size * max(arch.num_shared_experts, 1)
    return shared_expert_ops(phase, arch, quant, scale, inter, layout.tp)


def _phase(
    phase: str,
    arch: ModelArch,
    layout: Layout,
    quant: QuantModes,
    backend: str,
    system: SystemSpec,
    mtp: float,
) -> tuple[OpSpec, ...]:
    h = arch.hidden_size
    layers = arch.num_layers * mtp
    ops = [
        # The embedding table is not sharded by tp in this family.
        embedding(phase, arch, arch.vocab_size, mtp),
        elementwise(f"{phase}_add_norm_1", layers, 2 * h, 2 * h),
        attention_block(phase, arch, layout, quant, backend, layers),
        elementwise(f"{phase}_add_norm_2", layers, 2 * h, 2 * h),
    ]
    routed = routed_expert_ops(phase, arch, layout, quant, backend, system, layers, MLA_MOE_DISTRIBUTION)
    shared = _shared_expert(phase, arch, layout, quant, layers)
    if phase == "context":
        ops += shared + routed
    else:
        # CUDA-graph streams run the routed path and the shared expert side by side in decode.
        ops += [replace(op, overlap=Overlap.GROUP_A) for op in routed]
        ops += [replace(op, overlap=Overlap.GROUP_B) for op in shared]
    ops.append(logits(phase, arch, layout.tp, mtp))
    if backend == "vllm":
        # vLLM keeps explicit attention all-reduces (two per layer) on top of the MoE dispatch.
        ops.append(allreduce(f"{phase}_tp_allreduce", arch, layout.tp, 2 * layers))
    ops.append(p2p(phase, arch, layout.pp, mtp))
    return tuple(ops)


def mla_ops(
    arch: ModelArch, layout: Layout, quant: QuantModes, backend: str, system: SystemSpec, nextn: int = 0
) -> PhaseOps:
    """Context and generation op lists of an MLA + MoE model."""
    if layout.tp > MLA_KERNEL_NATIVE_HEADS:
        raise ServoptError("tp", layout.tp, f"MLA kernels need at most {MLA_KERNEL_NATIVE_HEADS} GPUs of tp")
    return both_phases(
        arch, nextn, lambda phase, mtp: _phase(phase, arch, layout, quant, backend, system, mtp)
    )
