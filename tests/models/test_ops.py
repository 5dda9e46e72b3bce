"""Op descriptors: weight bytes, MoE dispatch collectives per backend, speculative scale factors."""

from __future__ import annotations

import pytest

from servopt.errors import InvalidLayoutError, UnknownNameError
from servopt.hardware import load_system
from servopt.models.decompose import MOE_QUANTS, decompose
from servopt.models.dense import mtp_factor
from servopt.models.moe import dispatch_terms
from servopt.models.ops import CommTerm, Family, OpSpec, Overlap, QuantModes, quant_bytes, weight_bytes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model
from servopt.perf_db import quant as perf_quant

H200 = load_system("h200_sxm")
B200 = load_system("b200_sxm")
FP8B = QuantModes("fp8_block", "fp8_block", "fp8", "float16")


def test_weight_bytes():
    assert weight_bytes(OpSpec("g", Family.GEMM, 64, n=5120, k=4096, quant="fp8_block")) == 64 * 5120 * 4096
    assert weight_bytes(OpSpec("g", Family.GEMM, 1, n=10, k=10, quant="float16")) == 200
    assert weight_bytes(OpSpec("e", Family.EMBEDDING, 1, n=1000, hidden=64)) == 1000 * 64 * 2
    moe = OpSpec("m", Family.MOE, 2, hidden=7, inter=5, experts=3, moe_tp=2, moe_ep=2, quant="float16")
    assert weight_bytes(moe) == ((7 * 5 * 3 * 2 * 3) // 2) // 2 * 2  # two sequential floors
    assert weight_bytes(OpSpec("a", Family.GENERATION_ATTENTION, 64)) == 0
    with pytest.raises(UnknownNameError):
        quant_bytes("gemm_quant_mode", "fp3")


def test_moe_modes_weigh_what_their_perf_tables_charge():
    # The memory model and the rooflines must agree on each MoE mode's bytes per weight.
    for mode in MOE_QUANTS:
        table = perf_quant.resolve("moe_quant_mode", mode, perf_quant.MOE_QUANTS)
        assert quant_bytes("moe_quant_mode", mode) == table.bytes_per_elem, mode
    # MXFP4 experts weigh the same with MXFP8 or bf16 activations: half a byte per weight.
    shape = dict(hidden=2880, inter=2880, experts=32, moe_tp=1, moe_ep=1)
    w4a8 = weight_bytes(OpSpec("m", Family.MOE, 24, quant="w4a8_mxfp4_mxfp8", **shape))
    assert w4a8 == weight_bytes(OpSpec("m", Family.MOE, 24, quant="w4a16_mxfp4", **shape))
    assert w4a8 * 2 == weight_bytes(OpSpec("m", Family.MOE, 24, quant="fp8", **shape))


@pytest.mark.parametrize(
    ("backend", "layout", "pre", "expected"),
    [
        ("trtllm", Layout(4, 1, 1, 1, 4), True, (CommTerm("all_reduce", 4),)),
        ("trtllm", Layout(1, 1, 4, 1, 4), True, (CommTerm("all_gather", 4, 4),)),
        ("trtllm", Layout(1, 1, 4, 1, 4), False, (CommTerm("reduce_scatter", 4, 4),)),
        ("trtllm", Layout(1, 1, 1, 1, 1), True, ()),
        ("vllm", Layout(2, 1, 2, 4, 1), True, (CommTerm("all_reduce", 4), CommTerm("all_gather", 4, 2))),
        (
            "sglang",
            Layout(2, 1, 4, 1, 8),
            True,
            (CommTerm("reduce_scatter", 2), CommTerm("all_gather", 8, 4)),
        ),
        (
            "sglang",
            Layout(2, 1, 4, 1, 8),
            False,
            (CommTerm("reduce_scatter", 8, 4), CommTerm("all_gather", 2)),
        ),
        ("sglang", Layout(8, 1, 1, 1, 8), False, (CommTerm("all_reduce", 8),)),
    ],
)
def test_dispatch_terms(backend, layout, pre, expected):
    assert dispatch_terms(backend, layout, pre, "fp8_block", H200) == expected


def test_blackwell_trtllm_gathers_quantized_activations():
    assert dispatch_terms("trtllm", Layout(1, 1, 8, 1, 8), True, "fp8", B200) == (
        CommTerm("all_gather", 8, 8, 0.5),
    )
    assert dispatch_terms("trtllm", Layout(1, 1, 8, 1, 8), False, "fp8", B200) == (
        CommTerm("reduce_scatter", 8, 8),
    )


def test_speculative_decoding_scales_generation_only():
    arch = resolve_model("QWEN3_32B")
    plain = decompose(arch, Layout(2, 1, 1, 1, 1), FP8B, "trtllm", H200, 0)
    mtp = decompose(arch, Layout(2, 1, 1, 1, 1), FP8B, "trtllm", H200, 2)
    assert mtp_factor(2, 64) == 66 / 64
    assert [op.scale for op in mtp.context] == [op.scale for op in plain.context]
    for a, b in zip(plain.generation, mtp.generation, strict=True):
        assert b.scale == pytest.approx(a.scale * 66 / 64)


def test_deepseek_decode_overlaps_routed_and_shared_experts():
    ops = decompose(resolve_model("DEEPSEEK_V3"), Layout(8, 1, 1, 1, 8), FP8B, "trtllm", H200).generation
    groups = {op.name: op.overlap for op in ops}
    assert (
        groups["generation_moe"] is Overlap.GROUP_A
        and groups["generation_shared_ffn2_gemm"] is Overlap.GROUP_B
    )
    assert groups["generation_logits_gemm"] is Overlap.NONE


def test_fp8_block_experts_need_whole_blocks():
    with pytest.raises(InvalidLayoutError, match="multiple of 128"):
        decompose(resolve_model("QWEN3_30B_A3B"), Layout(8, 1, 1, 8, 1), FP8B, "trtllm", H200)  # 768 / 8 = 96
