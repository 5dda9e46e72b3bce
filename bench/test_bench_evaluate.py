"""Latency-model throughput: DeepSeek-V3's full default decode candidate set on h200_sxm.

Every valid decode layout of the peer's default MoE lists x every decode batch size (1..512,
96 values), each over the whole decode trajectory (isl 4000, osl 1000: 32 quadrature steps), plus
memory: what the search evaluates for a disaggregated decode pool. Target <= 0.3 s warm.

The peer does the same work with one ``run_static(static_gen)`` call per candidate; its time for
the whole set is measured once (it is slow) and the ratio recorded in ``extra_info``.

Run: ``pytest bench/test_bench_evaluate.py --benchmark-enable`` (``-s`` prints the summary).
"""

from __future__ import annotations

import time
from functools import cache

import numpy as np
import pytest

from servopt.evaluate.batch_sizes import decode_batch_sizes
from servopt.evaluate.candidates import ModelSetup, Workload, build_layout_ops, grid
from servopt.evaluate.static import run_static
from servopt.evaluate.workers import decode_workers
from servopt.hardware import load_system
from servopt.models.ops import QuantModes
from servopt.models.parallel import default_disagg_lists, enumerate_layouts
from servopt.models.registry import resolve_model
from servopt.perf_db.database import open_database

SYSTEM, BACKEND, VERSION = "h200_sxm", "trtllm", "1.3.0rc20"
WORK = Workload(4000, 1000)
QUANT = QuantModes("fp8_block", "fp8_block", "fp8", "float16")
TARGET_S = 0.3


@cache
def _setup():
    arch = resolve_model("DEEPSEEK_V3")
    _, d = default_disagg_lists(is_moe=True, backend=BACKEND)
    layouts = enumerate_layouts(
        is_moe=True, backend=BACKEND, num_gpu_per_worker=d.num_gpu_per_worker, tp_list=d.tp_list,
        pp_list=d.pp_list, dp_list=d.dp_list, moe_tp_list=d.moe_tp_list, moe_ep_list=d.moe_ep_list,
        num_experts=arch.num_experts, role="decode",
    )  # fmt: skip
    db = open_database(SYSTEM, BACKEND, VERSION)
    lops = build_layout_ops(ModelSetup(arch, BACKEND, QUANT, load_system(SYSTEM), db.version), layouts)
    run_static(
        db, lops, grid(len(lops.layouts), decode_batch_sizes()), WORK, "static_gen"
    )  # JIT, caches warm
    return db, lops


def _peer_seconds(lops, batch_sizes) -> float | None:
    """The peer's time for the same candidates: one run_static(static_gen) per (layout, batch)."""
    try:
        import importlib.util
        import sys
        from pathlib import Path

        spec = importlib.util.spec_from_file_location(
            "peer_oracle", Path(__file__).resolve().parents[1] / "tests" / "evaluate" / "peer_oracle.py"
        )
        oracle = importlib.util.module_from_spec(spec)
        sys.modules.setdefault("peer_oracle", oracle)
        spec.loader.exec_module(oracle)
        pytest.importorskip("aiconfigurator_core")
    except pytest.skip.Exception:
        return None
    arch = lops.setup.arch
    # Warm the peer's tables on one candidate first, as servopt's side is warm too.
    model = oracle.peer_model(arch, lops.layouts[-1], QUANT, BACKEND)
    oracle.peer_static(model, BACKEND, 8, WORK.isl, WORK.osl, "static_gen")
    start = time.perf_counter()
    for layout in lops.layouts:
        model = oracle.peer_model(arch, layout, QUANT, BACKEND)
        for b in batch_sizes:
            oracle.peer_static(model, BACKEND, b, WORK.isl, WORK.osl, "static_gen")
    return time.perf_counter() - start


@pytest.mark.benchmark(group="decode-set")
def test_deepseek_v3_decode_set(benchmark):
    """Every layout x every decode batch size priced over the whole trajectory, memory included
    (also the candidates that do not fit)."""
    db, lops = _setup()
    batches = decode_batch_sizes()
    cand = grid(len(lops.layouts), batches)
    res = benchmark.pedantic(
        run_static, args=(db, lops, cand, WORK, "static_gen"), kwargs={"latency_correction": 1.08}, rounds=7,
        warmup_rounds=1,
    )  # fmt: skip
    n = len(cand)
    steps = len(range(0, WORK.osl - 1, 32))
    best = benchmark.stats.stats.min if benchmark.stats else None
    benchmark.extra_info.update({"layouts": len(lops.layouts), "candidates": n, "decode_steps_priced": steps})
    assert n == len(lops.layouts) * 96 and len(lops.layouts) >= 20
    assert np.isfinite(res.tpot_ms[res.memory.fits]).all()
    if best is not None:  # timed run (--benchmark-enable)
        benchmark.extra_info["candidates_per_s"] = n / best
        peer = _peer_seconds(lops, batches)
        if peer is not None:
            benchmark.extra_info["peer_seconds"] = peer
            benchmark.extra_info["speedup_vs_peer"] = peer / best
        print(
            f"\nDeepSeek-V3 decode set: {n} candidates x {steps} steps in {best * 1e3:.1f} ms "
            f"({n / best:,.0f} candidates/s)"
            + (f"; peer {peer:.2f} s ({peer / best:,.0f}x)" if peer is not None else "")
        )
        assert best <= TARGET_S


@pytest.mark.benchmark(group="decode-set")
def test_deepseek_v3_decode_worker_table(benchmark):
    """What the search calls: memory for every candidate, latency up to each layout's first OOM."""
    db, lops = _setup()
    table = benchmark.pedantic(decode_workers, args=(db, lops, WORK), rounds=7, warmup_rounds=1)
    benchmark.extra_info.update(
        {"priced": len(table.candidates), "options": len(table.options), "grid": len(lops.layouts) * 96}
    )
    assert 0 < len(table.options) <= len(table.candidates) <= len(lops.layouts) * 96
