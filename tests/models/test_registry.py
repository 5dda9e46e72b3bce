"""Model registry: names, aliases, HF ids, bundled configs, paths; unknown names; list and sizes."""

from __future__ import annotations

import json

import pytest
import yaml

from servopt.errors import ServoptError, UnknownNameError
from servopt.models import registry
from servopt.models.arch import ModelArch
from servopt.models.hf_config import arch_from_hf_config, read_json
from servopt.models.registry import list_models, model_configs_dir, model_names, resolve_model

REQUIRED = {
    "QWEN3_0.6B": "Qwen/Qwen3-0.6B",
    "QWEN3_8B": "Qwen/Qwen3-8B",
    "QWEN3_32B": "Qwen/Qwen3-32B",
    "QWEN3_30B_A3B": "Qwen/Qwen3-30B-A3B",
    "QWEN3_235B_A22B": "Qwen/Qwen3-235B-A22B",
    "LLAMA3.1_8B": "meta-llama/Meta-Llama-3.1-8B",
    "LLAMA3.1_70B": "meta-llama/Meta-Llama-3.1-70B",
    "LLAMA3.1_405B": "meta-llama/Meta-Llama-3.1-405B",
    "MIXTRAL_8X7B": "mistralai/Mixtral-8x7B-v0.1",
    "MIXTRAL_8X22B": "mistralai/Mixtral-8x22B-v0.1",
    "GPT_OSS_20B": "openai/gpt-oss-20b",
    "GPT_OSS_120B": "openai/gpt-oss-120b",
    "DEEPSEEK_V3": "deepseek-ai/DeepSeek-V3",
    "DEEPSEEK_R1": "deepseek-ai/DeepSeek-R1",
    "KIMI_K2": "moonshotai/Kimi-K2-Instruct",
}
FAMILY = {
    "QWEN3_32B": "dense",
    "LLAMA3.1_70B": "dense",
    "QWEN3_30B_A3B": "moe",
    "MIXTRAL_8X7B": "moe",
    "GPT_OSS_120B": "moe",
    "DEEPSEEK_V3": "mla_moe",
    "KIMI_K2": "mla_moe",
}

needs_bundled = pytest.mark.skipif(
    model_configs_dir() is None, reason="aiconfigurator-core's model_configs/ absent"
)


def _registry_models() -> list[ModelArch]:
    return list_models(include_model_configs=False)


def test_every_required_model_is_in_the_registry():
    by_name = {m.name: m for m in _registry_models()}
    for name, hf_id in REQUIRED.items():
        assert by_name[name].hf_id == hf_id
        assert by_name[name].source == "registry"
    for name, family in FAMILY.items():
        assert by_name[name].family == family


def test_registry_files_are_named_after_their_model():
    for path in sorted(registry.models_dir().glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        assert path.stem == raw["name"].lower().replace(".", "_")


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("QWEN3_32B", "QWEN3_32B"),
        ("qwen3_32b", "QWEN3_32B"),
        ("Qwen/Qwen3-32B", "QWEN3_32B"),
        ("qwen/qwen3-32b", "QWEN3_32B"),
        ("LLAMA3.1_70B", "LLAMA3.1_70B"),
        ("meta-llama/Llama-3.1-70B", "LLAMA3.1_70B"),
        ("DEEPSEEK_V3", "DEEPSEEK_V3"),
        ("deepseek-ai/DeepSeek-V3", "DEEPSEEK_V3"),
        ("QWEN3_235B", "QWEN3_235B_A22B"),  # aiconfigurator's legacy short name
        ("QWEN3_30B_A3B", "QWEN3_30B_A3B"),
        ("MIXTRAL_8X7B", "MIXTRAL_8X7B"),
        ("MOE_Mixtral8x7B", "MIXTRAL_8X7B"),
        ("GPT_OSS_120B", "GPT_OSS_120B"),
        ("KIMI_K2", "KIMI_K2"),
        ("  QWEN3_8B  ", "QWEN3_8B"),
    ],
)
def test_names_aliases_and_hf_ids_resolve(query, name):
    assert resolve_model(query).name == name


def test_names_and_aliases_are_unique():
    keys = []
    for arch in _registry_models():
        keys += [k.lower() for k in (arch.name, arch.hf_id, *arch.aliases) if k]
    assert len(keys) == len(set(keys))
    names = model_names()
    assert len(names) == len(set(names))


@needs_bundled
@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_registry_numbers_equal_the_public_config(name):
    """The YAML is ours, but every number must re-derive from the model's public config.json."""
    arch = resolve_model(name)
    stem = arch.hf_id.replace("/", "--")
    config = read_json(model_configs_dir() / f"{stem}_config.json")
    quant_path = model_configs_dir() / f"{stem}_hf_quant_config.json"
    quant = read_json(quant_path) if quant_path.is_file() else None
    parsed = arch_from_hf_config(config, name=arch.name, hf_id=arch.hf_id, hf_quant_config=quant)
    keep = {"name", "aliases", "source"}
    assert arch.model_dump(exclude=keep) == parsed.model_dump(exclude=keep)


