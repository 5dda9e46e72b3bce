"""The routed-expert block of a large-EP graph on SGLang and vLLM: DeepEP dispatch, EP expert
compute over the global tokens, DeepEP combine (the peer's ``MoeAllToAll`` / ``MoeExpertCompute``
ops for these backends, read off its op specs)."""

from __future__ import annotations

from servopt.models.arch import ModelArch
from servopt.models.ops import Family, OpSpec, QuantModes
from servopt.models.parallel import Layout

# DeepEP's normal (high-throughput) kernel is priced at 20 SMs; the low-latency one has no SM axis.
NORMAL_SMS = 20


def ep_expert_op(
    phase: str,
    arch: ModelArch,
    layout: Layout,
    quant: QuantModes,
    scale: float,
    *,
    distribution: str,
    kernel: str = "",
) -> OpSpec:
    """Large-EP expert compute of one MoE layer over the global tokens (per-rank x attention dp),
    one slot per expert (no EPLB redundancy); shared by the TRT-LLM, SGLang and vLLM graphs."""
    return OpSpec(
        f"{phase}_moe",
        Family.MOE_EP,
        scale,
        hidden=arch.hidden_size,
        inter=arch.moe_inter_size,
        topk=arch.topk,
        experts=arch.num_experts,
        slots=arch.num_experts,
        moe_ep=layout.moe_ep,
        dp=layout.dp,
        quant=quant.moe,
        distribution=distribution,
        gated=arch.gated_mlp,
        kernel=kernel,
    )


def deepep_routed_ops(
    phase: str,
    arch: ModelArch,
    layout: Layout,
    quant: QuantModes,
    comm: str,
    scale: float,
    *,
    nodes: int,
    distribution: str,
    kernel: str = "",
) -> list[OpSpec]:
    """Dispatch, expert compute and combine of one MoE layer (``kernel``: the compute table's
    kernel to read, "" for the first collected)."""
    a2a = dict(
        a2a_backend=comm,
        a2a_dtype="default",
        hidden=arch.hidden_size,
        topk=arch.topk,
        experts=arch.num_experts,
        moe_ep=layout.moe_ep,
        nodes=nodes,
        sms=NORMAL_SMS if comm == "deepep_ht" else 0,
    )
    return [
        OpSpec(f"{phase}_moe_dispatch", Family.MOE_A2A, scale, a2a_phase="dispatch", **a2a),
        ep_expert_op(phase, arch, layout, quant, scale, distribution=distribution, kernel=kernel),
        OpSpec(f"{phase}_moe_combine", Family.MOE_A2A, scale, a2a_phase="combine", **a2a),
    ]
