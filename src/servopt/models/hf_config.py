"""Hugging Face ``config.json`` (+ ``hf_quant_config.json``) -> ModelArch.

The field rules follow how aiconfigurator reads the same files (head_dim falls back to
hidden_size // heads, expert counts and widths under their several spellings, shared experts from an
explicit count or a shared width), so both tools price the same shapes. The checkpoint's quantization
becomes the default quant modes (``QuantDefaults``) by the peer's rules:

- fp8 per-tensor -> gemm ``fp8_static`` (``fp8`` when activations are marked dynamic), moe ``fp8``;
- fp8 with a ``weight_block_size`` -> gemm and moe ``fp8_block``;
- nvfp4 -> gemm and moe ``nvfp4``;  mxfp4 (GPT-OSS) -> gemm 16-bit, moe ``w4a16_mxfp4``;
- compressed-tensors -> the first config group's weight format, on the layer groups it does not ignore;
- any fp8/fp8_block/nvfp4 checkpoint, or an fp8 KV cache, also sets fmha fp8 and kv cache fp8.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from servopt.errors import ServoptError
from servopt.limits import MAX_FILE_BYTES
from servopt.models.arch import MlaDims, ModelArch, QuantDefaults, Source

# Hugging Face architecture -> servopt family.
ARCHITECTURE_FAMILIES: dict[str, str] = {
    "LlamaForCausalLM": "dense",
    "MistralForCausalLM": "dense",
    "Qwen2ForCausalLM": "dense",
    "Qwen3ForCausalLM": "dense",
    "MiMoForCausalLM": "dense",
    "Qwen2MoeForCausalLM": "moe",
    "Qwen3MoeForCausalLM": "moe",
    "MixtralForCausalLM": "moe",
    "GptOssForCausalLM": "moe",
    "MiniMaxM2ForCausalLM": "moe",
    "DeepseekV3ForCausalLM": "mla_moe",
    "KimiK25ForConditionalGeneration": "mla_moe",
}
# Multimodal wrappers whose language model lives under a nested key; the vision tower is not modelled.
_TEXT_CONFIG_KEY = {"KimiK25ForConditionalGeneration": "text_config"}
# Architectures whose attention normalises q and k per head (no config flag says so).
_QK_NORM_ARCHITECTURES = {"Qwen3ForCausalLM", "Qwen3MoeForCausalLM", "MiniMaxM2ForCausalLM"}
# GPT-OSS: learned attention sinks; half its layers use a sliding window.
_SINK_ARCHITECTURES = {"GptOssForCausalLM"}

_QUANT_ALGO_ALIASES = {
    "w4a16_mxfp4": "mxfp4",
    "mixed-precision": "mixed_precision",
    "mixedprecision": "mixed_precision",
}
_KV_ALIASES = {
    "fp8": "fp8",
    "e4m3": "fp8",
    "e5m2": "fp8",
    "fp16": "float16",
    "float16": "float16",
    "bf16": "float16",
    "bfloat16": "float16",
    "int8": "int8",
}
# Quant algorithms that also put context attention (fmha) and the KV cache in fp8.
_FP8_ATTENTION_ALGOS = {"fp8", "fp8_block", "nvfp4"}
SUPPORTED_QUANT_ALGOS = ("fp8", "fp8_block", "nvfp4", "mxfp4", "compressed-tensors", "mixed_precision")


def supported_architectures_text() -> str:
    """'dense (LlamaForCausalLM, ...); moe (...); mla_moe (...)' for error messages."""
    by_family: dict[str, list[str]] = {}
    for arch, family in ARCHITECTURE_FAMILIES.items():
        by_family.setdefault(family, []).append(arch)
    return "; ".join(f"{fam} ({', '.join(archs)})" for fam, archs in by_family.items())


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, malformed, oversized or too deeply nested file (or one
    with NaN/Infinity) is a ServoptError."""
    try:
        # Read at most one byte over the limit: /dev/zero or a huge file is refused, not read whole.
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise ServoptError("model", str(path), f"larger than {MAX_FILE_BYTES} bytes")
        data = json.loads(raw, parse_constant=_no_constant)
    except FileNotFoundError:
        raise ServoptError("model", str(path), "file not found") from None
    except RecursionError:
        raise ServoptError("model", str(path), "cannot read JSON: nested too deeply") from None
    except (OSError, ValueError) as err:
        raise ServoptError("model", str(path), f"cannot read JSON: {err}") from None
    if not isinstance(data, dict):
        raise ServoptError("model", str(path), "expected a JSON object")
    return data


