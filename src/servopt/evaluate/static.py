"""Static batching: a batch of requests prefilled together, then decoded together.

TTFT is the context phase of the whole batch; the decode phase is integrated over its trajectory
with the peer's stride quadrature: the KV length of step ``i`` is ``isl + i + 1`` and one step in
every ``stride`` is priced, weighted by the steps it stands for. Modes: ``static`` (both phases),
``static_ctx`` (a disaggregated prefill worker), ``static_gen`` (a disaggregated decode worker).
Speculative decoding (nextn) prices ``nextn + 1`` tokens per request per step and then credits
the expected accepted drafts (:mod:`servopt.evaluate.nextn`).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

from servopt.errors import UnknownNameError
from servopt.evaluate.candidates import Candidates, LayoutOps, Workload
from servopt.evaluate.memory import Memory, candidate_memory, kv_budget_rule
from servopt.evaluate.phase import PhaseCoords, PhaseLatency, context_coords, evaluate_phase

Mode = Literal["static", "static_ctx", "static_gen"]
MODES = ("static", "static_ctx", "static_gen")

# One decode step in every DECODE_STRIDE is priced (the peer's quadrature; ~32 steps for osl 1000).
DECODE_STRIDE = 32


class StaticResult(NamedTuple):
    """Per-candidate metrics of static batching (ms, per-second rates)."""

    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    request_latency_ms: np.ndarray
    context_ms: np.ndarray
    generation_ms: np.ndarray
    concurrency: np.ndarray  # requests in flight over the worker (batch x dp)
    seq_per_s: np.ndarray
    tokens_per_s: np.ndarray
    tokens_per_s_per_gpu: np.ndarray
    tokens_per_s_per_user: np.ndarray
    gpus: np.ndarray
    memory: Memory
    context: PhaseLatency | None
    generation: PhaseLatency | None


def decode_steps(isl: int, osl: int, stride: int = DECODE_STRIDE) -> tuple[np.ndarray, np.ndarray]:
    """KV length and weight of each priced decode step: ``isl + i + 1`` for i in 0, stride, ..."""
    starts = np.arange(0, max(osl - 1, 0), stride, dtype=np.int64)
    return isl + starts + 1, np.minimum(stride, osl - 1 - starts).astype(np.float64)


def generation_coords(layout, batch, seq_steps: np.ndarray, weights: np.ndarray, nextn: int) -> PhaseCoords:
    """Decode of ``batch`` requests at the given steps; each request verifies nextn + 1 tokens."""
    layout = np.asarray(layout, dtype=np.int64)
    tokens = np.asarray(batch, dtype=np.int64) * (nextn + 1)
    n = len(layout)
    seq = np.broadcast_to(np.asarray(seq_steps, dtype=np.int64), (n, len(seq_steps)))
    weight = np.broadcast_to(np.asarray(weights, dtype=np.float64), (n, len(weights)))
    return PhaseCoords(layout, tokens, tokens, tokens, np.zeros(n, dtype=np.int64), seq, weight)


def context_phase(db, lops: LayoutOps, cand: Candidates, work: Workload) -> PhaseLatency:
    coords = context_coords(cand.layout, cand.batch, work.isl, work.prefix)
    return evaluate_phase(db, lops.context_ops, coords)


def generation_phase(
    db, lops: LayoutOps, cand: Candidates, work: Workload, stride: int = DECODE_STRIDE
) -> PhaseLatency:
    seq, weight = decode_steps(work.isl, work.osl, stride)
    coords = generation_coords(cand.layout, cand.batch, seq, weight, lops.setup.nextn)
    return evaluate_phase(db, lops.generation_ops, coords)


def static_memory(lops: LayoutOps, cand: Candidates, work: Workload, mode: Mode) -> Memory:
    """Memory of a static worker; activations follow the mode's largest step."""
    setup = lops.setup
    tp, pp, dp = (lops.column(c)[cand.layout] for c in ("tp", "pp", "dp"))
    batch = cand.batch
    if mode == "static_gen":
        # A decode step holds one (nextn + 1 speculative) token per request.
        num_tokens, kv_seq, mtp_scaled = batch, work.isl + work.osl, None
    else:
        num_tokens = (work.isl - work.prefix) * batch
        kv_seq = work.isl + (1 if mode == "static_ctx" else work.osl)
        mtp_scaled = np.zeros_like(batch)
    rule = kv_budget_rule(setup.backend, setup.system, setup.version, static=True, tp=tp, pp=pp, dp=dp)
    return candidate_memory(
        lops, cand, num_tokens=num_tokens, kv_seq_tokens=kv_seq, mtp_scaled_tokens=mtp_scaled, rule=rule
    )


def run_static(
    db,
    lops: LayoutOps,
    cand: Candidates,
    work: Workload,
    mode: Mode = "static",
    *,
    stride: int = DECODE_STRIDE,
    latency_correction: float = 1.0,
    accepted_tokens: float = 0.0,
) -> StaticResult:
    """Static-batching metrics of every candidate.

    ``latency_correction`` multiplies every op (the advanced-tuning correction scales);
    ``accepted_tokens`` is the expected number of accepted drafts per decode step (nextn > 0).
    """
    if mode not in MODES:
        raise UnknownNameError("mode", mode, "unknown static mode", MODES)
    n = len(cand)
    ctx = context_phase(db, lops, cand, work) if mode != "static_gen" else None
    gen = generation_phase(db, lops, cand, work, stride) if mode != "static_ctx" and work.osl > 1 else None
    ctx_ms = ctx.total_ms * latency_correction if ctx else np.zeros(n)
    gen_ms = gen.total_ms * latency_correction if gen else np.zeros(n)

    pp, dp, gpus = (lops.column(c)[cand.layout] for c in ("pp", "dp", "gpus"))
    concurrency = cand.batch * dp
    steps = max(work.osl - 1, 0)
    tpot = gen_ms / steps if steps else np.zeros(n)
    ttft = ctx_ms
    latency = ttft + tpot * steps
    latency = np.where(latency == 0.0, ctx_ms + gen_ms, latency)
    seq_per_s = np.where(latency > 0, concurrency / np.where(latency > 0, latency, 1.0) * 1000.0 * pp, 0.0)
    tokens_per_request = {"static": work.osl, "static_gen": work.osl - 1, "static_ctx": 1}[mode]

    progress = 1.0 + accepted_tokens if lops.setup.nextn > 0 and mode != "static_ctx" else 1.0
    if progress != 1.0:
        # Each decode iteration commits 1 + accepted tokens on average.
        tpot = tpot / progress
        gen_ms = gen_ms / progress
        new_latency = ttft + tpot * steps
        if mode == "static":
            # The prefill segment is not sped up: rates follow the end-to-end latency ratio.
            ratio = np.where(new_latency > 0, latency / np.where(new_latency > 0, new_latency, 1.0), 1.0)
        else:
            ratio = progress
        seq_per_s = seq_per_s * ratio
        latency = new_latency

    tokens_per_s = seq_per_s * tokens_per_request
    return StaticResult(
        ttft_ms=ttft,
        tpot_ms=tpot,
        request_latency_ms=latency,
        context_ms=ctx_ms,
        generation_ms=gen_ms,
        concurrency=concurrency,
        seq_per_s=seq_per_s,
        tokens_per_s=tokens_per_s,
        tokens_per_s_per_gpu=tokens_per_s / gpus,
        tokens_per_s_per_user=np.where(tpot > 0, 1000.0 / np.where(tpot > 0, tpot, 1.0), 0.0),
        gpus=gpus,
        memory=static_memory(lops, cand, work, mode),
        context=ctx,
        generation=gen,
    )
