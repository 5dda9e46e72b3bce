"""Aggregated in-flight batching: prefill chunks and decode steps share every forward pass.

The peer's mean-field schedule (reference §4.2) for ``b`` concurrent requests, each needing
``isl`` prefill tokens and ``D = 1 + (osl - 1) / progress`` decode iterations, with a budget of
``C`` context tokens per step:

- ``ceil(isl * b / C)`` *mixed* steps carry the prefill chunks plus ``g`` decode requests;
- the remaining ``D - mixed`` iterations are *decode-only* steps of all ``b`` requests;
- a mixed step is priced in three passes: every non-attention op at ``C + g (nextn + 1)`` tokens,
  context attention of ``ceil(C / isl)`` requests divided by the chunks per request, and decode
  attention of the ``g`` riders at mid-sequence (``isl + osl // 2 + 1``);
- TTFT is a request's prefill time times a queueing factor; TPOT averages mixed and decode-only
  steps (TRT-LLM and SGLang discount three pipeline-drain steps).

Backend differences are data (:data:`AGG_POLICIES`), not branches in the arithmetic.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from servopt.evaluate.candidates import Candidates, LayoutOps, Workload
from servopt.evaluate.memory import TRTLLM_MAX_NUM_TOKENS, Memory, candidate_memory, kv_budget_rule
from servopt.evaluate.phase import PhaseCoords, PhaseLatency, Select, evaluate_phase


class AggPolicy(NamedTuple):
    """A framework's scheduling behaviour in the mean-field agg model."""

    # Decode riders per mixed step: "balanced" spreads decode over the prefill steps when prefill
    # dominates (TRT-LLM, SGLang); "one_prefill" keeps b - ceil(C/isl) riders (vLLM v1 schedules a
    # single partial prefill at a time).
    riders: str
    # Mixed steps not counted in TPOT: requests cannot join right after the last prefill.
    drain_steps: int
    # TTFT queueing: "linear" min(2 + (steps - 3) / 20, 4); "log" min(1 + log2(b) / 8, 2).
    queueing: str
    # CPU dispatch cost per layer added to each prefill (ms).
    dispatch_ms_per_layer: float
    # Cap throughput at Little's law b * (osl - 1) / request latency.
    littles_law_cap: bool
    # Activations sized for the engine's fixed token budget (TRT-LLM max_num_tokens) instead of
    # the tokens of the step.
    fixed_token_budget: int | None


AGG_POLICIES = {
    "trtllm": AggPolicy("balanced", 3, "linear", 0.0, False, TRTLLM_MAX_NUM_TOKENS),
    "sglang": AggPolicy("balanced", 3, "linear", 0.0, False, None),
    "vllm": AggPolicy("one_prefill", 0, "log", 0.8, True, None),
}

# TTFT queueing factor constants (linear form): 2 + (steps - 3) / 20, at most 4; (log form):
# 1 + log2(b) / 8, at most 2.
QUEUE_BASE, QUEUE_OFFSET_STEPS, QUEUE_STEPS_PER_UNIT, QUEUE_MAX = 2.0, 3.0, 20.0, 4.0
LOG_QUEUE_BATCH_OCTAVES, LOG_QUEUE_MAX = 8.0, 2.0


class AggSchedule(NamedTuple):
    """Per-candidate step counts of the mean-field schedule."""

    ctx_steps: np.ndarray  # ceil(isl * b / C)
    riders: np.ndarray  # decode requests in each mixed step
    mix_steps: np.ndarray
    mix_steps_for_tpot: np.ndarray
    decode_steps: np.ndarray
    decode_batch: np.ndarray  # requests in each decode-only step (0: none)


class AggResult(NamedTuple):
    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    request_latency_ms: np.ndarray
    seq_per_s: np.ndarray
    tokens_per_s: np.ndarray
    tokens_per_s_per_gpu: np.ndarray
    tokens_per_s_per_user: np.ndarray
    concurrency: np.ndarray
    gpus: np.ndarray
    mix_step_ms: np.ndarray
    decode_step_ms: np.ndarray
    schedule: AggSchedule
    memory: Memory
    mix: PhaseLatency  # per-op latency of one mixed step
    decode: PhaseLatency  # per-op latency of one decode-only step


