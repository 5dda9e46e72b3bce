"""The reference's Appendix A worked example, reproduced to its printed digits with servopt's own
perf database (h200_sxm, trtllm 1.3.0rc20, Qwen3-32B tp2, gemm fp8_block, kv fp8, fmha bf16,
b=8, isl 4000, osl 1000, stride 32), and the §4.2 aggregated point (b=64, C=8000)."""

from __future__ import annotations

from functools import cache

import numpy as np

from servopt.evaluate.agg import run_agg
from servopt.evaluate.candidates import Candidates, ModelSetup, Workload, build_layout_ops
from servopt.evaluate.static import run_static
from servopt.hardware import load_system
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model
from servopt.perf_db.database import open_database

CONTEXT_MS = {  # printed digits of the reference
    "context_embedding": (0.09, 2),
    "context_add_norm_1": (22.0, 1),
    "context_qkv_gemm": (108.2, 1),
    "context_attention": (112.1, 1),
    "context_proj_gemm": (87.6, 1),
    "context_add_norm_2": (22.0, 1),
    "context_gate_ffn1_gemm": (468.5, 1),
    "context_act_gate": (41.2, 1),
    "context_ffn2_gemm": (259.1, 1),
    "context_logits_gemm": (0.19, 2),
    "context_embedding_ar": (1.07, 2),
    "context_ar_1": (68.2, 1),
    "context_ar_2": (68.2, 1),
}
GENERATION_MS = {
    "generation_qkv_gemm": (825.5, 1),
    "generation_attention": (1345.5, 1),
    "generation_proj_gemm": (714.8, 1),
    "generation_gate_ffn1_gemm": (2663.7, 1),
    "generation_ffn2_gemm": (1657.4, 1),
    "generation_act_gate": (202.0, 1),
    "generation_add_norm_1": (197.3, 1),
    "generation_add_norm_2": (197.3, 1),
    "generation_logits_gemm": (193.5, 1),
    "generation_ar_1": (191.5, 1),
    "generation_ar_2": (191.5, 1),
}
MEMORY_GIB = {
    "weights": 15.98,
    "activations": 3.17,
    "kvcache": 2.44,
    "nccl": 0.33,
    "others": 3.5,
    "total": 25.43,
}


def _printed(ours: float, value: float, digits: int) -> bool:
    """``ours`` prints as ``value``. The reference shows the all-reduces (191.44996 ms, the peer's own
    value to 1e-12) as 191.5, a double rounding via 191.45; half a printed unit + 1e-4 admits that."""
    return abs(ours - value) <= 0.5 * 10.0**-digits + 1e-4


@cache
def _setup():
    db = open_database("h200_sxm", "trtllm", "1.3.0rc20")
    setup = ModelSetup(
        resolve_model("QWEN3_32B"), "trtllm", QuantModes("fp8_block", "float16", "fp8", "float16"),
        load_system("h200_sxm"), db.version,
    )  # fmt: skip
    return db, build_layout_ops(setup, [Layout(2, 1, 1, 1, 1)], skip_invalid=False)


def test_static_example_to_printed_digits():
    db, lops = _setup()
    r = run_static(db, lops, Candidates(np.array([0]), np.array([8]), np.array([0])), Workload(4000, 1000))
    ctx = dict(zip(r.context.names, r.context.per_op_ms[0], strict=True))
    gen = dict(zip(r.generation.names, r.generation.per_op_ms[0], strict=True))
    for table, printed in ((ctx, CONTEXT_MS), (gen, GENERATION_MS)):
        for name, (value, digits) in printed.items():
            assert _printed(table[name], value, digits), (name, table[name])
    assert round(float(r.ttft_ms[0]), 1) == 1258.4
    assert round(float(r.tpot_ms[0]), 3) == 8.394
    assert round(float(r.tokens_per_s_per_gpu[0]), 1) == 414.7
    assert round(float(r.tokens_per_s_per_user[0]), 1) == 119.1
    for key, value in MEMORY_GIB.items():
        assert round(float(getattr(r.memory, key)[0]), 2) == value, key


def test_agg_example_to_printed_digits():
    db, lops = _setup()
    r = run_agg(db, lops, Candidates(np.array([0]), np.array([64]), np.array([8000])), Workload(4000, 1000))
    assert r.schedule.ctx_steps[0] == 32 and r.schedule.decode_steps[0] == 968
    assert round(float(r.mix_step_ms[0]), 1) == 322.8
    assert round(float(r.decode_step_ms[0]), 1) == 13.4
    assert round(float(r.ttft_ms[0])) == 1113
    assert round(float(r.tpot_ms[0]), 1) == 22.4
    assert round(float(r.tokens_per_s_per_gpu[0])) == 1373
