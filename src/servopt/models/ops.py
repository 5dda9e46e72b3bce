"""Op descriptors: one model phase (context or generation) as a flat list of priced operations.

A phase is a short list (~15) of :class:`OpSpec`; each is evaluated once at a per-layer, per-GPU
shape and multiplied by its ``scale`` (usually the layer count). Phase latency is the sum of the
op latencies, except inside one *overlap block* (two op groups on parallel CUDA streams: the block
costs the slower group) and *fallback* ops (a whole-module table used when it covers the query,
else the sum of a granular op list). These are the peer's composition rules (reference §3.2).

Shapes are per GPU: heads are divided by tp, GEMM n or k by tp, MoE keys carry (moe_tp, moe_ep).
Token counts are not part of the descriptor: the evaluator supplies them per candidate row
(``x`` tokens for token-major ops, batch and sequence length for attention ops).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import NamedTuple

from servopt.errors import UnknownNameError


class Family(IntEnum):
    """How an op is priced: which perf-database query (or analytic formula) answers it."""

    GEMM = 0
    ELEMENTWISE = 1  # memory-bound, bytes_per_token * x
    EMBEDDING = 2  # memory-bound lookup, 2 bytes * hidden * x
    CONTEXT_ATTENTION = 3
    GENERATION_ATTENTION = 4
    CONTEXT_MLA = 5
    GENERATION_MLA = 6
    MLA_MODULE = 7  # whole MLA attention block table (with a granular fallback)
    MLA_BMM = 8
    MOE = 9
    MOE_DISPATCH = 10  # MoE dispatch/combine: a sum of collective terms
    ALLREDUCE = 11  # custom all-reduce over tp
    NCCL = 12
    P2P = 13  # pipeline-parallel hop
    MOE_A2A = 14  # large-EP all-to-all phase (prepare / dispatch / combine), per-rank tokens
    MOE_EP = 15  # large-EP expert compute, global tokens (per-rank x attention dp)
    WIDEEP_CONTEXT_MLA = 16  # SGLang wide-EP MLA attention kernel (its own table), context
    WIDEEP_GENERATION_MLA = 17  # the same, one decode step


class Overlap(IntEnum):
    """Membership in one of the phase's overlap blocks (each costs the max of its two groups' sums).

    Block 1 (A | B) is the routed-vs-shared expert overlap of MoE decode; block 2 (C | D) the
    absorption-BMM-vs-rope/KV-write overlap of the TRT-LLM wide-EP MLA decode.
    """

    NONE = 0
    GROUP_A = 1
    GROUP_B = 2
    GROUP_C = 3
    GROUP_D = 4


# Bytes per element of each quant mode (weights, KV cache, FMHA I/O, comm payloads). nvfp4 carries
# one fp8 scale per 16 four-bit weights: 9/16 byte per element.
QUANT_BYTES: dict[str, float] = {
    "float16": 2.0,
    "fp8": 1.0,
    "fp8_block": 1.0,
    "fp8_static": 1.0,
    "int8": 1.0,
    "int8_wo": 1.0,
    "int4_wo": 0.5,
    "w4afp8": 0.5,
    "w4a16_mxfp4": 0.5,
    "w4a8_mxfp4_mxfp8": 0.5,
    "nvfp4": 9.0 / 16.0,
    "half": 2.0,
}

# Bytes per element of activations moved by embeddings and pipeline hops (bf16).
ACTIVATION_BYTES = 2


def quant_bytes(field_name: str, quant: str) -> float:
    """Bytes per element of ``quant``; an unknown mode is a user error naming ``field_name``."""
    try:
        return QUANT_BYTES[quant]
    except KeyError:
        raise UnknownNameError(field_name, quant, "unknown quant mode", sorted(QUANT_BYTES)) from None


@dataclass(frozen=True)
class CommTerm:
    """One collective inside a MoE dispatch/combine op.

    ``collective`` is ``all_reduce`` (the custom all-reduce kernel) or an NCCL op name
    (``all_gather``, ``reduce_scatter``); the message is
    ``x * token_multiplier * hidden * element_factor`` elements over ``num_gpus`` ranks.
    """

    collective: str
    num_gpus: int
    token_multiplier: int = 1
    # Elements per hidden element on the wire (Blackwell quantized all-gather: fp8 halves it).
    element_factor: float = 1.0


@dataclass(frozen=True)
class OpSpec:
    """One priced operation of a phase (fields not used by ``family`` stay at their defaults)."""

    name: str
    family: Family
    scale: float
    # GEMM: C[m, n] = A[m, k] @ B[k, n] with m = tokens
    n: int = 0
    k: int = 0
    quant: str = ""  # GEMM / MoE / MLA-BMM / MLA-module GEMM quant
    low_precision_input: bool = False  # input already quantized (fp8_static skips scale_matrix)
    logits: bool = False  # the LM head: context phase prices it at x = batch (last token only)
    # attention
    heads: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    window: int = 0
    qk_norm: bool = False
    kv_quant: str = ""
    fmha_quant: str = ""
    # element-wise / embedding / comm payload
    bytes_per_token: float = 0.0
    hidden: int = 0
    # MoE
    inter: int = 0
    topk: int = 0
    experts: int = 0
    moe_tp: int = 1
    moe_ep: int = 1
    dp: int = 1
    distribution: str = ""
    gated: bool = True
    # collectives
    num_gpus: int = 1
    collective: str = ""  # NCCL op
    terms: tuple[CommTerm, ...] = ()  # MoE dispatch
    pre: bool = False  # MLA-BMM pre/post
    # large-EP all-to-all / expert compute
    a2a_backend: str = ""  # comm backend (trtllm_deepep_ht, ...)
    a2a_phase: str = ""  # prepare | dispatch | combine
    a2a_dtype: str = ""  # wire dtype
    nodes: int = 1  # nodes the EP group spans
    slots: int = 0  # expert slots (EPLB redundancy; = experts without it)
    sms: int = 0  # all-to-all SM budget (0: the kernel's own; SGLang DeepEP normal runs 20)
    kernel: str = ""  # collected kernel a table op reads ("" = the table's first for the quant)
    # Token-major ops that split their tokens over attention TP ranks (SGLang's wide-EP prefill):
    # GEMM m, element-wise bytes and all-to-all tokens per rank are x // token_split.
    token_split: int = 1
    # Context parallelism (SGLang prefill, cp ranks split each prompt): token-major ops see
    # ceil(x / seq_split) tokens per rank; context attention with ``cp`` > 1 is rank 0's zigzag
    # pair of chunks (``evaluate.phase``). Both stay 1 outside the context phase of a cp layout.
    seq_split: int = 1
    cp: int = 1
    # composition
    overlap: Overlap = Overlap.NONE
    fallback: tuple[OpSpec, ...] = field(default=())  # granular ops replacing an uncovered module

    @property
    def is_attention_slot(self) -> bool:
        """The op the mixed (agg) step prices separately: the peer matches the top-level name."""
        return self.name in ("context_attention", "generation_attention")


def weight_bytes(op: OpSpec) -> float:
    """Weight bytes of one op on one GPU, summed over its layers (``scale``).

    Fallback modules count their granular ops (the module table has no weight notion); overlap
    groups add. MoE weights keep the peer's two sequential floors (÷ep, then ÷moe_tp).
    """
    if op.fallback:
        return sum(weight_bytes(inner) for inner in op.fallback)
    if op.family is Family.GEMM:
        return op.n * op.k * quant_bytes("gemm_quant_mode", op.quant) * op.scale
    if op.family is Family.EMBEDDING:
        # ``n`` holds the vocabulary rows this GPU stores.
        return op.n * op.hidden * ACTIVATION_BYTES * op.scale
    if op.family is Family.MOE:
        gemms = 3 if op.gated else 2
        raw = op.hidden * op.inter * op.experts * quant_bytes("moe_quant_mode", op.quant) * gemms
        return (raw // op.moe_ep) // op.moe_tp * op.scale
    if op.family is Family.MOE_EP:
        # Every rank holds its share of the expert slots (redundant EPLB slots included).
        gemms = 3 if op.gated else 2
        raw = op.hidden * op.inter * op.slots * quant_bytes("moe_quant_mode", op.quant) * gemms
        return raw // op.moe_ep * op.scale
    return 0.0


class QuantModes(NamedTuple):
    """The quantization of each component (the experiment YAML's ``*_quant_mode`` fields)."""

    gemm: str
    moe: str
    kvcache: str
    fmha: str
    comm: str = "half"


class PhaseOps(NamedTuple):
    """The op lists of one worker layout: prefill (context) and one decode step (generation)."""

    context: tuple[OpSpec, ...]
    generation: tuple[OpSpec, ...]

    @property
    def weight_bytes(self) -> float:
        """Weight bytes per GPU before the pipeline split (the peer counts the context list)."""
        return sum(weight_bytes(op) for op in self.context)
