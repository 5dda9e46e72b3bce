"""Candidate evaluation per model family: the worker tables one `cli default` search evaluates.

For a dense GQA model (Qwen3-32B), a MoE GQA model (Qwen3-235B-A22B) and an MLA+MoE model
(DeepSeek-V3) on h200_sxm/trtllm with the seed's defaults: every valid layout x batch size
(x context-token budget for agg), evaluated in batched calls, memory included. Candidates
evaluated and options kept go to ``extra_info``; the groups put the three roles of a family side
by side.

Run: ``pytest bench/test_bench_evaluate_families.py --benchmark-enable``
"""

from __future__ import annotations

from functools import cache

import pytest

from servopt import pipeline
from servopt.config import default_experiments
from servopt.models.registry import resolve_model

MODELS = {"dense": "QWEN3_32B", "moe": "QWEN3_235B", "mla_moe": "DEEPSEEK_V3"}
ROLES = [("agg", 0), ("prefill", 1), ("decode", 1)]  # (role, index of its default experiment)


@cache
def _case(family: str):
    model = MODELS[family]
    experiments = default_experiments(model, 64, "h200_sxm")
    dbs = pipeline._Databases(None)
    arch = resolve_model(model)
    return experiments, dbs, arch


@pytest.mark.parametrize("family", list(MODELS))
@pytest.mark.parametrize(("role", "which"), ROLES, ids=[r for r, _ in ROLES])
def test_bench_worker_table(benchmark, family, role, which):
    experiments, dbs, arch = _case(family)
    exp = experiments[which]
    benchmark.group = f"evaluate {family} ({MODELS[family]})"
    pipeline._worker_table(exp, arch, role, dbs)  # warm: kernels loaded, database open
    table, _ = benchmark.pedantic(pipeline._worker_table, args=(exp, arch, role, dbs), rounds=5, iterations=1)
    benchmark.extra_info.update(
        {
            "layouts": len(table.layouts.layouts),
            "candidates": len(table.candidates),
            "options": len(table.options),
        }
    )
    assert len(table.options) > 0
