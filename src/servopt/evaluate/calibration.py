"""A calibration profile's four adjustments on evaluated candidates: one formula for the search,
``cli estimate`` and every mode, applied to whole arrays after the kernels.

The adjustments are ``servopt.simulate.adjust.Adjustments`` (fitted by ``servopt.calibrate``):
``request_overhead_ms``, ``iteration_overhead_ms``, ``prefill_scale``, ``decode_scale``. On the
analytic schedules they mean:

- TTFT (static, static_ctx, agg) = TTFT * prefill_scale + iteration_overhead + request_overhead:
  the context pass is scaled, pays one pass's fixed cost, and the request's trip to the engine
  queue is part of its first token;
- TPOT (static, static_gen, agg) = TPOT * decode_scale + iteration_overhead / tokens_per_step:
  each decode pass is scaled and pays one fixed cost, spread over the tokens a speculative step
  commits (1 without nextn);
- rates follow the latency: requests and tokens per second are multiplied by raw latency over
  calibrated latency (the requests in flight over a longer request), per-user tokens/s = 1000/TPOT.

The seed's ``prefill/decode_latency_correction_scale`` multiply the raw op latencies inside the
kernels (``run_static``); the profile applies after them, so a calibrated prefill TTFT is
``raw * correction * prefill_scale + iteration_overhead + request_overhead``.

Neutral adjustments return the input unchanged (the raw model, bit for bit).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from servopt.evaluate.agg import AggResult
from servopt.evaluate.static import StaticResult

if TYPE_CHECKING:
    from servopt.error_bands import PessimisticFactors
    from servopt.search.options import WorkerOptions
    from servopt.simulate.adjust import Adjustments


def is_neutral(adj: Adjustments | None) -> bool:
    return adj is None or adj.neutral


def schedule(mode: str, osl: int) -> tuple[int, bool]:
    """(decode steps after the first token, whether a prefill is timed) of a mode: static_ctx has
    no decode steps, static_gen no prefill; static and agg both."""
    return (0 if mode == "static_ctx" else max(osl - 1, 0)), mode != "static_gen"


class Adjusted(NamedTuple):
    ttft_ms: np.ndarray
    tpot_ms: np.ndarray
    request_latency_ms: np.ndarray
    rate_ratio: np.ndarray  # calibrated rate / raw rate
    tokens_per_s_per_user: np.ndarray


def adjusted_latencies(
    ttft_ms,
    tpot_ms,
    request_latency_ms,
    adj: Adjustments,
    *,
    steps: int,
    tokens_per_step: float,
    has_prefill: bool,
) -> Adjusted:
    """The module's formula on arrays: ``steps`` decode steps after the first token (0 for a
    prefill-only worker), ``has_prefill`` False for a decode-only worker (its TTFT stays 0)."""
    ttft = np.asarray(ttft_ms, dtype=np.float64)
    tpot = np.asarray(tpot_ms, dtype=np.float64)
    raw_latency = np.asarray(request_latency_ms, dtype=np.float64)
    if has_prefill:
        ttft = ttft * adj.prefill_scale + adj.iteration_overhead_ms + adj.request_overhead_ms
    if steps:
        tpot = tpot * adj.decode_scale + adj.iteration_overhead_ms / tokens_per_step
    latency = ttft + tpot * steps
    ok = (latency > 0) & (raw_latency > 0)
    ratio = np.where(ok, raw_latency / np.where(ok, latency, 1.0), 1.0)
    per_user = np.where((tpot > 0) & (steps > 0), 1000.0 / np.where(tpot > 0, tpot, 1.0), 0.0)
    return Adjusted(ttft, tpot, latency, ratio, per_user)


def adjust_static(
    res: StaticResult, adj: Adjustments | None, *, mode: str, osl: int, tokens_per_step: float
) -> StaticResult:
    """A static-mode result with the profile's adjustments (``mode``: static | static_ctx | static_gen)."""
    return _adjust(res, adj, mode, osl, tokens_per_step)


def _adjust(res, adj: Adjustments | None, mode: str, osl: int, tokens_per_step: float):
    """A static or agg result (the same rate fields) with the adjustments; rates follow."""
    if is_neutral(adj):
        return res
    steps, has_prefill = schedule(mode, osl)
    a = adjusted_latencies(
        res.ttft_ms,
        res.tpot_ms,
        res.request_latency_ms,
        adj,
        steps=steps,
        tokens_per_step=tokens_per_step,
        has_prefill=has_prefill,
    )
    return res._replace(
        ttft_ms=a.ttft_ms,
        tpot_ms=a.tpot_ms,
        request_latency_ms=a.request_latency_ms,
        seq_per_s=res.seq_per_s * a.rate_ratio,
        tokens_per_s=res.tokens_per_s * a.rate_ratio,
        tokens_per_s_per_gpu=res.tokens_per_s_per_gpu * a.rate_ratio,
        tokens_per_s_per_user=a.tokens_per_s_per_user,
    )


def adjust_agg(res: AggResult, adj: Adjustments | None, *, osl: int, tokens_per_step: float) -> AggResult:
    """An in-flight-batching (agg) result with the profile's adjustments."""
    return _adjust(res, adj, "agg", osl, tokens_per_step)


def at_pessimistic_end(opts: WorkerOptions, f: PessimisticFactors) -> WorkerOptions:
    """Worker options with every candidate at the band's pessimistic end: one uniform factor per
    figure (the band is per backend), so the selection redone on them is the search that plans
    against it. Requests in flight (the batch) stay as they are."""
    return dataclasses.replace(
        opts,
        ttft_ms=opts.ttft_ms * f.ttft,
        tpot_ms=opts.tpot_ms * f.tpot,
        rate_per_s=opts.rate_per_s * f.throughput,
    )
