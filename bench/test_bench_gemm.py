"""GEMM lookup throughput on h200_sxm (warm kernels, 2-core machine).

Search-shaped batches are what the evaluator asks for: the few distinct (n, k) of a model's GEMMs at
each tp layout, many token counts m (decode batch sizes, context tokens), one million queries in
candidate order. Random-point batches draw m, n, k independently and log-uniformly over and past the
measured ranges: nearly every query is distinct and its (n, k) uncollected, so each one takes the
nearest-site transfer path. Throughput lands in ``extra_info['lookups_per_s']``.

Run: ``pytest bench/test_bench_gemm.py --benchmark-enable -s``. Target: >= 10M lookups/s on
search-shaped batches.
"""

from __future__ import annotations

import numpy as np
import pytest

from servopt.perf_db.database import open_database

SYSTEM, BACKEND = "h200_sxm", "trtllm"
N_SEARCH = 1_000_000
N_RANDOM = 200_000
TP = (1, 2, 4, 8)
# Qwen3-32B: hidden 5120, 64 x 128 query heads, 8 x 128 kv heads, intermediate 25600, vocab 151936.
HIDDEN, Q_DIM, KV_DIM, INTER, VOCAB = 5120, 8192, 1024, 25600, 151936
DECODE_BATCHES = np.r_[1:16, 16:32:2, 32:128:4, 128:512:8, 512]
CONTEXT_TOKENS = 4000 * np.arange(1, 9)


def _model_shapes() -> np.ndarray:
    """(n, k) of the qkv, o-proj, gate+up, down and lm-head GEMMs at every tp."""
    shapes = []
    for tp in TP:
        shapes += [
            ((Q_DIM + 2 * KV_DIM) // tp, HIDDEN),
            (HIDDEN, Q_DIM // tp),
            (2 * INTER // tp, HIDDEN),
            (HIDDEN, INTER // tp),
            (VOCAB // tp, HIDDEN),
        ]
    return np.array(shapes, dtype=np.float64)


def _search_batch(rng: np.random.Generator, size: int):
    shapes = _model_shapes()
    op = rng.integers(0, len(shapes), size)
    m = rng.choice(np.concatenate([DECODE_BATCHES, CONTEXT_TOKENS]).astype(np.float64), size)
    return m, shapes[op, 0].copy(), shapes[op, 1].copy()


def _random_batch(rng: np.random.Generator, size: int):
    m = np.round(np.exp(rng.uniform(0, np.log(65536), size)))
    n = np.round(np.exp(rng.uniform(np.log(16), np.log(262144), size)))
    k = np.round(np.exp(rng.uniform(np.log(16), np.log(262144), size)))
    return m, n, k


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    database = open_database(SYSTEM, BACKEND, cache_dir=str(tmp_path_factory.mktemp("gemm-bench")))
    database.gemm_ms("fp8", [1, 64], [4096, 5000], [4096, 3000])  # compile the kernels
    return database


def _report(benchmark, n: int, label: str, **info) -> None:
    rate = n / benchmark.stats.stats.min if benchmark.stats else float("nan")
    benchmark.extra_info.update(lookups=n, lookups_per_s=rate, **info)
    print(f"\n{label}: {rate / 1e6:.2f} M lookups/s")


@pytest.mark.benchmark(group="gemm-search")
@pytest.mark.parametrize("quant", ["fp8_block", "float16", "fp8_static"])
def test_gemm_search_batch(benchmark, db, quant):
    m, n, k = _search_batch(np.random.default_rng(0), N_SEARCH)
    distinct = len(np.unique(np.stack([m, n, k], axis=1), axis=0))
    out = benchmark(db.gemm_ms, quant, m, n, k, missing="nan")
    assert out.shape == (N_SEARCH,) and np.isfinite(out).all()
    _report(benchmark, N_SEARCH, f"gemm {quant}, search-shaped", distinct_queries=distinct)


@pytest.mark.benchmark(group="gemm-random")
def test_gemm_random_points(benchmark, db):
    m, n, k = _random_batch(np.random.default_rng(1), N_RANDOM)
    out = benchmark.pedantic(db.gemm_ms, args=("fp8", m, n, k), kwargs={"missing": "nan"}, rounds=3)
    answered = float(np.isfinite(out).mean())
    assert answered > 0.8
    _report(benchmark, N_RANDOM, "gemm fp8, random points", answered_fraction=answered)


@pytest.mark.benchmark(group="gemm-random")
def test_gemm_collected_site_points(benchmark, db):
    """Random m on collected (n, k) sites only: the curve lookup alone, no transfer."""
    rng = np.random.default_rng(2)
    axis = np.array([256, 512, 1024, 2048, 4096, 8192, 16384], dtype=np.float64)
    m = np.round(np.exp(rng.uniform(0, np.log(32768), N_RANDOM)))
    n, k = rng.choice(axis, N_RANDOM), rng.choice(axis, N_RANDOM)
    out = benchmark(db.gemm_ms, "fp8", m, n, k)
    assert np.isfinite(out).all()
    _report(benchmark, N_RANDOM, "gemm fp8, random points on collected sites")
