"""MoE GQA transformers (Qwen3-MoE, Mixtral): attention as dense, then the MoE block.

The MoE block is router GEMM (bf16), dispatch, grouped expert GEMMs, combine. Dispatch and combine
are the only collectives of a layer: with attention tensor parallelism they are all-reduces over
the whole expert group that also stand in for the attention output all-reduce, with attention
data parallelism they gather/scatter every rank's tokens. Which collective each backend uses is
:func:`dispatch_terms` (the peer's per-backend rules, reference §3.4).
"""

from __future__ import annotations

from servopt.errors import ServoptError
from servopt.hardware import SystemSpec
from servopt.models.arch import ModelArch
from servopt.models.dense import allreduce, attention_ops, both_phases, embedding, logits, p2p
from servopt.models.ops import CommTerm, Family, OpSpec, PhaseOps, QuantModes
from servopt.models.parallel import Layout
from servopt.models.sliding_window import split_sliding_attention

ROUTER_QUANT = "float16"

# Expert-load skew the MoE tables are read at: power-law token-to-expert distributions with these
# exponents (the peer's model-owned choice: 1.2 for classic MoE, 1.01 for DeepSeek).
MOE_DISTRIBUTION = "power_law_1.2"

# Blackwell (sm100) TRT-LLM all-gathers quantized activations before the experts: elements on the
# wire per hidden element (fp8 halves the payload; nvfp4 sends 4-bit values plus fp8 block scales).
SM100_DISPATCH_ELEMENT_FACTOR = {"fp8": 0.5, "fp8_block": 0.5, "nvfp4": 0.25 + 0.25 / 8}

# NVLink domains this large switch TRT-LLM on sm100 to its one-sided all-to-all kernel.
NVL72_GPUS_PER_NODE = 72


