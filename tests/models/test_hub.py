"""Hugging Face ids from the local Hugging Face cache, offline, with a cache laid out as huggingface_hub
lays it (models--<org>--<name>/{refs/main, blobs/<hash>, snapshots/<rev>/config.json -> blob})."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from servopt.errors import UnknownNameError
from servopt.models import registry
from servopt.models.hub import looks_like_hf_id

REPO = "Qwen/Qwen3-4B"
REVISION = "1cfa9a7208912126459214e8b04321603b3df60c"
# Qwen3-4B's architecture numbers (a model that neither servopt's registry nor the bundled
# model_configs carry, so only the Hugging Face cache can answer for it).
QWEN3_4B = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "hidden_size": 2560,
    "intermediate_size": 9728,
    "num_hidden_layers": 36,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000,
}


def lay_out_cache(hub_cache, repo=REPO, config=QWEN3_4B):
    folder = hub_cache / f"models--{repo.replace('/', '--')}"
    data = json.dumps(config, indent=2).encode()
    blob = folder / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(REVISION)
    snapshot = folder / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").symlink_to(os.path.relpath(blob, snapshot))


def servopt(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "servopt", *args], capture_output=True, text=True, timeout=600, env=env
    )


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return {**env, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", **extra}


def test_hf_id_resolves_from_the_cache_in_process(tmp_path, monkeypatch):
    from huggingface_hub import constants

    lay_out_cache(tmp_path)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    arch = registry.resolve_model(REPO)
    assert arch.hf_id == REPO and arch.source == "config_json"
    assert arch.num_layers == 36 and arch.hidden_size == 2560


def test_cli_reads_the_hf_cache_offline(tmp_path):
    lay_out_cache(tmp_path / "hf" / "hub")
    out = servopt("cli", "estimate", "--model", REPO, "--system", "h200_sxm", "--json", env=_env(tmp_path))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ttft_ms"] > 0 and doc["tpot_ms"] > 0


def test_hf_cache_location_follows_hf_hub_cache(tmp_path):
    lay_out_cache(tmp_path / "elsewhere")
    env = _env(tmp_path, HF_HUB_CACHE=str(tmp_path / "elsewhere"))
    out = servopt("cli", "estimate", "--model", REPO, "--system", "h200_sxm", "--json", env=env)
    assert out.returncode == 0, out.stderr


def test_offline_miss_says_exactly_what_to_do(tmp_path):
    out = servopt("cli", "estimate", "--model", REPO, "--system", "h200_sxm", env=_env(tmp_path))
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(
        f"error: model: '{REPO}': not a servopt model name and not in the local Hugging Face cache"
    )
    assert str(tmp_path / "hf" / "hub") in line and "HF_HUB_OFFLINE is set" in line
    assert f"hf download {REPO} config.json" in line and "Traceback" not in out.stderr


def test_offline_miss_in_process_is_an_unknown_name_with_neighbours(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UnknownNameError, match=r"hf download Qwen/Qwen3-33B config\.json"):
        registry.resolve_model("Qwen/Qwen3-33B")


@pytest.mark.parametrize(
    ("text", "is_id"),
    [("Qwen/Qwen3-4B", True), ("deepseek-ai/DeepSeek-V3.2", True), ("QWEN3_32B", False), ("./x/config.json", False),
     ("a/b/c", False), ("../x", False), ("/abs/path", False)],
)  # fmt: skip
def test_hf_id_shape(text, is_id):
    assert looks_like_hf_id(text) is is_id
