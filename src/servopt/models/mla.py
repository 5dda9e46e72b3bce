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
from servopt.models.arch import MlaDims, ModelArch
from servopt.models.dense import LOGITS_QUANT, allreduce, elementwise, embedding, mtp_factor, p2p
from servopt.models.moe import routed_expert_ops
from servopt.models.ops import Family, OpSpec, Overlap, PhaseOps, QuantModes
from servopt.perf_db.systems import SystemSpec
from servopt.search.layouts import Layout

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


def _granular_attention(
    phase: str, arch: ModelArch, layout: Layout, quant: QuantModes, backend: str, scale: float
):
    d = mla_dims(arch)
    h = arch.hidden_size
    tp = layout.tp
    heads = arch.num_heads
    downscale = d.q_lora_rank + d.kv_lora_rank + d.qk_rope_head_dim
    q_width = heads * (d.qk_nope_head_dim + d.qk_rope_head_dim)
    kv_width = heads * (d.qk_nope_head_dim + d.v_head_dim)
    o_width = heads * d.v_head_dim
    ops = [
        OpSpec(f"{phase}_downscale_gemm", Family.GEMM, scale, n=downscale, k=h, quant=quant.gemm),
        OpSpec(
            f"{phase}_q_b_proj_gemm", Family.GEMM, scale, n=q_width // tp, k=d.q_lora_rank, quant=quant.gemm
        ),
    ]
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
    if backend == "vllm":
        # vLLM's MLA runs as MHA over decompressed heads (kv heads = heads, head size = v_head_dim).
        family = Family.CONTEXT_ATTENTION if phase == "context" else Family.GENERATION_ATTENTION
        ops.append(
            OpSpec(
                f"{phase}_attention",
                family,
                scale,
                heads=heads // tp,
                kv_heads=arch.num_kv_heads // tp,
                head_dim=d.v_head_dim,
                kv_quant=quant.kvcache,
                fmha_quant=quant.fmha,
            )
        )
    elif phase == "context":
        ops.append(
            OpSpec(
                f"{phase}_attention",
                Family.CONTEXT_MLA,
                scale,
                heads=MLA_KERNEL_NATIVE_HEADS // tp,
                kv_quant=quant.kvcache,
                fmha_quant=quant.fmha,
            )
        )
    else:
        bmm = bmm_quant(quant.gemm)
        ops += [
            OpSpec(f"{phase}_bmm_pre", Family.MLA_BMM, scale, heads=heads // tp, quant=bmm, pre=True),
            OpSpec(
                f"{phase}_attention",
                Family.GENERATION_MLA,
                scale,
                heads=MLA_KERNEL_NATIVE_HEADS // tp,
                kv_quant=quant.kvcache,
            ),
            OpSpec(f"{phase}_bmm_post", Family.MLA_BMM, scale, heads=heads // tp, quant=bmm, pre=False),
        ]
    ops.append(OpSpec(f"{phase}_proj_gemm", Family.GEMM, scale, n=h, k=o_width // tp, quant=quant.gemm))
    return tuple(ops)


def _attention_block(
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
    tp = layout.tp
    h = arch.hidden_size
    return [
        OpSpec(f"{phase}_shared_gate_up_gemm", Family.GEMM, scale, n=2 * inter // tp, k=h, quant=quant.gemm),
        elementwise(f"{phase}_shared_act_gate", scale, 2 * inter // tp, inter // tp),
        OpSpec(f"{phase}_shared_ffn2_gemm", Family.GEMM, scale, n=h, k=inter // tp, quant=quant.gemm),
    ]


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
        _attention_block(phase, arch, layout, quant, backend, layers),
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
    ops.append(
        OpSpec(
            f"{phase}_logits_gemm",
            Family.GEMM,
            mtp,
            n=arch.vocab_size // layout.tp,
            k=h,
            quant=LOGITS_QUANT,
            logits=True,
        )
    )
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
    return PhaseOps(
        context=_phase("context", arch, layout, quant, backend, system, 1.0),
        generation=_phase(
            "generation", arch, layout, quant, backend, system, mtp_factor(nextn, arch.num_layers)
        ),
    )