@needs_bundled
def test_fp8_checkpoints_default_to_their_quantization():
    fp8 = resolve_model("Qwen/Qwen3-32B-FP8")
    assert fp8.source == "model_configs"
    assert (fp8.quant.gemm, fp8.quant.kvcache, fp8.quant.fmha) == ("fp8_block", "fp8", "fp8")
    assert resolve_model("QWEN3_32B_FP8") == fp8  # seed-style name derived from the HF id
    static = resolve_model("nvidia/Llama-3.1-70B-Instruct-FP8")  # per-tensor, from hf_quant_config.json
    assert (static.quant.gemm, static.quant.moe) == ("fp8_static", "fp8")
    assert resolve_model("DEEPSEEK_V3").quant.gemm == "fp8_block"
    assert resolve_model("GPT_OSS_20B").quant.moe == "w4a16_mxfp4"
    assert resolve_model("QWEN3_32B").quant.gemm == "float16"


@needs_bundled
def test_bundled_unsupported_architecture_is_a_clear_error_and_not_listed():
    with pytest.raises(
        ServoptError, match="GlmMoeDsaForCausalLM is not supported; servopt runs the families"
    ):
        resolve_model("zai-org/GLM-5")
    assert all(m.hf_id != "zai-org/GLM-5" for m in list_models())


@needs_bundled
def test_list_covers_registry_then_bundled_models_without_duplicates():
    models = list_models()
    sources = [m.source for m in models]
    first_bundled = sources.index("model_configs")
    assert set(sources[:first_bundled]) == {"registry"}
    assert set(sources[first_bundled:]) == {"model_configs"}
    hf_ids = [m.hf_id for m in models]
    assert len(hf_ids) == len(set(hf_ids))
    assert "Qwen/Qwen3-32B-FP8" in hf_ids
    for arch in models:  # each listed name resolves back to the same model
        assert resolve_model(arch.name) == arch


def test_config_json_path_and_folder(tmp_path):
    config = {
        "architectures": ["LlamaForCausalLM"],
        "_name_or_path": "acme/tiny-llama",
        "num_hidden_layers": 2,
        "hidden_size": 256,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "intermediate_size": 1024,
        "vocab_size": 1000,
        "max_position_embeddings": 2048,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "hf_quant_config.json").write_text(json.dumps({"quantization": {"quant_algo": "FP8"}}))
    by_file = resolve_model(str(tmp_path / "config.json"))
    by_folder = resolve_model(str(tmp_path))
    assert by_file.source == by_folder.source == "config_json"
    assert by_folder.hf_id == "acme/tiny-llama"
    assert (by_folder.num_layers, by_folder.head_dim, by_folder.quant.gemm) == (2, 32, "fp8_static")
    assert by_file.model_dump(exclude={"name"}) == by_folder.model_dump(exclude={"name"})


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ServoptError, match=r"no such config\.json"):
        resolve_model(str(tmp_path / "nope" / "config.json"))


def test_unknown_model_names_the_closest():
    with pytest.raises(UnknownNameError) as err:
        resolve_model("QWEN3_32")
    text = str(err.value)
    assert text.startswith("model: 'QWEN3_32': unknown model")
    assert "did you mean QWEN3_32B" in text
    with pytest.raises(UnknownNameError, match=r"did you mean LLAMA3\.1_70B"):
        resolve_model("LLAMA3.1_70")
    with pytest.raises(ServoptError, match="required"):
        resolve_model("  ")


@pytest.mark.parametrize(
    ("name", "total_b", "active_b"),
    [
        # Published sizes: DeepSeek-V3 671B; Qwen3-235B-A22B; gpt-oss model card 116.8B / 5.1B
        # active and 20.9B / 3.6B; Llama 3.1 405B/70B/8B; Mixtral 46.7B / 12.9B, 141B / 39B.
        ("DEEPSEEK_V3", 671, 37),
        ("QWEN3_235B_A22B", 235, 22),
        ("QWEN3_30B_A3B", 30.5, 3.3),
        ("GPT_OSS_120B", 116.8, 5.13),
        ("GPT_OSS_20B", 20.9, 3.61),
        ("LLAMA3.1_405B", 405, 405),
        ("LLAMA3.1_70B", 70.6, 70.6),
        ("LLAMA3.1_8B", 8.0, 8.0),
        ("MIXTRAL_8X7B", 46.7, 12.9),
        ("MIXTRAL_8X22B", 141, 39),
        ("KIMI_K2", 1000, 32),
    ],
)
def test_parameter_counts_match_published_sizes(name, total_b, active_b):
    arch = resolve_model(name)
    assert arch.param_count() / 1e9 == pytest.approx(total_b, rel=0.03)
    # "Active" conventions differ on whether the input embedding counts (we leave it out).
    assert arch.active_param_count() / 1e9 == pytest.approx(active_b, rel=0.1)


def test_broken_registry_file_is_one_clear_error(tmp_path, monkeypatch):
    (tmp_path / "bad.yaml").write_text("name: BAD\nfamily: dense\nnum_layers: 0\n")
    monkeypatch.setattr(registry, "models_dir", lambda: tmp_path)
    registry.clear_caches()
    try:
        with pytest.raises(ServoptError, match=r"model: 'bad': invalid model file .*bad\.yaml"):
            resolve_model("BAD")
    finally:
        monkeypatch.undo()
        registry.clear_caches()


def test_without_the_peer_data_the_registry_still_works(monkeypatch):
    monkeypatch.setattr(registry, "model_configs_dir", lambda: None)
    registry.clear_caches()
    try:
        assert resolve_model("QWEN3_32B").hf_id == "Qwen/Qwen3-32B"
        assert {m.source for m in list_models()} == {"registry"}
        with pytest.raises(UnknownNameError):
            resolve_model("Qwen/Qwen3-32B-FP8")
    finally:
        monkeypatch.undo()
        registry.clear_caches()
