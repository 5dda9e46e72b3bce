"""Aggregated in-flight batching: the vectorised schedule against the scalar reference."""

from __future__ import annotations

import random

import numpy as np
import pytest
from fake_db import FakeDatabase
from naive_model import agg_metrics

from servopt.evaluate.agg import AGG_POLICIES, run_agg, schedule
from servopt.evaluate.candidates import Candidates, ModelSetup, Workload, build_layout_ops
from servopt.hardware import load_system
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model

SYSTEM = load_system("h200_sxm")
QUANT = QuantModes("fp8_block", "fp8_block", "fp8", "float16")
CASES = {
    "QWEN3_32B": [Layout(1, 1, 1, 1, 1), Layout(2, 1, 1, 1, 1), Layout(4, 2, 1, 1, 1)],
    "QWEN3_30B_A3B": [Layout(2, 1, 1, 1, 2), Layout(1, 1, 4, 1, 4)],
    "DEEPSEEK_V3": [Layout(8, 1, 1, 1, 8), Layout(1, 1, 8, 1, 8)],
}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("backend", ["trtllm", "vllm", "sglang"])
@pytest.mark.parametrize("model", list(CASES))
def test_agg_matches_scalar_reference(model, backend, seed):
    rng = random.Random(hash((model, backend, seed)) % 2**32)
    nextn = rng.choice([0, 0, 1])
    accepted = rng.choice([0.0, 0.6]) if nextn else 0.0
    arch = resolve_model(model)
    lops = build_layout_ops(
        ModelSetup(arch, backend, QUANT, SYSTEM, None, nextn), CASES[model], skip_invalid=False
    )
    isl, osl = rng.choice([(1000, 200), (4000, 1000), (300, 3000), (2048, 2)])
    points = []
    for _ in range(6):
        b = rng.choice([1, 2, 7, 32, 128])
        c = rng.choice([isl, 2 * isl, max(isl // 3, 1), 8192])
        if b - -(-c // isl) < (1 if b > 1 else 0):
            c = isl if b > 1 else c
        if b > 1 and b - -(-c // isl) < 1:
            continue
        points.append((rng.randrange(len(lops.layouts)), b, c))
    cand = Candidates(*(np.array(col) for col in zip(*points, strict=True)))
    db = FakeDatabase()
    res = run_agg(db, lops, cand, Workload(isl, osl), accepted_tokens=accepted)
    for i, (lay, b, c) in enumerate(points):
        layout = lops.layouts[lay]
        ref = agg_metrics(
            db, lops.ops[lay].context, lops.ops[lay].generation, backend=backend, layers=arch.num_layers,
            b=b, c=c, isl=isl, osl=osl, nextn=nextn, progress=1.0 + accepted, pp=layout.pp, dp=layout.dp, tp=layout.tp,
        )  # fmt: skip
        assert res.mix_step_ms[i] == pytest.approx(ref["mix"], rel=1e-12)
        assert res.decode_step_ms[i] == pytest.approx(ref["gen"], rel=1e-12, abs=1e-15)
        assert res.ttft_ms[i] == pytest.approx(ref["ttft"], rel=1e-12)
        assert res.tpot_ms[i] == pytest.approx(ref["tpot"], rel=1e-12)
        assert res.tokens_per_s_per_gpu[i] == pytest.approx(ref["tokens_per_s_per_gpu"], rel=1e-12)


def test_schedule_counts_prefill_bound_and_decode_bound_points():
    trt = AGG_POLICIES["trtllm"]
    s = schedule(trt, np.array([64, 64, 1]), np.array([8000, 4000, 4000]), isl=4000, osl=1000, progress=1.0)
    # b=64, C=8000: 32 mixed steps of 62 riders, then 968 decode-only steps; TPOT drops 3 drain steps.
    assert list(s.ctx_steps) == [32, 64, 1]
    assert s.riders[0] == 62 and s.mix_steps_for_tpot[0] == 29 and s.decode_steps[0] == 968
    # b=1: one context-only step, then osl - 1 decode steps and no mixed step in TPOT.
    assert s.riders[2] == 0 and s.decode_steps[2] == 999 and s.mix_steps_for_tpot[2] == 0
    # Prefill-bound (isl*b/C >= decode iterations): decode spread over the prefill steps.
    s = schedule(trt, np.array([512]), np.array([128]), isl=1000, osl=100, progress=1.0)
    assert s.ctx_steps[0] == 4000 and s.decode_steps[0] == 0 and s.riders[0] == 512 // (4000 / 100)
