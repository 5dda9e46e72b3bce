"""Synthetic worker-option tables shaped like real ones, for benchmarks and solver tests.

Shapes follow the peer's sweeps (its decode batch schedule, one or a few layouts per GPU count,
TPOT and throughput rising with batch, bigger workers faster per request) so the search sees
realistic table sizes and Pareto structure. Latencies are a simple affine step-time model with
seeded jitter; they are not predictions of any real model or GPU.
"""

from __future__ import annotations

import numpy as np

from servopt.search.options import WorkerOptions

# The peer's decode batch schedule: 1..15, 16..30 step 2, 32..124 step 4, 128..504 step 8, 512.
DECODE_BATCHES = np.array(
    [*range(1, 16), *range(16, 31, 2), *range(32, 125, 4), *range(128, 505, 8), 512], dtype=np.int64
)
WORKER_GPUS = (1, 2, 4, 8)


def _layout_gpus(layouts_per_size: int) -> np.ndarray:
    return np.repeat(np.array(WORKER_GPUS, dtype=np.int64), layouts_per_size)


def decode_options(
    rng: np.random.Generator,
    *,
    layouts_per_size: int = 4,
    osl: int = 1000,
    batches: np.ndarray = DECODE_BATCHES,
) -> WorkerOptions:
    """Decode workers: every layout x batch size that fits a KV budget growing with GPUs."""
    gpus, tpot, rate, conc = [], [], [], []
    for g in _layout_gpus(layouts_per_size):
        base_ms = 30.0 / g**0.7 * rng.uniform(0.8, 1.25)  # weight streaming per step
        per_seq_ms = 0.12 / g * rng.uniform(0.8, 1.25)  # KV reads per sequence per step
        b = batches[batches <= 64 * g * rng.uniform(0.7, 1.3)]
        step_ms = (base_ms + per_seq_ms * b) * 1.08
        gpus.append(np.full(b.size, g))
        tpot.append(step_ms)
        rate.append(1000.0 * b / (step_ms * (osl - 1)))
        conc.append(b.astype(np.float64))
    return WorkerOptions.from_arrays(
        gpus=np.concatenate(gpus),
        rate_per_s=np.concatenate(rate),
        tpot_ms=np.concatenate(tpot),
        concurrency=np.concatenate(conc),
    )


def prefill_options(
    rng: np.random.Generator, *, layouts_per_size: int = 4, max_batch: int = 2
) -> WorkerOptions:
    """Prefill workers: every layout x batch 1..max_batch; latency grows with batch."""
    gpus, ttft, rate = [], [], []
    for g in _layout_gpus(layouts_per_size):
        one_ms = 900.0 / g**0.85 * rng.uniform(0.85, 1.2) * 1.1
        for b in range(1, max_batch + 1):
            lat = one_ms * b * rng.uniform(0.95, 1.0)
            gpus.append(g)
            ttft.append(lat)
            rate.append(1000.0 * b / lat)
    n = len(gpus)
    return WorkerOptions.from_arrays(gpus=gpus, rate_per_s=rate, ttft_ms=ttft, concurrency=np.ones(n))


def agg_options(
    rng: np.random.Generator, *, layouts_per_size: int = 8, osl: int = 1000, ctx_variants: int = 2
) -> WorkerOptions:
    """Aggregated workers: every layout x batch x context-chunk variant."""
    gpus, ttft, tpot, rate, conc = [], [], [], [], []
    for g in _layout_gpus(layouts_per_size):
        base_ms = 30.0 / g**0.7 * rng.uniform(0.8, 1.25)
        per_seq_ms = 0.2 / g * rng.uniform(0.8, 1.25)
        prefill_ms = 900.0 / g**0.85 * rng.uniform(0.85, 1.2)
        b = DECODE_BATCHES[64 * g >= DECODE_BATCHES]
        for c in range(1, ctx_variants + 1):
            mix = 1.0 + 0.4 * c * rng.uniform(0.9, 1.1)
            step_ms = (base_ms + per_seq_ms * b) * mix
            gpus.append(np.full(b.size, g))
            tpot.append(step_ms)
            ttft.append(prefill_ms / c * (2 + b / 64))
            rate.append(1000.0 * b / (step_ms * osl))
            conc.append(b.astype(np.float64))
    return WorkerOptions.from_arrays(
        gpus=np.concatenate(gpus),
        rate_per_s=np.concatenate(rate),
        ttft_ms=np.concatenate(ttft),
        tpot_ms=np.concatenate(tpot),
        concurrency=np.concatenate(conc),
    )
