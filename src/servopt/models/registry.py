"""Model registry: names, Hugging Face ids and config.json paths -> ModelArch.

Three sources, looked up in this order:

1. servopt's own ``perf_db/models/*.yaml`` (one ModelArch per file), matched case-insensitively by
   name (``QWEN3_32B``), alias (legacy aiconfigurator names such as ``QWEN3_235B``,
   ``MOE_Mixtral8x7B``; other HF ids) or HF id (``Qwen/Qwen3-32B``);
2. the ``config.json`` copies aiconfigurator-core ships in its ``model_configs/`` folder (read as
   files, the package is never imported), matched by HF id (``Qwen/Qwen3-32B-FP8``) or by the
   seed-style name derived from it (``QWEN3_32B_FP8``); their quant configs set the default quant;
3. a path to a ``config.json``, or to a folder holding one (plus ``hf_quant_config.json``);
4. any other Hugging Face id (``Qwen/Qwen3-4B``): its ``config.json`` from the local Hugging Face
   cache, or downloaded when online (``models/hub.py``).

Registry names and HF ids win over a same-named local folder, so a name means the same model in
every working directory.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import yaml
from pydantic import ValidationError

from servopt.errors import ServoptError, UnknownNameError
from servopt.limits import name_problem
from servopt.models.arch import ModelArch
from servopt.models.hf_config import ARCHITECTURE_FAMILIES, arch_from_hf_config, load_config_files, read_json
from servopt.models.hub import HubMiss, looks_like_hf_id
from servopt.models.hub import config_files as hub_config_files
from servopt.resources import data_root

# libyaml's parser when present (15x faster on the 17 registry files); SafeLoader's semantics.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_CONFIG_SUFFIX = "_config.json"
_QUANT_SUFFIX = "_hf_quant_config.json"


def models_dir() -> Path:
    return data_root() / "models"


def model_configs_dir() -> Path | None:
    """aiconfigurator-core's bundled ``model_configs/`` folder, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec("aiconfigurator_core")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model_configs"
    return folder if folder.is_dir() else None


def derived_name(hf_id: str) -> str:
    """Seed-style name of an HF id: ``Qwen/Qwen3-32B-FP8`` -> ``QWEN3_32B_FP8``."""
    return hf_id.rsplit("/", 1)[-1].upper().replace("-", "_")


@cache
def _registry() -> tuple[ModelArch, ...]:
    models = []
    for path in sorted(models_dir().glob("*.yaml")):
        try:
            raw = yaml.load(path.read_text(), Loader=_YAML_LOADER)
            models.append(ModelArch.model_validate(raw))
        except (yaml.YAMLError, ValidationError) as err:
            first = " ".join(str(err).splitlines()[:3])
            raise ServoptError("model", path.stem, f"invalid model file {path}: {first}") from None
    return tuple(models)


def _key(text: str) -> str:
    return text.strip().lower()


@cache
def _registry_index() -> dict[str, ModelArch]:
    index: dict[str, ModelArch] = {}
    for arch in _registry():
        for key in (arch.name, arch.hf_id, *arch.aliases):
            if key is None:
                continue
            if _key(key) in index and index[_key(key)].name != arch.name:
                raise ServoptError("model", key, f"claimed by both {index[_key(key)].name} and {arch.name}")
            index[_key(key)] = arch
    return index


@cache
def _model_config_files() -> dict[str, Path]:
    """HF id -> bundled config.json path, for every copy aiconfigurator-core ships."""
    folder = model_configs_dir()
    if folder is None:
        return {}
    files = {}
    for path in sorted(folder.glob(f"*{_CONFIG_SUFFIX}")):
        if path.name.endswith(_QUANT_SUFFIX):
            continue
        files[path.name[: -len(_CONFIG_SUFFIX)].replace("--", "/", 1)] = path
    return files


@cache
def _model_configs_index() -> dict[str, str]:
    """Lower-cased HF id or derived name -> HF id, for bundled configs the registry does not cover.

    A derived name that two ids share is dropped (both stay reachable by HF id)."""
    registry = _registry_index()
    index: dict[str, str] = {}
    clashes: set[str] = set()
    for hf_id in _model_config_files():
        if _key(hf_id) in registry:
            continue
        index[_key(hf_id)] = hf_id
        name = _key(derived_name(hf_id))
        if name in registry or name in clashes:
            continue
        if name in index:
            clashes.add(name)
            del index[name]
        else:
            index[name] = hf_id
    return index


