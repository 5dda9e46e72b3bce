"""config.json -> ModelArch: field rules, quantization defaults, errors, and parity with the peer's
parser on every bundled config of a supported architecture."""

from __future__ import annotations

import json
import shutil

import pytest

from servopt.errors import ServoptError
from servopt.models.hf_config import (
    ARCHITECTURE_FAMILIES,
    arch_from_hf_config,
    load_config_files,
    quant_defaults,
)
from servopt.models.registry import model_configs_dir

LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "num_hidden_layers": 4,
    "hidden_size": 1024,
    "num_attention_heads": 16,
    "num_key_value_heads": 4,
    "intermediate_size": 4096,
    "vocab_size": 32000,
    "max_position_embeddings": 8192,
}
MOE = {
    **LLAMA,
    "architectures": ["Qwen3MoeForCausalLM"],
    "head_dim": 128,
    "num_experts": 16,
    "num_experts_per_tok": 2,
    "moe_intermediate_size": 512,
}


def _parse(config, quant=None, name="TEST"):
    return arch_from_hf_config(config, name=name, hf_quant_config=quant)


# ----------------------------------------------------------------------------- field rules


def test_dense_fields_and_head_dim_fallback():
    arch = _parse(LLAMA)
    assert (arch.family, arch.num_layers, arch.num_heads, arch.num_kv_heads) == ("dense", 4, 16, 4)
    assert arch.head_dim == 1024 // 16  # no head_dim in the config
    assert (arch.inter_size, arch.num_experts, arch.moe_inter_size) == (4096, 0, 0)
    assert arch.quant.model_dump() == {
        "gemm": "float16",
        "moe": "float16",
        "kvcache": "float16",
        "fmha": "float16",
    }


def test_missing_kv_heads_means_multi_head_attention():
    config = {k: v for k, v in LLAMA.items() if k != "num_key_value_heads"}
    assert _parse(config).num_kv_heads == 16


def test_moe_fields_explicit_head_dim_and_qk_norm():
    arch = _parse(MOE)
    assert (arch.family, arch.head_dim, arch.num_experts, arch.topk, arch.moe_inter_size) == (
        "moe",
        128,
        16,
        2,
        512,
    )
    assert arch.qk_norm
    assert arch.num_moe_layers == 4


def test_shared_experts_from_a_shared_width():
    arch = _parse({**MOE, "architectures": ["Qwen2MoeForCausalLM"], "shared_expert_intermediate_size": 1024})
    assert (arch.num_shared_experts, arch.shared_expert_inter_size) == (2, 1024)


def test_mla_model_keeps_latent_dims_and_dense_prefix():
    config = {
        **MOE,
        "architectures": ["DeepseekV3ForCausalLM"],
        "head_dim": None,
        "num_key_value_heads": 16,
        "n_routed_experts": 32,
        "num_experts": None,
        "n_shared_experts": 1,
        "first_k_dense_replace": 1,
        "q_lora_rank": 256,
        "kv_lora_rank": 128,
        "qk_nope_head_dim": 64,
        "qk_rope_head_dim": 32,
        "v_head_dim": 64,
        "num_nextn_predict_layers": 1,
    }
    arch = _parse(config)
    assert arch.family == "mla_moe"
    assert arch.mla.kv_lora_rank == 128 and arch.mla.q_lora_rank == 256
    assert (arch.num_experts, arch.num_shared_experts, arch.shared_expert_inter_size) == (32, 1, 512)
    assert (arch.first_k_dense_layers, arch.num_moe_layers, arch.num_nextn_predict_layers) == (1, 3, 1)


def test_gpt_oss_sliding_layers_and_sinks():
    config = {
        **MOE,
        "architectures": ["GptOssForCausalLM"],
        "num_local_experts": 8,
        "num_experts": None,
        "sliding_window": 128,
        "layer_types": ["sliding_attention", "full_attention"] * 2,
    }
    arch = _parse(config)
    assert (arch.sliding_window, arch.num_sliding_layers, arch.attention_sinks) == (128, 2, True)


def test_sliding_window_switched_off_is_ignored():
    arch = _parse(
        {**LLAMA, "architectures": ["Qwen2ForCausalLM"], "sliding_window": 4096, "use_sliding_window": False}
    )
    assert (arch.sliding_window, arch.num_sliding_layers) == (None, 0)


