"""The sliding-window split of GPT-OSS attention ops."""

from __future__ import annotations

import pytest

from servopt.hardware import load_system
from servopt.models.decompose import decompose
from servopt.models.ops import Family, QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model
from servopt.models.sliding_window import split_sliding_attention

MXFP4 = QuantModes("float16", "w4a16_mxfp4", "float16", "float16")
ATTENTION = (Family.CONTEXT_ATTENTION, Family.GENERATION_ATTENTION)


@pytest.mark.parametrize("model", ["GPT_OSS_20B", "GPT_OSS_120B"])
@pytest.mark.parametrize("phase", ["context", "generation"])
def test_gpt_oss_attention_is_half_windowed_half_full(model, phase):
    arch = resolve_model(model)
    ops = getattr(decompose(arch, Layout(4, 1, 1, 1, 4), MXFP4, "vllm", load_system("h200_sxm")), phase)
    attn = [op for op in ops if op.family in ATTENTION]
    assert [(op.window, op.scale) for op in attn] == [
        (128, arch.num_sliding_layers),
        (0, arch.num_layers - arch.num_sliding_layers),
    ]
    # Both keep the top-level attention name (the mixed step prices them in its attention slot).
    assert all(op.is_attention_slot for op in attn)
    # Everything else still runs on every layer.
    qkv = next(op for op in ops if op.name == f"{phase}_qkv_gemm")
    assert qkv.scale == arch.num_layers


def test_models_without_sliding_layers_are_unchanged():
    arch = resolve_model("QWEN3_30B_A3B")
    ops = decompose(
        arch, Layout(2, 1, 1, 1, 2), MXFP4._replace(moe="float16"), "vllm", load_system("h200_sxm")
    )
    assert split_sliding_attention(list(ops.context), arch, 1.0) == list(ops.context)
    assert [op.window for op in ops.context if op.family in ATTENTION] == [0]


def test_split_scales_follow_the_speculative_factor():
    arch = resolve_model("GPT_OSS_20B")
    base = [
        op for op in decompose(arch, Layout(1, 1, 1, 1, 1), MXFP4, "vllm", load_system("h200_sxm")).generation
    ]
    attn = next(op for op in base if op.family is Family.GENERATION_ATTENTION)
    split = split_sliding_attention([attn], arch, 1.5)
    assert [op.scale for op in split] == [
        arch.num_sliding_layers * 1.5,
        (arch.num_layers - arch.num_sliding_layers) * 1.5,
    ]


def test_only_gpt_oss_windows_are_priced():
    """A sliding_window on another architecture keeps full attention (the peer's rule)."""
    arch = resolve_model("GPT_OSS_20B").model_copy(update={"hf_architecture": "MixtralForCausalLM"})
    ops = decompose(arch, Layout(1, 1, 1, 1, 1), MXFP4, "vllm", load_system("h200_sxm")).context
    assert [(op.window, op.scale) for op in ops if op.family in ATTENTION] == [(0, arch.num_layers)]
