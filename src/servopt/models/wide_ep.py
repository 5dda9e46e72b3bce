"""Large expert parallelism (wide EP): when a layout's MoE runs as all-to-all + EP expert compute.

The peer decides per parallel layout, from data coverage, never from a flag:

- A *comm backend* (DeepEP high-throughput for prefill, DeepEP low-latency for decode on TRT-LLM;
  plain DeepEP on SGLang/vLLM; NVLink one/two-sided on sm100) serves an EP size for one inference
  phase when the all-to-all table holds dispatch AND combine curves for the model shape under the
  phase's wire dtype at that (ep, nodes) scale -- or, for DeepEP, at the full-node scale that
  stands in for multi-node EP -- and the EP expert-compute tables cover the shape at that EP.
- A layout is large-EP when ``moe_tp == 1``, ``moe_ep > 1`` (TRT-LLM also needs attention DP) and
  every phase the role needs is covered: the role's own phases plus context (the memory model
  sizes weights from the context graph, so a decode worker needs it too).
- EP wider than one node that is not large-EP is rejected: pricing it as the fused intra-node
  dispatch would silently omit the all-to-all.
- The decision is per worker role: a layout can be large-EP for a decode worker and fused for an
  agg one when only some phases are covered.
- The multi-node search ladder (and the larger replica budget) opens only when some covered EP
  size spans more than one node in every required phase.

The MLA + MoE family (DeepSeek-V3/R1, Kimi-K2) has a large-EP op graph on TRT-LLM
(:mod:`servopt.models.mla_wide_ep`), on SGLang (:mod:`servopt.models.sglang_wide_ep`, from
SGLang's legacy DeepEP, DeepEP-MoE and wide-EP MLA tables, attention TP included) and on vLLM
(:mod:`servopt.models.vllm_wide_ep`, attention TP included); a covered
cross-node layout of any other family/backend is rejected with a clear reason, a covered
intra-node one stays on the fused path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from servopt.errors import InvalidLayoutError
from servopt.hardware import SystemSpec
from servopt.models.arch import ModelArch
from servopt.models.parallel import Layout

PHASES = ("context", "generation")
# DeepEP comm backends whose single-node measurements stand in for multi-node EP.
DEEPEP_NODE1_BACKENDS = frozenset({"deepep_ht", "deepep_ll", "trtllm_deepep_ht", "trtllm_deepep_ll"})
# SGLang's legacy DeepEP tables sit at ep 8 on one node whatever the system's width.
SGLANG_LEGACY_NODE_GPUS = 8
# Hopper systems: the TRT-LLM DeepEP low-latency kernel has no nvfp4 wire format there.
HOPPER_SYSTEMS = frozenset({"h100_sxm", "h200_sxm"})
# Backends and families whose large-EP op graph servopt models.
MODELLED = frozenset({("mla_moe", "trtllm"), ("mla_moe", "sglang"), ("mla_moe", "vllm")})
# SGLang's wide-EP graph: the measured attention kernel lane and the per-phase DeepEP MoE kernels.
SGLANG_MLA_KERNEL = "flashinfer"
SGLANG_COMPUTE_KERNELS = {"context": "sglang_deepep_context", "generation": "sglang_deepep_generation"}
# MoE-bearing families the peer explores large EP for (servopt names).
LARGE_EP_FAMILIES = frozenset({"moe", "mla_moe"})
# The peer's checkpoint quant names -> the names its all-to-all tables use.
_WIRE_NAME = {"float16": "bfloat16", "fp8_block": "fp8"}


@dataclass(frozen=True)
class A2ABackend:
    """One all-to-all comm backend: where it runs and what it can serve."""

    name: str
    frameworks: tuple[str, ...]
    phases: tuple[str, ...]  # inference phases it serves
    comm_phases: tuple[str, ...]  # its kernels, in order (prepare, dispatch, combine)
    min_sm: int = 0
    max_topk: int = 8

    def feasible(self, topk: int, experts: int, moe_ep: int, sm_version: int) -> bool:
        return (
            topk <= self.max_topk
            and 1 < moe_ep <= experts
            and experts % moe_ep == 0
            and sm_version >= self.min_sm
        )


# Registry order is the tie-break when two backends cover the same EP (the peer's order).
A2A_BACKENDS: tuple[A2ABackend, ...] = (
    A2ABackend("deepep_ht", ("sglang", "vllm"), ("context",), ("dispatch", "combine")),
    A2ABackend("deepep_ll", ("sglang", "vllm"), ("generation",), ("dispatch", "combine")),
    A2ABackend("deepep_v2_context", ("vllm",), ("context",), ("dispatch", "combine")),
    A2ABackend("deepep_v2_generation", ("vllm",), ("generation",), ("dispatch", "combine")),
    A2ABackend("trtllm_deepep_ht", ("trtllm",), ("context",), ("dispatch", "combine")),
    A2ABackend("trtllm_deepep_ll", ("trtllm",), ("generation",), ("dispatch", "combine")),
    A2ABackend("nvlink_two_sided", ("trtllm",), PHASES, ("prepare", "dispatch", "combine"), min_sm=100),
    A2ABackend("nvlink_one_sided", ("trtllm",), PHASES, ("dispatch", "combine"), min_sm=100),
)
A2A_BY_NAME = {b.name: b for b in A2A_BACKENDS}


def wire_dtype(system: str, comm_backend: str, moe_quant: str, comm_phase: str, phase: str) -> str | None:
    """The dtype an all-to-all phase moves on the wire for a MoE quant mode (None: no serving
    format; the backend then cannot serve this model)."""
    q = _WIRE_NAME.get(moe_quant, moe_quant)
    if comm_backend.startswith("deepep"):
        return "default"
    if comm_backend == "trtllm_deepep_ht":
        if q == "nvfp4":
            return "nvfp4"
        return "bfloat16" if q in ("bfloat16", "fp8") else None
    if comm_backend == "trtllm_deepep_ll":
        if q in ("bfloat16", "fp8"):
            return q
        if q == "nvfp4" and system not in HOPPER_SYSTEMS:
            return "fp4" if comm_phase == "combine" else "nvfp4"
        return None
    if comm_backend in ("nvlink_two_sided", "nvlink_one_sided"):
        return "fp4" if q == "nvfp4" and phase == "generation" and comm_phase == "combine" else q
    return None


def nodes_for(moe_ep: int, gpus_per_node: int) -> int:
    return -(-moe_ep // gpus_per_node)


class CoverageProbe(Protocol):
    """What coverage needs from the data (``PerfDatabase``; a double without it covers nothing)."""

    def moe_a2a_pairs(self, comm_backend, comm_phase, comm_dtype, hidden, topk, experts) -> set: ...
    def moe_expert_compute_eps(self, quant_mode, hidden, inter, topk, experts, kernel=None) -> set: ...


# {phase: {comm backend: EP sizes}}, backends in registry order.
Coverage = Mapping[str, Mapping[str, frozenset[int]]]


def _a2a_covers(pairs: set, backend: str, framework: str, ep: int, gpus_per_node: int) -> bool:
    nodes = nodes_for(ep, gpus_per_node)
    if (ep, nodes) in pairs:
        return True
    if backend not in DEEPEP_NODE1_BACKENDS or nodes <= 1:
        return False
    width = SGLANG_LEGACY_NODE_GPUS if framework == "sglang" else gpus_per_node
    return (width, 1) in pairs


def coverage(
    probe: CoverageProbe | None,
    arch: ModelArch,
    moe_quant: str,
    backend: str,
    system: SystemSpec,
    *,
    gemm_quant: str | None = None,
    kv_quant: str | None = None,
) -> Coverage:
    """Per inference phase, the comm backends and EP sizes large EP may use for this model.

    ``gemm_quant`` / ``kv_quant``: the run's (default: the checkpoint's); SGLang's wide-EP attention
    tables were collected at one of each, so other choices keep the fused graph, which prices them."""
    if probe is None or not arch.is_moe or arch.family not in LARGE_EP_FAMILIES or not arch.num_experts:
        return {}
    if not hasattr(probe, "moe_a2a_pairs"):
        return {}  # a database double without the probes carries no large-EP data (the peer's rule)
    gpn = system.node.gpus_per_node
    h, k, e, inter = arch.hidden_size, arch.topk, arch.num_experts, arch.moe_inter_size
    wide_eps: set[int] | None = None
    out: dict[str, dict[str, frozenset[int]]] = {}
    for phase in PHASES:
        if backend == "sglang":
            # SGLang's expert compute and attention are per-phase tables of their own.
            wide_eps = _sglang_phase_eps(
                probe, arch, moe_quant, phase, gemm_quant or arch.quant.gemm, kv_quant or arch.quant.kvcache
            )
        per_backend: dict[str, frozenset[int]] = {}
        for spec in A2A_BACKENDS:
            if backend not in spec.frameworks or phase not in spec.phases:
                continue
            dtypes = [
                wire_dtype(system.name, spec.name, moe_quant, cp, phase) for cp in ("dispatch", "combine")
            ]
            if None in dtypes:
                continue
            pairs = probe.moe_a2a_pairs(spec.name, "dispatch", dtypes[0], h, k, e) & probe.moe_a2a_pairs(
                spec.name, "combine", dtypes[1], h, k, e
            )
            if not pairs:
                continue
            candidates = {
                ep
                for ep in range(2, e + 1)
                if spec.feasible(k, e, ep, system.gpu.sm_version)
                and _a2a_covers(pairs, spec.name, backend, ep, gpn)
            }
            if candidates and wide_eps is None:
                wide_eps = set(probe.moe_expert_compute_eps(moe_quant, h, inter, k, e))
                if backend in ("trtllm", "vllm") and hasattr(probe, "regular_moe_eps"):
                    wide_eps |= set(probe.regular_moe_eps(moe_quant, h, inter, k, e))
            eps = frozenset(candidates & (wide_eps or set()))
            if eps:
                per_backend[spec.name] = eps
        if per_backend:
            out[phase] = per_backend
    return out


def _sglang_phase_eps(
    probe, arch: ModelArch, moe_quant: str, phase: str, gemm_quant: str, kv_quant: str
) -> set[int]:
    """EP sizes SGLang's wide-EP tables price in one phase: the DeepEP MoE compute table covers
    the expert shape and the wide-EP MLA table holds the model's attention (fp8_block, the
    checkpoint's GEMM quant the collection ran)."""
    if arch.family != "mla_moe" or not hasattr(probe, "wideep_mla_covers"):
        return set()
    if not probe.wideep_mla_covers(phase, SGLANG_MLA_KERNEL, gemm_quant, kv_quant, arch.num_heads):
        return set()
    return set(
        probe.moe_expert_compute_eps(
            moe_quant, arch.hidden_size, arch.moe_inter_size, arch.topk, arch.num_experts,
            kernel=SGLANG_COMPUTE_KERNELS[phase],
        )
    )  # fmt: skip