@cache
def _bundled_arch(hf_id: str) -> ModelArch:
    path = _model_config_files()[hf_id]
    quant_path = path.with_name(path.name[: -len(_CONFIG_SUFFIX)] + _QUANT_SUFFIX)
    quant = read_json(quant_path) if quant_path.is_file() else None
    name = derived_name(hf_id)
    if _key(name) not in _model_configs_index():
        name = hf_id
    return arch_from_hf_config(
        read_json(path), name=name, hf_id=hf_id, hf_quant_config=quant, source="model_configs"
    )


def _bundled_arch_or_none(hf_id: str) -> ModelArch | None:
    """The bundled config as a ModelArch, or None when servopt cannot run it (unsupported family)."""
    try:
        return _bundled_arch(hf_id)
    except ServoptError:
        return None


def _looks_like_path(text: str) -> bool:
    return (
        text.endswith(".json") or text.startswith(("/", "./", "../", "~")) or Path(text).expanduser().exists()
    )


def resolve_model(name_or_id_or_path: str) -> ModelArch:
    """The architecture for a registry name, an alias, an HF id or a config.json path.

    Raises UnknownNameError (with the closest names) for an unknown model, and ServoptError naming
    the supported families for a config.json of an unsupported architecture."""
    text = str(name_or_id_or_path).strip()
    if not text:
        raise ServoptError("model", name_or_id_or_path, "a model name, HF id or config.json path is required")
    too_long = name_problem(text, path_allowed=True)
    if too_long is not None:
        raise ServoptError("model", text, too_long)
    key = _key(text)
    if key in _registry_index():
        return _registry_index()[key]
    if key in _model_configs_index():
        return _bundled_arch(_model_configs_index()[key])
    if _looks_like_path(text):
        path = Path(text).expanduser()
        if not path.exists():
            raise ServoptError("model", text, "no such config.json file or folder")
        config, quant = load_config_files(path)
        hf_id = config.get("_name_or_path") or None
        return arch_from_hf_config(
            config, name=text, hf_id=hf_id, hf_quant_config=quant, source="config_json"
        )
    if looks_like_hf_id(text):
        try:
            config, quant, _ = hub_config_files(text)
        except HubMiss as miss:
            raise UnknownNameError("model", text, miss.message, model_names()) from None
        return arch_from_hf_config(config, name=text, hf_id=text, hf_quant_config=quant, source="config_json")
    raise UnknownNameError(
        "model",
        text,
        "unknown model (give a registry name, a Hugging Face id, or a path to a config.json)",
        model_names(),
    )


def list_models(include_model_configs: bool = True) -> list[ModelArch]:
    """Every model servopt can run: the registry, then the bundled configs of supported families."""
    return list(_all_models(include_model_configs))


@cache
def _all_models(include_model_configs: bool) -> tuple[ModelArch, ...]:
    models = list(_registry())
    if include_model_configs:
        registry = _registry_index()
        for hf_id, path in _model_config_files().items():
            if _key(hf_id) in registry:
                continue
            arch = (
                _bundled_arch_or_none(hf_id)
                if _declared_architecture(path) in ARCHITECTURE_FAMILIES
                else None
            )
            if arch is not None:
                models.append(arch)
    return tuple(models)


def _declared_architecture(path: Path) -> str | None:
    try:
        return (read_json(path).get("architectures") or [None])[0]
    except ServoptError:
        return None


def model_names(include_model_configs: bool = True) -> list[str]:
    """The names ``resolve_model`` accepts as canonical (aliases and HF ids are accepted too)."""
    return [m.name for m in list_models(include_model_configs)]


def clear_caches() -> None:
    """Forget loaded models (tests that point the registry at other folders call this)."""
    for fn in (
        _registry,
        _registry_index,
        _model_config_files,
        _model_configs_index,
        _bundled_arch,
        _all_models,
    ):
        fn.cache_clear()
