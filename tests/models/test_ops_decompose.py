"""The op decomposition against the peer's own op lists (shapes, scales, quant, weights).

For each model, backend and layout, servopt's op list must name the same ops in the same order with
the same per-GPU shapes, scale factors and quant modes as the peer's model builder, and give the
same weight bytes. MoE dispatch ops are compared by name here; their collectives are checked by
latency in tests/evaluate.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from servopt.hardware import load_system
from servopt.models.decompose import decompose
from servopt.models.ops import Family, OpSpec, Overlap, QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model

pytestmark = pytest.mark.peer

_spec = importlib.util.spec_from_file_location(
    "peer_oracle", Path(__file__).resolve().parents[1] / "evaluate" / "peer_oracle.py"
)
peer_oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer_oracle)

_PEER_NAME = {"float16": "bfloat16"}

FP8B = QuantModes("fp8_block", "fp8_block", "fp8", "float16")
BF16 = QuantModes("float16", "float16", "float16", "float16")
FP8 = QuantModes("fp8", "fp8", "fp8", "fp8")

CASES = [
    ("QWEN3_32B", "trtllm", Layout(2, 1, 1, 1, 1), FP8B, 0),
    ("QWEN3_32B", "vllm", Layout(4, 2, 1, 1, 1), BF16, 0),
    ("LLAMA3.1_70B", "sglang", Layout(8, 1, 1, 1, 1), FP8, 0),
    ("QWEN3_32B", "trtllm", Layout(1, 1, 1, 1, 1), FP8B, 2),
    ("QWEN3_30B_A3B", "trtllm", Layout(2, 1, 1, 1, 2), FP8B, 0),
    ("QWEN3_30B_A3B", "vllm", Layout(1, 1, 4, 1, 4), BF16, 0),
    ("QWEN3_235B_A22B", "sglang", Layout(4, 1, 2, 1, 8), FP8, 0),
    ("MIXTRAL_8X7B", "trtllm", Layout(4, 1, 1, 4, 1), BF16, 0),
    ("DEEPSEEK_V3", "trtllm", Layout(8, 1, 1, 1, 8), FP8B, 0),
    ("DEEPSEEK_V3", "trtllm", Layout(1, 1, 8, 1, 8), FP8B, 1),
    ("DEEPSEEK_V3", "vllm", Layout(8, 1, 1, 1, 8), FP8B, 0),
    ("DEEPSEEK_V3", "sglang", Layout(4, 2, 2, 1, 8), BF16, 0),
]


def _peer_flat(ops: list[dict], overlap: Overlap = Overlap.NONE) -> list[tuple[str, str, dict, Overlap]]:
    """(name, kind, fields, overlap group) of each top-level or overlapped op."""
    out = []
    for wire in ops:
        ((kind, fields),) = wire.items()
        if kind == "Overlap":
            out += _peer_flat(fields["group_a"], Overlap.GROUP_A)
            out += _peer_flat(fields["group_b"], Overlap.GROUP_B)
        else:
            out.append((fields["name"], kind, fields, overlap))
    return out


def _q(value: str) -> str:
    return _PEER_NAME.get(value, value)


def _check_op(ours: OpSpec, kind: str, peer: dict) -> None:
    f = ours.family
    if f is not Family.MLA_MODULE:
        assert ours.scale == pytest.approx(peer["scale_factor"]), ours.name
    if f is Family.GEMM:
        assert kind == "Gemm"
        assert (ours.n, ours.k, _q(ours.quant)) == (peer["n"], peer["k"], peer["quant_mode"]), ours.name
        assert ours.low_precision_input == peer["low_precision_input"], ours.name
    elif f is Family.EMBEDDING:
        assert kind == "Embedding" and (ours.n, ours.hidden) == (peer["vocab_size"], peer["hidden_size"])
    elif f is Family.ELEMENTWISE:
        assert kind == "Elementwise" and ours.bytes_per_token == peer["bytes_per_token"], ours.name
    elif f in (Family.CONTEXT_ATTENTION, Family.GENERATION_ATTENTION):
        assert kind in ("ContextAttention", "GenerationAttention")
        assert (ours.heads, ours.kv_heads, ours.head_dim, ours.window) == (
            peer["n"],
            peer["n_kv"],
            peer["head_size"],
            peer["window_size"],
        ), ours.name
        assert _q(ours.kv_quant) == peer["kv_cache_dtype"]
        if kind == "ContextAttention":
            assert _q(ours.fmha_quant) == peer["fmha_quant_mode"] and ours.qk_norm == peer["use_qk_norm"]
    elif f is Family.CONTEXT_MLA:
        assert kind == "ContextMla" and ours.heads == peer["num_heads"]
    elif f is Family.GENERATION_MLA:
        assert kind == "GenerationMla" and ours.heads == peer["num_heads"]
    elif f is Family.MLA_BMM:
        assert kind == "MlaBmm" and (ours.heads, _q(ours.quant), ours.pre) == (
            peer["num_heads"],
            peer["quant_mode"],
            peer["is_pre"],
        )
    elif f is Family.MLA_MODULE:
        assert kind == "Fallback"
        ((pkind, primary),) = peer["primary"].items()
        assert pkind.startswith("MlaModule") and ours.heads == primary["num_heads"]
        assert ours.scale == pytest.approx(primary["scale_factor"])
        assert _q(ours.quant) == primary["gemm_quant_mode"] and _q(ours.kv_quant) == primary["kv_cache_dtype"]
        fallback = _peer_flat(peer["fallback"])
        assert [op.name for op in ours.fallback] == [name for name, *_ in fallback]
        for inner, (_, fkind, ffields, _) in zip(ours.fallback, fallback, strict=True):
            _check_op(inner, fkind, ffields)
    elif f is Family.MOE:
        assert kind == "Moe"
        assert (ours.hidden, ours.inter, ours.topk, ours.experts) == (
            peer["hidden_size"],
            peer["inter_size"],
            peer["topk"],
            peer["num_experts"],
        )
        assert (ours.moe_tp, ours.moe_ep, ours.dp) == (
            peer["moe_tp_size"],
            peer["moe_ep_size"],
            peer["attention_dp_size"],
        )
        assert (_q(ours.quant), ours.distribution) == (peer["quant_mode"], peer["workload_distribution"])
    elif f is Family.MOE_DISPATCH:
        assert kind == "MoeDispatch" and ours.hidden == peer["hidden_size"]
    elif f is Family.ALLREDUCE:
        assert kind == "CustomAllReduce" and (ours.hidden, ours.num_gpus) == (
            peer["hidden_size"],
            peer["tp_size"],
        )
    elif f is Family.P2P:
        assert kind == "P2P" and (ours.hidden, ours.num_gpus) == (peer["hidden_size"], peer["pp_size"])
    else:  # pragma: no cover - every family is listed above
        raise AssertionError(f)


@pytest.mark.parametrize(("model", "backend", "layout", "quant", "nextn"), CASES)
def test_op_lists_match_peer(model, backend, layout, quant, nextn):
    pytest.importorskip("aiconfigurator_core")
    arch = resolve_model(model)
    ours = decompose(arch, layout, quant, backend, load_system("h200_sxm"), nextn)
    peer = peer_oracle.peer_model(arch, layout, quant, backend, nextn)
    for mine, theirs in ((ours.context, peer.context_ops), (ours.generation, peer.generation_ops)):
        flat = _peer_flat(peer_oracle.peer_op_specs(theirs))
        assert [op.name for op in mine] == [name for name, *_ in flat]
        for op, (_, kind, fields, overlap) in zip(mine, flat, strict=True):
            assert op.overlap == overlap, op.name
            _check_op(op, kind, fields)
    assert ours.weight_bytes == pytest.approx(peer_oracle.peer_weight_bytes(peer), rel=1e-12)
