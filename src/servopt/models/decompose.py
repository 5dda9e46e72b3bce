"""(architecture, layout, quant, backend) -> the two op lists, after checking the layout fits the model."""

from __future__ import annotations

from servopt.errors import InvalidLayoutError, UnknownNameError
from servopt.hardware import SystemSpec
from servopt.models import wide_ep
from servopt.models.arch import ModelArch
from servopt.models.context_parallel import check_context_parallel, context_parallel_ops
from servopt.models.dense import dense_ops
from servopt.models.mla import mla_ops
from servopt.models.mla_wide_ep import mla_wide_ep_ops
from servopt.models.moe import moe_ops
from servopt.models.ops import QUANT_BYTES, PhaseOps, QuantModes
from servopt.models.parallel import Layout
from servopt.models.sglang_wide_ep import sglang_wide_ep_ops
from servopt.models.vllm_wide_ep import vllm_wide_ep_ops
from servopt.models.wide_ep import Coverage

BACKENDS = ("trtllm", "vllm", "sglang")

GEMM_QUANTS = ("float16", "fp8", "fp8_block", "fp8_static", "int8_wo", "int4_wo", "nvfp4")
MOE_QUANTS = ("float16", "fp8", "fp8_block", "w4afp8", "int4_wo", "nvfp4", "w4a16_mxfp4", "w4a8_mxfp4_mxfp8")
KV_QUANTS = ("float16", "fp8", "int8")
FMHA_QUANTS = ("float16", "fp8")
COMM_QUANTS = ("half",)

# fp8_block weights are quantized in 128-wide blocks: each GPU's expert slice must hold whole blocks.
FP8_BLOCK_SIZE = 128


def check_quant(quant: QuantModes) -> None:
    for field, value, allowed in (
        ("gemm_quant_mode", quant.gemm, GEMM_QUANTS),
        ("moe_quant_mode", quant.moe, MOE_QUANTS),
        ("kvcache_quant_mode", quant.kvcache, KV_QUANTS),
        ("fmha_quant_mode", quant.fmha, FMHA_QUANTS),
        ("comm_quant_mode", quant.comm, COMM_QUANTS),
    ):
        if value not in allowed or value not in QUANT_BYTES:
            raise UnknownNameError(field, value, "unknown quant mode", allowed)


def check_layout(arch: ModelArch, layout: Layout, backend: str) -> None:
    """One clear error for a layout the model cannot take (the peer skips such configs silently)."""
    for field, value in zip(("tp", "pp", "dp", "moe_tp", "moe_ep", "cp"), layout, strict=True):
        if value < 1:
            raise InvalidLayoutError(field, value, "must be a positive integer")
    if arch.num_heads % layout.tp:
        raise InvalidLayoutError(
            "tp", layout.tp, f"{arch.name} has {arch.num_heads} attention heads, not divisible by tp"
        )
    if not arch.is_moe:
        if (layout.dp, layout.moe_tp, layout.moe_ep) != (1, 1, 1):
            raise InvalidLayoutError(
                "dp/moe_tp/moe_ep",
                (layout.dp, layout.moe_tp, layout.moe_ep),
                f"{arch.name} is dense: attention dp and expert splits must be 1",
            )
        return
    attention_width = layout.tp * layout.dp * layout.cp
    if attention_width != layout.moe_tp * layout.moe_ep:
        what = "tp*dp" if layout.cp == 1 else "tp*dp*cp"
        raise InvalidLayoutError(
            "moe_tp*moe_ep",
            layout.moe_tp * layout.moe_ep,
            f"must equal {what} = {attention_width} (attention and experts span the same GPUs)",
        )
    if layout.moe_ep > arch.num_experts:
        raise InvalidLayoutError(
            "moe_ep", layout.moe_ep, f"{arch.name} has only {arch.num_experts} experts to distribute"
        )
    if backend not in BACKENDS:
        raise UnknownNameError("backend_name", backend, "unknown backend", BACKENDS)


def check_moe_blocks(arch: ModelArch, layout: Layout, quant: QuantModes) -> None:
    if arch.is_moe and quant.moe == "fp8_block" and (arch.moe_inter_size // layout.moe_tp) % FP8_BLOCK_SIZE:
        raise InvalidLayoutError(
            "moe_tp",
            layout.moe_tp,
            f"fp8_block experts need moe_inter_size/moe_tp ({arch.moe_inter_size}/{layout.moe_tp}) "
            f"to be a multiple of {FP8_BLOCK_SIZE}",
        )


def decompose(
    arch: ModelArch,
    layout: Layout,
    quant: QuantModes,
    backend: str,
    system: SystemSpec,
    nextn: int = 0,
    *,
    large_ep: Coverage | None = None,
    role: str = "agg",
) -> PhaseOps:
    """The context and generation op lists of one worker layout (validated).

    ``large_ep`` is the data's large-EP coverage for this model (``models.wide_ep.coverage``);
    with it a covered layout gets the all-to-all graph and cross-node EP without coverage is
    rejected. None (coverage not probed) keeps every layout on the fused path, unchecked.
    """
    if backend not in BACKENDS:
        raise UnknownNameError("backend_name", backend, "unknown backend", BACKENDS)
    check_quant(quant)
    check_layout(arch, layout, backend)
    check_context_parallel(arch, layout, backend, role)
    check_moe_blocks(arch, layout, quant)
    if nextn < 0:
        raise InvalidLayoutError("nextn", nextn, "must be >= 0")
    comm = None
    if large_ep is not None:
        comm = wide_ep.plan(arch, layout, large_ep, backend, role, system)
    ops = _graph(arch, layout, quant, backend, system, comm, nextn)
    return ops._replace(context=context_parallel_ops(ops.context, arch, layout, quant))


def _graph(arch, layout, quant, backend, system, comm, nextn) -> PhaseOps:
    """The family's op lists at cp = 1 (``context_parallel_ops`` then splits the prefill)."""
    if arch.family == "dense":
        return dense_ops(arch, layout, quant, nextn)
    if arch.family == "moe":
        return moe_ops(arch, layout, quant, backend, system, nextn)
    if comm is not None and backend == "sglang":
        return sglang_wide_ep_ops(arch, layout, quant, comm, nextn)
    if comm is not None and backend == "vllm":
        return vllm_wide_ep_ops(arch, layout, quant, system, comm, nextn)
    if comm is not None:
        return mla_wide_ep_ops(arch, layout, quant, system, comm, nextn)
    return mla_ops(arch, layout, quant, backend, system, nextn)
