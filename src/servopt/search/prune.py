"""Exact pruning of worker options: filters, then dominance within equal GPU counts.

Why the optimum survives (every statement below is about options with the SAME GPU count, so a
swap never changes a replica's size, its worker counts, its pool GPUs or the cluster budget):

- Prefill: a prefill option enters a replica only through its GPU count and its rate; its TTFT
  only has to pass the target, which the filter already checked. Swapping any TTFT-feasible option
  for the fastest TTFT-feasible option of the same GPU count keeps every constraint and cannot
  lower ``min(0.9*x*r_P, 0.92*y*r_D)``. So one option per GPU count suffices.
- Decode (and agg): an option enters through GPU count, rate and TPOT. If option b has rate >= and
  TPOT <= option a's, swapping a for b keeps every constraint (a TPOT cap included), cannot lower
  the throughput and cannot raise the deployment's TPOT. So the (rate up, TPOT down) Pareto set per
  GPU count suffices, for the answer at any TPOT cap and hence for the whole frontier.
Prefill and decode options are grouped by (GPU count, ``pair_key``) instead of GPU count alone, so
a swap also keeps which options may pair. Ties keep the first row in a canonical order (group,
then the ordering key, then ``row``), so pruning is deterministic.
"""

from __future__ import annotations

import math

import numpy as np

from servopt.search.options import WorkerOptions


def _pareto_rate_tpot(options: WorkerOptions, key: np.ndarray) -> np.ndarray:
    """Indices of the per-(gpus, key) (rate up, TPOT down) Pareto set, sorted by (gpus, key, TPOT)."""
    order = np.lexsort((options.row, -options.rate_per_s, options.tpot_ms, key, options.gpus))
    keep = []
    prev, best_rate = None, -math.inf
    for i in order:
        group = (options.gpus[i], key[i])
        if group != prev:
            prev, best_rate = group, -math.inf
        # Sorted by TPOT within a GPU count: keep an option only if it is strictly faster in rate
        # than every option with lower or equal TPOT.
        if options.rate_per_s[i] > best_rate:
            keep.append(i)
            best_rate = options.rate_per_s[i]
    return np.asarray(keep, dtype=np.int64)


def prune_agg(options: WorkerOptions, *, ttft_ms: float, max_gpus: int) -> np.ndarray:
    """Indices of agg workers meeting TTFT within ``max_gpus``, reduced to the per-size
    (rate, TPOT) Pareto set, sorted by (GPUs, TPOT)."""
    ok = np.flatnonzero((options.ttft_ms <= ttft_ms) & (options.gpus <= max_gpus))
    # One agg worker is a whole replica: nothing pairs, so pair_key plays no part.
    return ok[_pareto_rate_tpot(options.take(ok), np.zeros(ok.size, dtype=np.int64))]


def prune_decode(options: WorkerOptions, *, max_gpus: int, tpot_ms: float = math.inf) -> np.ndarray:
    """Indices of decode workers within ``max_gpus`` (and a TPOT cap), reduced to the per-size
    Pareto set, sorted by (GPUs, TPOT)."""
    ok = np.flatnonzero((options.gpus <= max_gpus) & (options.tpot_ms <= tpot_ms))
    return ok[_pareto_rate_tpot(options.take(ok), options.pair_key[ok])]


def prune_prefill(options: WorkerOptions, *, ttft_ms: float, ttft_factor: float, max_gpus: int) -> np.ndarray:
    """Indices of the fastest prefill worker per (GPU count, pair_key) whose corrected TTFT meets
    the target, sorted by (GPUs, pair_key)."""
    ok = np.flatnonzero((options.ttft_ms * ttft_factor <= ttft_ms) & (options.gpus <= max_gpus))
    sub = options.take(ok)
    order = np.lexsort((sub.row, sub.ttft_ms, -sub.rate_per_s, sub.pair_key, sub.gpus))
    group = np.stack([sub.gpus[order], sub.pair_key[order]], axis=1)
    first = np.flatnonzero(np.r_[True, np.any(group[1:] != group[:-1], axis=1)]) if ok.size else ok
    return ok[order[first]]