def load_config_files(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Read a ``config.json`` (a file, or a folder holding one) and its ``hf_quant_config.json``."""
    path = Path(path).expanduser()
    config_path = path / "config.json" if path.is_dir() else path
    config = read_json(config_path)
    quant_path = config_path.parent / "hf_quant_config.json"
    return config, (read_json(quant_path) if quant_path.is_file() else None)


def _text_config(config: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures or not isinstance(architectures[0], str):
        raise ServoptError("model", name, "config.json must list the model architecture ('architectures')")
    architecture = architectures[0]
    if architecture not in ARCHITECTURE_FAMILIES:
        raise ServoptError(
            "model",
            name,
            f"architecture {architecture} is not supported; servopt runs the families "
            f"{supported_architectures_text()}",
        )
    key = _TEXT_CONFIG_KEY.get(architecture)
    if key:
        nested = config.get(key)
        if not isinstance(nested, dict):
            raise ServoptError(key, nested, f"{architecture} keeps its language model under '{key}'")
        merged = dict(nested)
        if "quantization_config" not in merged and "quantization_config" in config:
            merged["quantization_config"] = config["quantization_config"]
        return architecture, merged
    return architecture, config


def _required_int(config: dict[str, Any], key: str, name: str) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ServoptError(
            "model", name, f"config.json must give '{key}' as a positive integer (got {value!r})"
        )
    return value


def _optional_int(config: dict[str, Any], key: str, name: str) -> int | None:
    """``config[key]`` when given (a positive integer, else an error naming the key), else None.
    An explicit 0 is an error, not "unset": ``num_key_value_heads: 0`` silently became 64 heads."""
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ServoptError(
            "model", name, f"config.json gives '{key}' as {value!r}; it must be a positive integer"
        )
    return value


def _first_set(config: dict[str, Any], *keys: str) -> Any:
    """The first key whose value is not None (an explicit 0 counts as set)."""
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return None


def _shared_experts(config: dict[str, Any], moe_inter: int) -> tuple[int, int]:
    """(count, total width) of always-active shared experts."""
    count = _first_set(config, "n_shared_experts", "num_shared_experts")
    if count is not None:
        return int(count), int(count) * moe_inter
    width = config.get("shared_expert_intermediate_size") or config.get("moe_shared_expert_intermediate_size")
    if width:
        return max(1, int(width) // moe_inter), int(width)
    return 0, 0


def _sliding(architecture: str, config: dict[str, Any], layers: int) -> tuple[int | None, int]:
    """(window, number of sliding-window layers) as the checkpoint runs them."""
    window = config.get("sliding_window")
    if not window:
        return None, 0
    layer_types = config.get("layer_types")
    if isinstance(layer_types, list):
        return int(window), sum(1 for t in layer_types[:layers] if t == "sliding_attention")
    if architecture in _SINK_ARCHITECTURES:
        return int(window), layers // 2
    if config.get("use_sliding_window") is False:
        return None, 0
    if config.get("use_sliding_window") and config.get("max_window_layers") is not None:
        # Qwen2-style: layers from max_window_layers on use the window.
        return int(window), max(0, layers - int(config["max_window_layers"]))
    return int(window), layers


def _check_uniform_moe(config: dict[str, Any], name: str) -> None:
    """Only a dense prefix (first_k_dense_replace) is modelled, not interleaved dense/MoE layers."""
    freq = config.get("moe_layer_freq", 1)
    for key, interleaved in (
        ("mlp_only_layers", bool(config.get("mlp_only_layers"))),
        ("decoder_sparse_step", int(config.get("decoder_sparse_step") or 1) > 1),
        ("moe_layer_freq", isinstance(freq, list) or int(freq or 1) > 1),
    ):
        if interleaved:
            raise ServoptError(
                "model", name, f"interleaved dense/MoE layers ({key}={config[key]!r}) are not supported"
            )


def arch_from_hf_config(
    config: dict[str, Any],
    *,
    name: str,
    hf_id: str | None = None,
    hf_quant_config: dict[str, Any] | None = None,
    source: Source = "config_json",
    aliases: tuple[str, ...] = (),
) -> ModelArch:
    """Parse one Hugging Face config (and optional ModelOpt quant config) into a validated ModelArch."""
    try:
        return _arch_from_hf_config(config, name, hf_id, hf_quant_config, source, aliases)
    except (ValueError, TypeError, AttributeError) as err:
        # A value of the wrong type deep in the config ("num_experts": "many", a list for a number).
        raise ServoptError("model", name, f"config.json has a value of the wrong type: {err}") from None


def _arch_from_hf_config(
    config: dict[str, Any],
    name: str,
    hf_id: str | None,
    hf_quant_config: dict[str, Any] | None,
    source: Source,
    aliases: tuple[str, ...],
) -> ModelArch:
    architecture, cfg = _text_config(config, name)
    family = ARCHITECTURE_FAMILIES[architecture]
    layers = _required_int(cfg, "num_hidden_layers", name)
    hidden = _required_int(cfg, "hidden_size", name)
    heads = _required_int(cfg, "num_attention_heads", name)
    fields: dict[str, Any] = {
        "name": name,
        "hf_id": hf_id,
        "aliases": aliases,
        "source": source,
        "family": family,
        "hf_architecture": architecture,
        "num_layers": layers,
        "hidden_size": hidden,
        "num_heads": heads,
        "num_kv_heads": _optional_int(cfg, "num_key_value_heads", name) or heads,
        "head_dim": _optional_int(cfg, "head_dim", name)
        or _optional_int(cfg, "attention_head_dim", name)
        or hidden // heads,
        "inter_size": cfg.get("intermediate_size") or 0,
        "vocab_size": _required_int(cfg, "vocab_size", name),
        "max_context": _required_int(cfg, "max_position_embeddings", name),
        "qk_norm": architecture in _QK_NORM_ARCHITECTURES or bool(cfg.get("use_qk_norm")),
        "attention_sinks": architecture in _SINK_ARCHITECTURES,
        "tie_word_embeddings": bool(config.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))),
        "num_nextn_predict_layers": int(
            cfg.get("num_nextn_predict_layers")
            or (cfg.get("num_mtp_modules") if cfg.get("use_mtp") else 0)
            or 0
        ),
        "quant": quant_defaults(config, hf_quant_config),
    }
    fields["sliding_window"], fields["num_sliding_layers"] = _sliding(architecture, cfg, layers)
    if family != "dense":
        _check_uniform_moe(cfg, name)
        moe_inter = int(cfg.get("moe_intermediate_size") or cfg.get("intermediate_size") or 0)
        shared, shared_width = _shared_experts(cfg, moe_inter) if moe_inter else (0, 0)
        fields |= {
            "num_experts": int(
                _first_truthy(
                    *(
                        cfg.get(k)
                        for k in ("num_local_experts", "n_routed_experts", "moe_num_experts", "num_experts")
                    )
                )
                or 0
            ),
            "topk": int(_first_set(cfg, "num_experts_per_tok", "top_k_experts", "moe_top_k") or 0),
            "moe_inter_size": moe_inter,
            "num_shared_experts": shared,
            "shared_expert_inter_size": shared_width,
            "first_k_dense_layers": int(cfg.get("first_k_dense_replace") or 0),
        }
    if family == "mla_moe":
        fields["mla"] = {k: cfg.get(k) for k in MlaDims.model_fields}
    try:
        return ModelArch.model_validate(fields)
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "config"
        raise ServoptError(
            "model", name, f"config.json does not describe a valid model: {where}: {problem['msg']}"
        ) from None


# ----------------------------------------------------------------------------- quantization


def _quantization_config(config: dict[str, Any], hf_quant: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's ``quantization_config`` (nested for multimodal wrappers), else one built from
    ``hf_quant_config.json``."""
    qc = config.get("quantization_config")
    if qc is not None and not isinstance(qc, dict):
        raise ServoptError(
            "quantization_config",
            qc,
            f"config.json gives 'quantization_config' as {str(qc)[:60]!r}; it must be a JSON object (or be left out)",
        )
    if not isinstance(qc, dict):
        architectures = config.get("architectures") or [None]
        nested = config.get(_TEXT_CONFIG_KEY.get(architectures[0], ""), {})
        qc = nested.get("quantization_config") if isinstance(nested, dict) else None
    if isinstance(qc, dict):
        return qc
    built: dict[str, Any] = {}
    if hf_quant.get("quant_algo"):
        built["quant_method"] = str(hf_quant["quant_algo"]).lower()
    if hf_quant.get("kv_cache_quant_algo"):
        built["kv_cache_quant_method"] = str(hf_quant["kv_cache_quant_algo"]).lower()
    return built


def _normalized(value: Any) -> str | None:
    if value is None or not str(value).strip():
        return None
    text = str(value).strip().lower()
    return _QUANT_ALGO_ALIASES.get(text, text)


def _kv_algo(qc: dict[str, Any], hf_quant: dict[str, Any]) -> str | None:
    raw = _first_truthy(
        hf_quant.get("kv_cache_quant_algo"),
        qc.get("kv_cache_quant_algo"),
        qc.get("kv_cache_quant_method"),
        qc.get("kv_cache_dtype"),
    )
    if raw is not None:
        text = str(raw).strip().lower()
        if text not in _KV_ALIASES:
            raise ServoptError(
                "kv_cache_quant_algo", raw, "unsupported KV-cache quantization", sorted(_KV_ALIASES)
            )
        return _KV_ALIASES[text]
    scheme = qc.get("kv_cache_scheme")
    if isinstance(scheme, dict):
        kind = str(scheme.get("type", "")).lower()
        bits = scheme.get("num_bits")
        if "fp8" in kind:
            return "fp8"
        if kind == "float" and isinstance(bits, int):
            if bits <= 8:
                return "fp8"
            if bits >= 16:
                return "float16"
    return None


def _first_truthy(*values: Any) -> Any:
    return next((v for v in values if v), None)


def _dynamic_activations(qc: dict[str, Any]) -> bool | None:
    """True/False when the checkpoint says its activation scales are dynamic/static, else None."""
    scheme = str(qc.get("activation_scheme", "")).lower()
    if scheme in ("dynamic", "static"):
        return scheme == "dynamic"
    flags = [
        bool(item["dynamic"])
        for group in (qc.get("config_groups") or {}).values()
        if isinstance(group, dict)
        for key in ("input_activations", "weights")
        if isinstance(item := group.get(key), dict) and "dynamic" in item
    ]
    return any(flags) if flags else None


def _compressed_tensors_modes(qc: dict[str, Any]) -> dict[str, str]:
    """Weight format of the first config group, applied to the layer groups it does not ignore."""
    base = None
    for group in (qc.get("config_groups") or {}).values():
        weights = (group or {}).get("weights") or {}
        bits, kind = weights.get("num_bits"), str(weights.get("type", "")).lower()
        if bits == 4 and "int" in kind:
            base = "int4_wo"
        elif bits == 8 and "int" in kind:
            base = "int8_wo"
        elif bits == 8 and "float" in kind:
            blocked = str(weights.get("strategy", "")).lower() == "block" or weights.get("block_structure")
            base = "fp8_block" if blocked else "fp8"
        elif bits == 4 and "float" in kind:
            base = "w4a16_mxfp4"
        if base:
            break
    if base is None:
        return {}
    ignored = " ".join(str(p).lower() for p in qc.get("ignore") or [])
    modes = {}
    if not any(k in ignored for k in ("self_attn", "q_proj", "k_proj", "v_proj", "o_proj")):
        modes["gemm"] = base
    # "expert" in an ignore pattern that is not about shared experts keeps routed experts 16-bit.
    routed_ignored = any(
        "expert" in p and "shared_expert" not in p for p in (str(x).lower() for x in qc.get("ignore") or [])
    )
    if not routed_ignored:
        modes["moe"] = base
    return modes


_MIXED_ALGO_ALIASES = {
    "fp8": "fp8",
    "e4m3": "fp8",
    "e5m2": "fp8",
    "mxfp8": "mxfp8",
    "nvfp4": "nvfp4",
    "fp4": "nvfp4",
    "w4a16_nvfp4": "w4a16_nvfp4",
}


def _group_algo(group: dict[str, Any]) -> str | None:
    """Format of one ModelOpt config group: its named algorithm, else inferred from bits and type."""
    weights = group.get("weights")
    if not isinstance(weights, dict):
        return None
    named = weights.get("quant_algo") or weights.get("quantization_algo") or weights.get("quant_method")
    if named:
        return str(named)
    bits, kind = weights.get("num_bits"), str(weights.get("type", "")).lower()
    if bits == 8 and "float" in kind:
        return "mxfp8" if weights.get("group_size") == 32 else "fp8"
    if bits == 4 and "float" in kind:
        return "nvfp4"
    return None


def _mixed_precision_modes(
    qc: dict[str, Any], hf_quant: dict[str, Any], dynamic: bool | None
) -> dict[str, str]:
    """ModelOpt MIXED_PRECISION: per-layer formats split into routed experts (moe) and the rest (gemm)."""
    gemm_algos: set[str] = set()
    moe_algos: set[str] = set()

    def add(target: Any, algo: Any) -> None:
        name = _MIXED_ALGO_ALIASES.get(str(algo).strip().lower()) if algo else None
        if name is None:
            return
        t = str(target).lower()
        routed = "shared_expert" not in t and (
            ".experts." in t or t.endswith(".experts") or "routing_expert" in t
        )
        (moe_algos if routed else gemm_algos).add(name)

    for layers in (hf_quant.get("quantized_layers"), qc.get("quantized_layers")):
        for target, meta in (layers or {}).items() if isinstance(layers, dict) else ():
            add(
                target,
                (meta.get("quant_algo") or meta.get("quant_method")) if isinstance(meta, dict) else meta,
            )
    for group in (qc.get("config_groups") or {}).values():
        if isinstance(group, dict) and (algo := _group_algo(group)):
            for target in group.get("targets") or []:
                add(target, algo)
    modes: dict[str, str] = {}
    base = str(qc.get("quant_method", "")).lower()
    if base == "fp8":
        modes["gemm"] = (
            "fp8_block" if qc.get("weight_block_size") else ("fp8" if dynamic is True else "fp8_static")
        )
    elif "mxfp8" in gemm_algos:
        modes["gemm"] = "fp8_block"  # 32-element block-scaled fp8: same bytes and tensor cores as fp8_block
    elif "fp8" in gemm_algos:
        modes["gemm"] = "fp8" if dynamic is True else "fp8_static"
    elif "w4a16_nvfp4" in gemm_algos:
        modes["gemm"] = "w4a16_nvfp4"  # no servopt mode: QuantDefaults rejects it with a clear error
    elif "nvfp4" in gemm_algos:
        modes["gemm"] = "nvfp4"
    if "w4a16_nvfp4" in moe_algos:
        modes["moe"] = "w4a16_nvfp4"
    elif "nvfp4" in moe_algos:
        modes["moe"] = "nvfp4"
    elif "mxfp8" in moe_algos:
        modes["moe"] = "fp8_block"
    elif "fp8" in moe_algos:
        modes["moe"] = "fp8"
    return modes


def quant_defaults(config: dict[str, Any], hf_quant_config: dict[str, Any] | None = None) -> QuantDefaults:
    """The checkpoint's quantization as servopt's default quant modes (16-bit where it says nothing)."""
    hf_quant = (hf_quant_config or {}).get("quantization")
    hf_quant = hf_quant if isinstance(hf_quant, dict) else {}
    qc = _quantization_config(config, hf_quant)
    algo = _normalized(
        _first_truthy(
            hf_quant.get("quant_algo"),
            qc.get("quant_algo"),
            qc.get("quant_method"),
            qc.get("quantization_method"),
        )
    )
    if algo == "fp8" and qc.get("weight_block_size"):
        algo = "fp8_block"
    kv = _kv_algo(qc, hf_quant)
    dynamic = _dynamic_activations(qc)

    modes: dict[str, str] = {}
    if algo == "fp8":
        modes = {"gemm": "fp8" if dynamic is True else "fp8_static", "moe": "fp8"}
    elif algo in ("fp8_block", "nvfp4"):
        modes = {"gemm": algo, "moe": algo}
    elif algo == "mxfp4":
        modes = {"moe": "w4a16_mxfp4"}
    elif algo == "compressed-tensors":
        modes = _compressed_tensors_modes(qc)
    elif algo == "mixed_precision":
        modes = _mixed_precision_modes(qc, hf_quant, dynamic)
    elif algo is not None:
        raise ServoptError("quant_algo", algo, "unsupported checkpoint quantization", SUPPORTED_QUANT_ALGOS)
    if kv is not None:
        modes["kvcache"] = kv
    if algo is not None and (algo in _FP8_ATTENTION_ALGOS or kv == "fp8"):
        modes["fmha"] = "fp8"
        modes["kvcache"] = "fp8"
    try:
        return QuantDefaults(**modes)
    except ValidationError:
        raise ServoptError(
            "quantization", modes, "checkpoint quantization has no servopt quant mode"
        ) from None
