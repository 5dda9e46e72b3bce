"""Large-EP policy: wire dtypes, coverage from the data, per-layout resolution and rejection."""

from __future__ import annotations

import pytest

from servopt.errors import InvalidLayoutError
from servopt.hardware import load_system
from servopt.models import wide_ep
from servopt.models.decompose import decompose
from servopt.models.ops import Family, QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model

H200 = load_system("h200_sxm")
FP8B = QuantModes("fp8_block", "fp8_block", "fp8", "float16")
DSV3 = resolve_model("DEEPSEEK_V3")
WIDE = frozenset({8, 16, 32, 64, 128, 256})
COV = {"context": {"trtllm_deepep_ht": WIDE}, "generation": {"trtllm_deepep_ll": WIDE}}


@pytest.mark.parametrize(
    ("backend", "quant", "comm_phase", "phase", "want"),
    [
        ("trtllm_deepep_ht", "fp8_block", "dispatch", "context", "bfloat16"),
        ("trtllm_deepep_ll", "fp8_block", "combine", "generation", "fp8"),
        ("trtllm_deepep_ll", "float16", "dispatch", "generation", "bfloat16"),
        ("trtllm_deepep_ll", "nvfp4", "dispatch", "generation", None),  # no nvfp4 LL on Hopper
        ("trtllm_deepep_ht", "nvfp4", "dispatch", "context", "nvfp4"),
        ("nvlink_two_sided", "nvfp4", "combine", "generation", "fp4"),
        ("deepep_ll", "fp8", "dispatch", "generation", "default"),
        ("trtllm_deepep_ht", "w4afp8", "dispatch", "context", None),
    ],
)
def test_wire_dtype(backend, quant, comm_phase, phase, want):
    assert wide_ep.wire_dtype("h200_sxm", backend, quant, comm_phase, phase) == want


@pytest.fixture(scope="module")
def h200(tmp_path_factory):
    from servopt.perf_db.database import open_database

    return open_database("h200_sxm", "trtllm", cache_dir=str(tmp_path_factory.mktemp("cache")))


def test_coverage_from_the_database(h200):
    cov = wide_ep.coverage(h200, DSV3, "fp8_block", "trtllm", H200)
    assert cov == COV
    assert wide_ep.coverage(h200, DSV3, "nvfp4", "trtllm", H200) == {}
    assert wide_ep.coverage(h200, resolve_model("QWEN3_235B_A22B"), "fp8_block", "trtllm", H200) == {}
    assert wide_ep.coverage(h200, resolve_model("QWEN3_32B"), "fp8_block", "trtllm", H200) == {}
    assert wide_ep.coverage(None, DSV3, "fp8_block", "trtllm", H200) == {}


@pytest.mark.parametrize(
    ("layout", "role", "want"),
    [
        (
            Layout(1, 1, 16, 1, 16),
            "decode",
            {"context": "trtllm_deepep_ht", "generation": "trtllm_deepep_ll"},
        ),
        (Layout(1, 1, 8, 1, 8), "prefill", {"context": "trtllm_deepep_ht", "generation": "trtllm_deepep_ll"}),
        (Layout(8, 1, 1, 1, 8), "prefill", None),  # TRT-LLM wide EP needs attention DP
        (Layout(1, 1, 4, 1, 4), "agg", None),  # ep 4 has no all-to-all data
        (Layout(1, 1, 16, 16, 1), "decode", None),  # MoE TP stays fused
        (Layout(1, 1, 1, 1, 1), "agg", None),
    ],
)
def test_resolve(layout, role, want):
    assert wide_ep.resolve(layout, COV, "trtllm", role) == want


def test_resolve_needs_context_for_a_decode_worker():
    gen_only = {"generation": {"trtllm_deepep_ll": WIDE}}
    assert wide_ep.resolve(Layout(1, 1, 16, 1, 16), gen_only, "trtllm", "decode") is None
    assert wide_ep.resolve(Layout(1, 1, 16, 1, 16), {"context": COV["context"]}, "trtllm", "prefill") == {
        "context": "trtllm_deepep_ht"
    }


def test_multi_node_eps():
    assert wide_ep.multi_node_eps(COV, "decode", 8) == {16, 32, 64, 128, 256}
    assert wide_ep.multi_node_eps({"generation": COV["generation"]}, "decode", 8) == set()
    assert wide_ep.multi_node_eps({}, "agg", 8) == set()


def test_decompose_picks_the_all_to_all_graph():
    ops = decompose(DSV3, Layout(1, 1, 16, 1, 16), FP8B, "trtllm", H200, large_ep=COV, role="decode")
    gen = {op.name: op for op in ops.generation}
    assert gen["generation_moe_dispatch"].family is Family.MOE_A2A
    assert gen["generation_moe_dispatch"].nodes == 2
    assert gen["generation_moe_dispatch"].a2a_dtype == "fp8"
    assert gen["generation_moe"].family is Family.MOE_EP
    ctx = {op.name: op for op in ops.context}
    assert ctx["context_moe_dispatch"].a2a_dtype == "bfloat16"
    # Unprobed coverage keeps the fused graph.
    fused = decompose(DSV3, Layout(1, 1, 16, 1, 16), FP8B, "trtllm", H200)
    assert "generation_moe_pre_dispatch" in {op.name for op in fused.generation}