def test_multimodal_wrapper_reads_its_text_config():
    config = {
        "architectures": ["KimiK25ForConditionalGeneration"],
        "text_config": {
            **MOE,
            "architectures": ["DeepseekV3ForCausalLM"],
            "num_key_value_heads": 16,
            "q_lora_rank": 256,
            "kv_lora_rank": 128,
            "qk_nope_head_dim": 64,
            "qk_rope_head_dim": 32,
            "v_head_dim": 64,
        },
        "vision_config": {"hidden_size": 64},
    }
    arch = _parse(config)
    assert (arch.family, arch.hf_architecture, arch.num_experts) == (
        "mla_moe",
        "KimiK25ForConditionalGeneration",
        16,
    )


# ----------------------------------------------------------------------------- quantization


@pytest.mark.parametrize(
    ("quant_config", "expected"),
    [
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, ("fp8_block", "fp8_block", "fp8", "fp8")),
        ({"quant_method": "fp8", "activation_scheme": "dynamic"}, ("fp8", "fp8", "fp8", "fp8")),
        ({"quant_method": "fp8", "activation_scheme": "static"}, ("fp8_static", "fp8", "fp8", "fp8")),
        ({"quant_method": "fp8"}, ("fp8_static", "fp8", "fp8", "fp8")),  # unmarked per-tensor = static
        ({"quant_method": "mxfp4"}, ("float16", "w4a16_mxfp4", "float16", "float16")),
        (
            {"quant_method": "fp8", "kv_cache_scheme": {"type": "float", "num_bits": 8}},
            ("fp8_static", "fp8", "fp8", "fp8"),
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {"g": {"weights": {"num_bits": 4, "type": "int"}}},
                "ignore": ["lm_head", "re:.*self_attn.*"],
            },
            ("float16", "int4_wo", "float16", "float16"),
        ),
    ],
)
def test_checkpoint_quantization_becomes_default_quant(quant_config, expected):
    quant = quant_defaults({**MOE, "quantization_config": quant_config})
    assert (quant.gemm, quant.moe, quant.kvcache, quant.fmha) == expected


def test_modelopt_hf_quant_config_nvfp4():
    quant = quant_defaults(MOE, {"quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": "FP8"}})
    assert (quant.gemm, quant.moe, quant.kvcache, quant.fmha) == ("nvfp4", "nvfp4", "fp8", "fp8")


def test_fp8_kv_cache_alone_keeps_fmha_16_bit():
    quant = quant_defaults({**LLAMA, "quantization_config": {"kv_cache_quant_algo": "fp8"}})
    assert (quant.gemm, quant.kvcache, quant.fmha) == ("float16", "fp8", "float16")


def test_unsupported_quantization_is_named():
    with pytest.raises(ServoptError, match=r"quant_algo: 'gptq': unsupported checkpoint quantization"):
        quant_defaults({**LLAMA, "quantization_config": {"quant_method": "gptq"}})


# ----------------------------------------------------------------------------- errors


def test_unsupported_architecture_names_the_families():
    with pytest.raises(ServoptError) as err:
        _parse({**LLAMA, "architectures": ["MambaForCausalLM"]}, name="my-mamba")
    text = str(err.value)
    assert "my-mamba" in text and "MambaForCausalLM is not supported" in text
    for family in ("dense (", "moe (", "mla_moe ("):
        assert family in text


def test_missing_field_is_named():
    config = {k: v for k, v in LLAMA.items() if k != "hidden_size"}
    with pytest.raises(ServoptError, match="'hidden_size' as a positive integer"):
        _parse(config)


def test_incoherent_numbers_are_rejected():
    with pytest.raises(ServoptError, match="num_heads must be a multiple of num_kv_heads"):
        _parse({**LLAMA, "num_key_value_heads": 3})
    with pytest.raises(ServoptError, match="topk"):
        _parse({**MOE, "num_experts_per_tok": 32})


def test_interleaved_moe_layers_are_rejected():
    with pytest.raises(ServoptError, match="interleaved dense/MoE"):
        _parse({**MOE, "mlp_only_layers": [0, 2]})