def dispatch_terms(
    backend: str,
    layout: Layout,
    pre: bool,
    moe_quant: str,
    system: SystemSpec,
    cp: int = 1,
    phase: str = "context",
) -> tuple[CommTerm, ...]:
    """The collectives of one MoE dispatch (``pre``) or combine, per the backend's kernel choice.

    ``N = moe_tp * moe_ep`` GPUs hold the experts; attention runs as ``tp`` (= N / dp) ranks
    ``dp`` times. Token multipliers count how many ranks' tokens travel. ``cp`` > 1 is the prefill
    of a context-parallel layout (SGLang, N = cp ranks each holding a share of the prompt): every
    rank all-gathers the hidden states of the whole prompt before the experts and reduce-scatters
    them after (the peer's ``attn_cp_size`` dispatch). In decode (``phase`` "generation", passed
    with cp > 1 for MLA graphs only: the peer's DeepSeek graph gives its decode dispatch
    ``attn_cp_size``, its GQA MoE graph does not, which then keeps the tp-style all-reduces) every
    cp rank runs every token at attention tp 1: one all-reduce of the experts' partial outputs
    (the peer's total for the pair is one all-reduce; which of the two carries it changes no
    figure, both sit on the same overlap stream).
    """
    n = layout.moe_tp * layout.moe_ep
    if cp > 1 and backend == "sglang":
        if phase != "context":
            return () if pre else (CommTerm("all_reduce", n),)
        return (CommTerm("all_gather" if pre else "reduce_scatter", n),)
    attn_tp = max(n // layout.dp, 1)
    dp = layout.dp
    gather = "all_gather" if pre else "reduce_scatter"
    if backend == "trtllm":
        if system.gpu.sm_version == 100:
            if dp > 1 and layout.moe_tp == 1 and system.node.gpus_per_node >= NVL72_GPUS_PER_NODE:
                raise ServoptError(
                    "backend_name",
                    backend,
                    "TRT-LLM NVL72 one-sided all-to-all dispatch is not modelled",
                    allowed=["layouts with dp == 1 or moe_tp > 1"],
                )
            if dp > 1:
                factor = SM100_DISPATCH_ELEMENT_FACTOR.get(moe_quant, 1.0) if pre else 1.0
                return (CommTerm(gather, n, dp, factor),)
            return (CommTerm("all_reduce", n),) if attn_tp > 1 else ()
        if attn_tp > 1:
            return (CommTerm("all_reduce", n),)
        return (CommTerm(gather, n, dp),) if dp > 1 else ()
    if backend == "vllm":
        terms = []
        if attn_tp > 1:
            terms.append(CommTerm("all_reduce", n))
        if dp > 1:
            terms.append(CommTerm(gather, n, dp))
        return tuple(terms)
    if backend == "sglang":
        if attn_tp > 1 and dp > 1:
            # Scatter inside the attention-TP group, then gather across the expert group (and the
            # reverse order on the way back).
            if pre:
                return (CommTerm("reduce_scatter", attn_tp), CommTerm("all_gather", n, dp))
            return (CommTerm("reduce_scatter", n, dp), CommTerm("all_gather", attn_tp))
        if attn_tp > 1:
            return (CommTerm("all_reduce", n),)
        return (CommTerm(gather, n, dp),) if dp > 1 else ()
    raise ServoptError("backend_name", backend, "unknown backend", allowed=["trtllm", "vllm", "sglang"])


def router_gemm(phase: str, arch: ModelArch, scale: float) -> OpSpec:
    """The gate scoring every token against every expert (bf16 whatever the checkpoint)."""
    return OpSpec(
        f"{phase}_router_gemm", Family.GEMM, scale, n=arch.num_experts, k=arch.hidden_size, quant=ROUTER_QUANT
    )


def routed_expert_ops(
    phase: str,
    arch: ModelArch,
    layout: Layout,
    quant: QuantModes,
    backend: str,
    system: SystemSpec,
    scale: float,
    distribution: str,
) -> list[OpSpec]:
    """Router GEMM, dispatch, expert GEMMs, combine."""
    h = arch.hidden_size
    # Only the prefill is context-parallel; decode dispatches as the layout's tp-style group.
    # The peer's MLA (DeepSeek) graph passes cp to its decode dispatch too (``dispatch_terms``).
    cp = layout.cp if phase == "context" or arch.mla is not None else 1
    moe_keys = dict(
        hidden=h,
        topk=arch.topk,
        experts=arch.num_experts,
        moe_tp=layout.moe_tp,
        moe_ep=layout.moe_ep,
        dp=layout.dp,
    )
    return [
        router_gemm(phase, arch, scale),
        OpSpec(
            f"{phase}_moe_pre_dispatch",
            Family.MOE_DISPATCH,
            scale,
            hidden=h,
            terms=dispatch_terms(backend, layout, True, quant.moe, system, cp, phase),
        ),
        OpSpec(
            f"{phase}_moe",
            Family.MOE,
            scale,
            inter=arch.moe_inter_size,
            quant=quant.moe,
            distribution=distribution,
            gated=arch.gated_mlp,
            **moe_keys,
        ),
        OpSpec(
            f"{phase}_moe_post_dispatch",
            Family.MOE_DISPATCH,
            scale,
            hidden=h,
            terms=dispatch_terms(backend, layout, False, quant.moe, system, cp, phase),
        ),
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
    tp = layout.tp
    layers = arch.num_layers * mtp
    ops = [
        embedding(phase, arch, arch.vocab_size // tp, mtp),
        # GPT-OSS: windowed attention on its sliding layers, full attention on the others.
        *split_sliding_attention(attention_ops(phase, arch, layout, quant, layers), arch, mtp),
        *routed_expert_ops(phase, arch, layout, quant, backend, system, layers, MOE_DISTRIBUTION),
    ]
    # The peer's MoE graph prices the LM head in decode only (its prefill list has none).
    if phase == "generation":
        ops.append(logits(phase, arch, tp, mtp))
    ops.append(allreduce(f"{phase}_embedding_ar", arch, tp, mtp))
    ops.append(p2p(phase, arch, layout.pp, mtp))
    return tuple(ops)


def moe_ops(
    arch: ModelArch, layout: Layout, quant: QuantModes, backend: str, system: SystemSpec, nextn: int = 0
) -> PhaseOps:
    """Context and generation op lists of a MoE GQA model."""
    return both_phases(
        arch, nextn, lambda phase, mtp: _phase(phase, arch, layout, quant, backend, system, mtp)
    )