def test_cross_node_ep_without_coverage_is_rejected():
    with pytest.raises(InvalidLayoutError, match=r"moe_ep.*attention data parallelism"):
        decompose(DSV3, Layout(16, 1, 1, 1, 16), FP8B, "trtllm", H200, large_ep=COV, role="prefill")
    with pytest.raises(InvalidLayoutError, match=r"moe_ep.*all-to-all"):
        decompose(DSV3, Layout(1, 1, 16, 1, 16), FP8B, "trtllm", H200, large_ep={}, role="decode")
    with pytest.raises(InvalidLayoutError, match=r"moe_ep.*pure EP"):
        decompose(DSV3, Layout(1, 1, 32, 2, 16), FP8B, "trtllm", H200, large_ep=COV, role="decode")
    qwen = resolve_model("QWEN3_235B_A22B")
    with pytest.raises(InvalidLayoutError, match="moe_ep"):
        decompose(qwen, Layout(1, 1, 16, 1, 16), FP8B, "trtllm", H200, large_ep={}, role="decode")
    # Intra-node EP without coverage stays fused.
    ops = decompose(qwen, Layout(1, 1, 8, 1, 8), FP8B, "trtllm", H200, large_ep={}, role="decode")
    assert "generation_moe_pre_dispatch" in {op.name for op in ops.generation}


def test_unmodelled_large_ep_family():
    """Cross-node: rejected; inside one node: the fused graph, as before."""
    qwen = resolve_model("QWEN3_235B_A22B")
    eps = frozenset({8, 16})
    cov = {"context": {"trtllm_deepep_ht": eps}, "generation": {"trtllm_deepep_ll": eps}}
    with pytest.raises(InvalidLayoutError, match="not modelled"):
        decompose(qwen, Layout(1, 1, 16, 1, 16), FP8B, "trtllm", H200, large_ep=cov, role="decode")
    ops = decompose(qwen, Layout(1, 1, 8, 1, 8), FP8B, "trtllm", H200, large_ep=cov, role="decode")
    assert "generation_moe_pre_dispatch" in {op.name for op in ops.generation}


def test_sglang_wide_ep_needs_its_tables_at_the_runs_own_quant_modes():
    # SGLang's wide-EP attention tables were collected at the checkpoint's GEMM and KV quant; a run
    # at another KV quant keeps the fused graph (which prices it) instead of unpriced attention.
    from servopt.perf_db.database import open_database

    db = open_database("h200_sxm", "sglang")
    assert wide_ep.coverage(db, DSV3, "fp8_block", "sglang", H200)  # the checkpoint's modes: covered
    other_kv = "float16" if DSV3.quant.kvcache != "float16" else "fp8"
    assert wide_ep.coverage(db, DSV3, "fp8_block", "sglang", H200, kv_quant=other_kv) == {}


def test_vllm_wide_ep_with_attention_tp():
    """vLLM large EP with tp > 1: the all-to-all graph, inside a node and across nodes; the whole
    shared expert on every rank, prefill's shared expert and all-to-all over x // tp tokens."""
    cov = {"context": {"deepep_ht": WIDE}, "generation": {"deepep_ll": WIDE}}
    assert wide_ep.resolve(Layout(2, 1, 4, 1, 8), cov, "vllm", "agg") == {
        "context": "deepep_ht",
        "generation": "deepep_ll",
    }
    ops = decompose(DSV3, Layout(4, 1, 4, 1, 16), FP8B, "vllm", H200, large_ep=cov, role="decode")
    ctx = {op.name: op for op in ops.context}
    gen = {op.name: op for op in ops.generation}
    assert ctx["context_moe_dispatch"].family is Family.MOE_A2A and ctx["context_moe_dispatch"].nodes == 2
    assert ctx["context_moe_dispatch"].token_split == ctx["context_moe_combine"].token_split == 4
    assert gen["generation_moe_dispatch"].token_split == 1
    assert ctx["context_moe"].token_split == 1 and ctx["context_moe"].dp == 4  # global tokens
    inter = DSV3.shared_expert_inter_size or DSV3.moe_inter_size
    assert ctx["context_shared_gate_up_gemm"].n == 2 * inter  # not split over tp
    assert ctx["context_shared_gate_up_gemm"].token_split == 4
    assert gen["generation_shared_gate_up_gemm"].token_split == 1
    assert "context_tp_allreduce" in ctx and "generation_tp_allreduce" in gen