def test_load_config_files_from_folder_and_file(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    quant = {"quantization": {"quant_algo": "FP8"}}
    (tmp_path / "hf_quant_config.json").write_text(json.dumps(quant))
    assert load_config_files(tmp_path) == (LLAMA, quant)
    assert load_config_files(tmp_path / "config.json") == (LLAMA, quant)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ServoptError, match="cannot read JSON"):
        load_config_files(tmp_path / "broken.json")


# ----------------------------------------------------------------------------- parity with the peer


def _bundled_supported() -> list[str]:
    folder = model_configs_dir()
    if folder is None:
        return []
    stems = []
    for path in sorted(folder.glob("*_config.json")):
        if path.name.endswith("_hf_quant_config.json"):
            continue
        arch = (json.loads(path.read_text()).get("architectures") or [None])[0]
        if arch in ARCHITECTURE_FAMILIES:
            stems.append(path.name[: -len("_config.json")])
    return stems


# Peer enum names -> servopt's (the seed spells 16-bit "float16").
_PEER_QUANT_NAME = {"bfloat16": "float16"}


@pytest.mark.peer
@pytest.mark.parametrize("stem", _bundled_supported() or ["(peer absent)"])
def test_parse_matches_the_peer(stem, tmp_path):
    """Same shapes and default quant modes as aiconfigurator's own parse of the same files."""
    pytest.importorskip("aiconfigurator_core")
    from aiconfigurator_core.sdk.models import helpers
    from aiconfigurator_core.sdk.utils import get_model_config_from_model_path

    folder = model_configs_dir()
    shutil.copy(folder / f"{stem}_config.json", tmp_path / "config.json")
    quant_file = folder / f"{stem}_hf_quant_config.json"
    if quant_file.is_file():
        shutil.copy(quant_file, tmp_path / "hf_quant_config.json")
    peer = get_model_config_from_model_path(str(tmp_path))
    config, quant = load_config_files(tmp_path)
    ours = arch_from_hf_config(config, name=stem, hf_quant_config=quant)

    assert ours.hf_architecture == peer["architecture"]
    assert (ours.num_layers, ours.num_heads, ours.head_dim) == (peer["layers"], peer["n"], peer["d"])
    assert ours.num_kv_heads == (peer["n_kv"] or peer["n"])
    assert (ours.hidden_size, ours.inter_size) == (peer["hidden_size"], peer["inter_size"])
    assert (ours.vocab_size, ours.max_context) == (peer["vocab"], peer["context"])
    assert (ours.topk, ours.num_experts) == (peer["topk"], peer["num_experts"])
    if ours.is_moe:
        assert ours.moe_inter_size == peer["moe_inter_size"]
    assert ours.num_shared_experts == helpers._derive_num_shared_experts(peer)
    assert ours.num_moe_layers == helpers._derive_num_moe_layers(peer)
    extra = peer["extra_params"]
    if isinstance(extra, dict) and "use_qk_norm" in extra:
        assert ours.qk_norm == extra["use_qk_norm"]
    if ours.mla is not None:
        assert ours.mla.v_head_dim == extra["v_head_dim"]
        assert ours.mla.kv_lora_rank == extra["kv_lora_rank"]
        assert ours.mla.qk_rope_head_dim == extra["qk_rope_head_dim"]

    inferred = helpers._infer_quant_modes_from_raw_config(peer["raw_config"], peer["architecture"])
    expected = {"gemm": "float16", "moe": "float16", "kvcache": "float16", "fmha": "float16"}
    for peer_key, ours_key in (
        ("gemm_quant_mode", "gemm"),
        ("moe_quant_mode", "moe"),
        ("kvcache_quant_mode", "kvcache"),
        ("fmha_quant_mode", "fmha"),
    ):
        if peer_key in inferred:
            name = inferred[peer_key].name
            expected[ours_key] = _PEER_QUANT_NAME.get(name, name)
    assert ours.quant.model_dump() == expected


def test_bundled_configs_cover_the_required_families():
    if model_configs_dir() is None:
        pytest.skip("aiconfigurator-core's model_configs/ is not installed")
    families = {
        ARCHITECTURE_FAMILIES[
            json.loads((model_configs_dir() / f"{s}_config.json").read_text())["architectures"][0]
        ]
        for s in _bundled_supported()
    }
    assert families == {"dense", "moe", "mla_moe"}