def schedule(
    policy: AggPolicy, batch: np.ndarray, ctx_tokens: np.ndarray, isl: int, osl: int, progress: float
) -> AggSchedule:
    b = np.asarray(batch, dtype=np.int64)
    c = np.asarray(ctx_tokens, dtype=np.int64)
    iterations = 1.0 + max(osl - 1, 0) / progress
    ctx_steps = np.ceil(isl * b / c)
    prefilling = np.ceil(c / isl)
    if policy.riders == "one_prefill":
        riders = np.maximum(1, b - prefilling)
    else:
        spread = np.maximum(1, np.floor_divide(b, ctx_steps / iterations))
        riders = np.where(ctx_steps >= iterations, spread, np.maximum(1, b - prefilling))
    prefill_bound = ctx_steps >= iterations
    mix_steps = ctx_steps.copy()
    decode_steps = np.where(prefill_bound, 0.0, iterations - mix_steps)
    decode_batch = np.where(prefill_bound, 0, b)
    drained = np.maximum(1, mix_steps - policy.drain_steps) if policy.drain_steps else mix_steps
    mix_for_tpot = np.where(prefill_bound, mix_steps, drained)
    # A single request: one context-only step, then decode-only steps.
    single = b == 1
    riders = np.where(single, 0, riders)
    mix_steps = np.where(single, 1.0, mix_steps)
    decode_steps = np.where(single, max(iterations - 1.0, 0.0), decode_steps)
    decode_batch = np.where(single, 1, decode_batch)
    mix_for_tpot = np.where(single, 0.0, mix_for_tpot)
    return AggSchedule(
        ctx_steps,
        riders.astype(np.int64),
        mix_steps,
        mix_for_tpot,
        decode_steps,
        decode_batch.astype(np.int64),
    )