def role_phases(role: str) -> tuple[str, ...]:
    """Phases a role needs covered: its own, plus context (weights are sized from it)."""
    if role == "decode":
        return ("context", "generation")
    if role == "prefill":
        return ("context",)
    return PHASES


def resolve(layout: Layout, cov: Coverage, backend: str, role: str) -> dict[str, str] | None:
    """Per-phase comm backend of one layout, or None when it stays on the fused path."""
    if layout.moe_tp != 1 or layout.moe_ep <= 1 or not cov:
        return None
    if backend == "trtllm" and layout.dp <= 1:
        return None  # TRT-LLM wide EP runs with attention data parallelism only
    chosen: dict[str, str] = {}
    for phase, per_backend in cov.items():
        for name, eps in per_backend.items():
            if layout.moe_ep in eps:
                chosen[phase] = name
                break
    if any(p not in chosen for p in role_phases(role)):
        return None
    return chosen


def plan(
    arch: ModelArch, layout: Layout, cov: Coverage, backend: str, role: str, system: SystemSpec
) -> dict[str, str] | None:
    """The layout's per-phase comm backends (None: fused MoE), rejecting what must not be priced:
    cross-node EP without large-EP data (or with MoE TP), and cross-node large EP servopt has no
    op graph for. Intra-node EP the data covers but servopt does not model stays fused."""
    comm = resolve(layout, cov, backend, role)
    if not arch.is_moe or layout.moe_ep <= 1:
        return comm
    gpn = system.node.gpus_per_node
    cross_node = layout.moe_ep > gpn
    if comm is not None and (arch.family, backend) not in MODELLED:
        if cross_node:
            raise InvalidLayoutError(
                "moe_ep",
                layout.moe_ep,
                f"large-EP (all-to-all) pricing of the {arch.family} family on {backend} is not modelled "
                f"(node width {gpn} GPUs)",
            )
        return None
    if comm is None and cross_node:
        if layout.moe_tp != 1:
            reason = "cross-node expert parallelism needs pure EP (moe_tp 1)"
        elif backend == "trtllm" and layout.dp <= 1:
            reason = (
                "TRT-LLM runs cross-node expert parallelism only with attention data parallelism (dp > 1)"
            )
        else:
            reason = (
                "cross-node expert parallelism needs measured all-to-all + EP expert-compute data for "
                f"{arch.name} at this MoE quant on this system/backend"
            )
        raise InvalidLayoutError("moe_ep", layout.moe_ep, f"{reason} (node width {gpn} GPUs)")
    return comm


def multi_node_eps(cov: Coverage, role: str, gpus_per_node: int) -> set[int]:
    """Covered EP sizes wider than one node in every phase the role needs (open the ladder)."""
    eps: set[int] | None = None
    for phase in role_phases(role):
        per_backend = cov.get(phase, {})
        phase_eps = set().union(*per_backend.values()) if per_backend else set()
        eps = phase_eps if eps is None else eps & phase_eps
    return {ep for ep in eps or set() if ep > gpus_per_node}
