"""Compile budget of the grid, dedup and GEMM kernels: a deterministic count of compiled
specialisations.

Cold start (empty numba cache) is dominated by compilation, and every extra specialisation of a
kernel (an int32 or read-only array, a Literal[int] argument, one more tuple arity) is compiled
again. After a representative set of real queries (every grid family, scalar and batched, average
mode, every GEMM quant path with its scale overheads, small and large GEMM batches, a database built
from parquet and one loaded from the cache, dedup of 1..8 columns and of read-only input) each public
kernel must hold exactly one signature, and a fresh compile of the entry points must type every
helper once.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from servopt.perf_db.database import open_database
from servopt_kernels import dedup
from servopt_kernels import gemm as gemm_k
from servopt_kernels import grid as gk
from servopt_kernels import primitives as pk

# Compiled specialisations, helpers included, after a cold compile of the entry points below:
# grid_lookup, _interior, _hold, _sol, sol_batch (grid), unique_bits, unique_bits3, _unique
# (dedup), the shared primitives search_left, keep_nearest, idw_blend, free_slot, plus
# _sol_wideep_mla (grid: SGLang/vLLM wide-EP MLA rooflines, compiled only where a run prices
# them; earlier tests in the same process do). Raise only with a measured reason: each one costs
# cold-start seconds.
SPECIALISATION_BUDGET = 13
# The GEMM kernels' own: _gemm_batch, _select_donors, _curve_hold, gemm_roofline_batch_ms,
# scale_grid_latency_ms, _grid_row, _grid_hold (binary search, hold and hash are primitives).
GEMM_SPECIALISATION_BUDGET = 7
PUBLIC_KERNELS = (
    gk.grid_lookup,
    gk.sol_batch,
    dedup.unique_bits,
    dedup.unique_bits3,
    gemm_k._gemm_batch,
    gemm_k.gemm_roofline_batch_ms,
    gemm_k.scale_grid_latency_ms,
)


def _dispatchers(module) -> list[CPUDispatcher]:
    return [v for v in vars(module).values() if isinstance(v, CPUDispatcher)]


def _run_queries(db) -> None:
    """Every grid family through the public query API: scalars, batches, broadcasts."""
    b = np.arange(1, 129)
    nan = {"missing": "nan"}
    db.context_attention_ms("bfloat16", "bfloat16", b, 1000, 0, 32, 8, 128, **nan)
    db.context_attention_ms("bfloat16", "bfloat16", 4, 3000, 1000, 32, 8, 128, **nan)
    db.generation_attention_ms("bfloat16", b, 4097 + b, 32, 8, 128, **nan)
    db.generation_attention_ms("bfloat16", 8, 2048, 64, 8, 128, **nan)
    db.context_mla_ms("bfloat16", "bfloat16", b, 1000, 0, 16, **nan)
    db.generation_mla_ms("bfloat16", b, 2000, 16, **nan)
    db.mla_module_ms("generation", "fp8_block", "bfloat16", b, 2000, 0, 16, **nan)
    db.mla_module_ms("context", "fp8_block", "bfloat16", 2, 1000, 0, 16, **nan)
    db.mla_bmm_ms("pre", "bfloat16", b, 16, **nan)
    db.moe_ms("fp8_block", "power_law_1.01", 8, 256, 7168, 2048, 1, 8, b * 7, **nan)
    db.custom_allreduce_ms([1, 2, 4, 8], 2**20, **nan)
    db.nccl_ms("all_gather", "half", 16, b * 4096, **nan)
    for quant in ("float16", "fp8", "fp8_block", "fp8_static"):
        db.gemm_ms(quant, b, 4096, 5120, **nan)
        db.gemm_ms(quant, 7, 3000.0, 70000, **nan)
    db.gemm_ms("fp8_static", b, [[1024], [151936]], 5120, low_precision_input=True, **nan)
    # A large batch: the dedup table grows.
    big = np.resize(b, 1 << 17)
    db.gemm_ms("fp8", big, 4096, 5120, **nan)
    db.compute_scale_ms(big, 5120, **nan)
    db.scale_matrix_ms(b, np.int32(5120), **nan)


def _run_dedups() -> None:
    rng = np.random.default_rng(0)
    for k in range(1, 9):
        dedup.unique_cols([rng.integers(0, 3, 200) for _ in range(k)])
    rows = rng.integers(0, 3, (200, 3)).astype(np.float64)
    rows.flags.writeable = False
    dedup.unique_rows(rows)
    dedup.unique_rows(rng.integers(0, 3, (50, 2)).astype(np.int32))


@pytest.fixture(scope="module")
def exercised(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("budget-cache"))
    built = open_database("h200_sxm", "trtllm", cache_dir=cache)
    assert not built.from_cache
    _run_queries(built)
    loaded = open_database("h200_sxm", "trtllm", cache_dir=cache)
    assert loaded.from_cache
    _run_queries(loaded)
    _run_dedups()


@pytest.mark.parametrize("kernel", PUBLIC_KERNELS, ids=lambda k: k.py_func.__name__)
def test_public_kernels_hold_one_signature(exercised, kernel):
    signatures = [str(sig) for sig in kernel.overloads]
    assert len(signatures) == 1, signatures


def test_a_fresh_compile_types_every_helper_once(exercised):
    """Recompile the entry points without the cache: type inference then visits every helper (from
    the cache or compiled), so each helper shows the specialisations the entry points need."""
    for kernel in PUBLIC_KERNELS:
        fresh = CPUDispatcher(kernel.py_func, targetoptions=dict(kernel.targetoptions))
        for sig in kernel.overloads:
            fresh.compile(sig)
    counts = {
        f"{d.py_func.__module__}.{d.py_func.__name__}": len(d.overloads)
        for module in (gk, dedup, gemm_k, pk)
        for d in _dispatchers(module)
        if d.overloads
    }
    over = {name: n for name, n in counts.items() if n > 1}
    assert not over, f"helpers compiled more than once: {over}"
    gemm_counts = {name: n for name, n in counts.items() if name.startswith(gemm_k.__name__ + ".")}
    assert sum(counts.values()) - sum(gemm_counts.values()) <= SPECIALISATION_BUDGET, counts
    assert sum(gemm_counts.values()) <= GEMM_SPECIALISATION_BUDGET, gemm_counts