def mixed_step(db, lops: LayoutOps, cand: Candidates, work: Workload, riders: np.ndarray) -> PhaseLatency:
    """One mixed prefill+decode step per candidate: the three passes summed per op."""
    nextn = lops.setup.nextn
    isl, osl, prefix = work
    n = len(cand)
    layout = cand.layout
    c = cand.ctx_tokens.astype(np.int64)
    ones = np.ones((n, 1))
    # Pass 1: non-attention ops on the combined token count (batch 1).
    combined = c + riders * (nextn + 1)
    prefix1 = prefix * (c // isl)
    new1 = combined - prefix1
    one = np.ones(n, dtype=np.int64)
    p1 = evaluate_phase(
        db,
        lops.context_ops,
        PhaseCoords(layout, one, new1, one, prefix1, new1[:, None], ones),
        Select.SKIP_ATTENTION,
    )
    # Pass 2: context attention of the prefilling requests, one chunk's share.
    batch2 = -(-c // isl)
    chunks = -(-isl // c)
    new2 = np.full(n, isl - prefix, dtype=np.int64)
    p2 = evaluate_phase(
        db,
        lops.context_ops,
        PhaseCoords(
            layout, batch2, batch2 * new2, batch2, np.full(n, prefix), new2[:, None], ones / chunks[:, None]
        ),
        Select.ONLY_ATTENTION,
    )
    # Pass 3: decode attention of the riders at mid-sequence.
    dec = riders * (nextn + 1)
    mid = np.full((n, 1), isl + osl // 2 + 1, dtype=np.int64)
    p3 = evaluate_phase(
        db,
        lops.generation_ops,
        PhaseCoords(
            layout, dec, dec, dec, np.zeros(n, dtype=np.int64), mid, (dec > 0)[:, None].astype(np.float64)
        ),
        Select.ONLY_ATTENTION,
    )
    names = p1.names + p2.names + p3.names
    per_op = np.concatenate([p1.per_op_ms, p2.per_op_ms, p3.per_op_ms], axis=1)
    return PhaseLatency(names, per_op, p1.total_ms + p2.total_ms + p3.total_ms)


def decode_step(
    db, lops: LayoutOps, cand: Candidates, work: Workload, decode_batch: np.ndarray
) -> PhaseLatency:
    """One decode-only step of ``decode_batch`` requests at mid-sequence (0 requests: 0 ms)."""
    nextn = lops.setup.nextn
    n = len(cand)
    dec = decode_batch * (nextn + 1)
    mid = np.full((n, 1), work.isl + work.osl // 2 + 1, dtype=np.int64)
    coords = PhaseCoords(
        cand.layout, dec, dec, dec, np.zeros(n, dtype=np.int64), mid, (dec > 0)[:, None].astype(np.float64)
    )
    return evaluate_phase(db, lops.generation_ops, coords)


def agg_memory(lops: LayoutOps, cand: Candidates, work: Workload, policy: AggPolicy) -> Memory:
    setup = lops.setup
    b = cand.batch
    rule = kv_budget_rule(setup.backend, setup.system, setup.version, static=False)

    def usage(num_tokens, mtp_scaled):
        return candidate_memory(
            lops,
            cand,
            num_tokens=num_tokens,
            kv_seq_tokens=work.isl + work.osl,
            mtp_scaled_tokens=mtp_scaled,
            rule=rule,
        )

    if policy.fixed_token_budget is not None:
        return usage(np.full(len(b), policy.fixed_token_budget), None)
    decoding = b - np.ceil(cand.ctx_tokens / work.isl)
    mixed = usage(np.where(b > 1, decoding + cand.ctx_tokens, cand.ctx_tokens), np.where(b > 1, decoding, 0))
    if work.osl <= 1 or not np.any(b == 1):
        return mixed
    # A single request: the larger of its context-only step and its decode steps.
    decode_only = usage(np.ones(len(b)), None)
    pick = (b == 1) & (decode_only.total > mixed.total)
    return Memory(*(np.where(pick, d, m) for d, m in zip(decode_only, mixed, strict=True)))


def run_agg(
    db, lops: LayoutOps, cand: Candidates, work: Workload, *, accepted_tokens: float = 0.0
) -> AggResult:
    """Agg metrics of every (layout, batch, ctx_tokens) candidate."""
    setup = lops.setup
    policy = AGG_POLICIES[setup.backend]
    isl, osl, _ = work
    progress = 1.0 + accepted_tokens if setup.nextn > 0 else 1.0
    sched = schedule(policy, cand.batch, cand.ctx_tokens, isl, osl, progress)
    mix = mixed_step(db, lops, cand, work, sched.riders)
    dec = decode_step(db, lops, cand, work, sched.decode_batch)
    mix_ms, dec_ms = mix.total_ms, dec.total_ms

    b = cand.batch.astype(np.float64)
    if policy.queueing == "log":
        queue = np.where(
            b <= 1,
            1.0,
            np.minimum(1.0 + np.log2(np.maximum(b, 1.0)) / LOG_QUEUE_BATCH_OCTAVES, LOG_QUEUE_MAX),
        )
    else:
        queue = np.minimum(
            QUEUE_BASE + (sched.ctx_steps - QUEUE_OFFSET_STEPS) / QUEUE_STEPS_PER_UNIT, QUEUE_MAX
        )
    chunks = np.ceil(isl / cand.ctx_tokens)
    overhead = policy.dispatch_ms_per_layer * setup.arch.num_layers
    ttft = (mix_ms * chunks + overhead) * queue

    tpot_steps = sched.mix_steps_for_tpot + sched.decode_steps
    tpot = np.where(
        tpot_steps > 0,
        (mix_ms * sched.mix_steps_for_tpot + dec_ms * sched.decode_steps)
        / np.where(tpot_steps > 0, tpot_steps, 1.0)
        / progress,
        0.0,
    )
    total_ms = sched.mix_steps * mix_ms + sched.decode_steps * dec_ms
    steps = max(osl - 1, 0)
    rate = np.where(
        (total_ms > 0) & (steps > 0), 1000.0 / np.where(total_ms > 0, total_ms, 1.0) * b * steps, 0.0
    )
    latency = ttft + tpot * steps
    if policy.littles_law_cap:
        cap = np.where(latency > 0, b * steps * 1000.0 / np.where(latency > 0, latency, 1.0), rate)
        rate = np.minimum(rate, cap)

    pp, dp, gpus = (lops.column(c)[cand.layout] for c in ("pp", "dp", "gpus"))
    tokens_per_s = rate * pp * dp
    return AggResult(
        ttft_ms=ttft,
        tpot_ms=tpot,
        request_latency_ms=latency,
        seq_per_s=tokens_per_s / steps if steps else np.zeros(len(cand)),
        tokens_per_s=tokens_per_s,
        tokens_per_s_per_gpu=tokens_per_s / gpus,
        tokens_per_s_per_user=np.where((tpot > 0) & (steps > 0), 1000.0 / np.where(tpot > 0, tpot, 1.0), 0.0),
        concurrency=cand.batch * pp * dp,
        gpus=gpus,
        mix_step_ms=mix_ms,
        decode_step_ms=dec_ms,
        schedule=sched,
        memory=agg_memory(lops, cand, work, policy),
        mix=mix,
        decode=dec,
    )
