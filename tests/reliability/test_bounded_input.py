"""Bounded input: files, YAML expansion and nesting, names and numbers are checked before anything
expensive reads them, for the CLI as for the web app (``servopt.limits``); one line, exit code 2."""

from __future__ import annotations

import json
import math

import pytest

from servopt import limits
from servopt.config import ConfigError, load_experiments, load_experiments_text
from servopt.errors import ServoptError, closest
from servopt.models.hf_config import arch_from_hf_config, read_json
from servopt.models.registry import resolve_model

from .conftest import one_error_line, servopt

BODY = "  mode: patch\n  serving_mode: agg\n  model_name: {model}\n  total_gpus: 8\n  system_name: h200_sxm\n"


def _bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _only_problem(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_experiments_text(text, "t.yaml")
    (problem,) = err.value.problems
    return problem.message


def test_an_alias_bomb_is_refused_before_it_expands():
    assert f"more than {limits.MAX_EXPANDED_NODES} nodes" in _only_problem(_bomb())


def test_deep_nesting_is_refused():
    text = "e: " + "[" * (limits.MAX_NESTING_DEPTH + 5) + "]" * (limits.MAX_NESTING_DEPTH + 5) + "\n"
    assert "nests deeper than" in _only_problem(text)


def test_an_oversized_text_is_refused():
    text = "e:\n" + BODY.format(model="QWEN3_32B") + "# " + "x" * limits.MAX_FILE_BYTES + "\n"
    assert f"at most {limits.MAX_FILE_BYTES}" in _only_problem(text)


def test_dev_zero_as_an_experiment_file_is_read_only_up_to_the_limit():
    with pytest.raises(ConfigError) as err:
        load_experiments("/dev/zero")
    assert f"larger than {limits.MAX_FILE_BYTES} bytes" in str(err.value)


def test_a_huge_model_name_is_one_short_line():
    text = "e:\n" + BODY.format(model="A" * 500_000)
    with pytest.raises(ConfigError) as err:
        load_experiments_text(text, "t.yaml")
    message = str(err.value)
    assert "\n" not in message and len(message) < 1000
    assert f"at most {limits.MAX_PATH_CHARS} allowed" in message


def test_closest_does_not_match_huge_values():
    assert closest("A" * 1_000_000, ["AAAA", "QWEN3_32B"]) == []
    assert len(str(ServoptError("model", "A" * 1_000_000, "unknown", ["AAAA"]))) < 500


@pytest.mark.parametrize("name", ["B" * 120_000, "/" + "c" * 5000 + "/config.json"])
def test_registry_refuses_overlong_names_and_paths(name):
    with pytest.raises(ServoptError) as err:
        resolve_model(name)
    assert "characters; at most" in err.value.message


# --- config.json ---------------------------------------------------------------------------------

QWEN = {
    "architectures": ["Qwen3ForCausalLM"],
    "hidden_size": 5120,
    "num_hidden_layers": 64,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 25600,
    "vocab_size": 151936,
    "max_position_embeddings": 40960,
}


def test_the_plain_config_parses():
    arch = arch_from_hf_config(QWEN, name="q")
    assert (arch.num_kv_heads, arch.head_dim) == (8, 128)


@pytest.mark.parametrize(
    "key, value",
    [
        ("num_key_value_heads", 0),
        ("num_key_value_heads", -8),
        ("num_key_value_heads", "8"),
        ("head_dim", 0),
        ("head_dim", -1),
        ("num_hidden_layers", 0),
        ("num_attention_heads", -64),
        ("hidden_size", 0),
        ("vocab_size", 0),
    ],
)
def test_impossible_sizes_are_errors_naming_the_key(key, value):
    with pytest.raises(ServoptError) as err:
        arch_from_hf_config({**QWEN, key: value}, name="q")
    assert key in str(err.value)


def test_a_string_quantization_config_is_an_error_not_ignored():
    with pytest.raises(ServoptError) as err:
        arch_from_hf_config({**QWEN, "quantization_config": "fp8"}, name="q")
    assert err.value.field == "quantization_config"


def test_a_value_of_the_wrong_type_is_one_error():
    moe = {
        **QWEN,
        "architectures": ["Qwen3MoeForCausalLM"],
        "num_experts": "many",
        "moe_intermediate_size": 1536,
    }
    with pytest.raises(ServoptError) as err:
        arch_from_hf_config(moe, name="q")
    assert "wrong type" in err.value.message


@pytest.mark.parametrize(
    "content, expected",
    [
        ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
        ('{"hidden_size": NaN}', "NaN"),
        ('{"hidden_size": Infinity}', "Infinity"),
    ],
)
def test_hostile_json_files_are_one_error(tmp_path, content, expected):
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ServoptError) as err:
        read_json(path)
    assert expected in str(err.value)


def test_dev_zero_as_config_json_is_refused_without_reading_it_whole():
    from pathlib import Path

    with pytest.raises(ServoptError) as err:
        read_json(Path("/dev/zero"))
    assert f"larger than {limits.MAX_FILE_BYTES} bytes" in str(err.value)


# --- the CLI, end to end ---------------------------------------------------------------------------


def test_cli_alias_bomb_is_one_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    assert "expands to more than" in one_error_line(servopt("cli", "exp", "--yaml_path", str(path)))


@pytest.mark.parametrize(
    "args, field",
    [
        (["--model", "/dev/zero"], "--model"),
        (["--model", "C" * 100_000], "--model"),
        (["--ttft", "nan"], "--ttft"),
        (["--tpot", "inf"], "--tpot"),
    ],
)
def test_cli_default_bad_input_is_one_line(args, field):
    base = {"--model": "QWEN3_32B", "--total_gpus": "8", "--system": "h200_sxm"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    out = servopt("cli", "default", *[x for kv in base.items() for x in kv], "--json")
    assert one_error_line(out).startswith(f"error: {field}")
    assert out.stdout == ""


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0"])
def test_cli_estimate_latency_correction_scale_must_be_finite(value):
    out = servopt("cli", "estimate", "--model", "QWEN3_32B", "--system", "h200_sxm",
                  "--latency_correction_scale", value, "--json")  # fmt: skip
    assert "--latency_correction_scale" in one_error_line(out)
    assert "NaN" not in out.stdout and out.stdout == ""


def test_cli_config_json_with_zero_kv_heads_is_one_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**QWEN, "num_key_value_heads": 0}))
    out = servopt(
        "cli", "default", "--model", str(path), "--total_gpus", "8", "--system", "h200_sxm", "--json"
    )
    assert "num_key_value_heads" in one_error_line(out)


def test_finite_checks_hold_for_estimate_accept_rates():
    from servopt.cli.estimate_cmd import _parse_rates

    assert _parse_rates("0.85,0.3") == [0.85, 0.3]
    for bad in ("nan", "0.5,inf"):
        with pytest.raises(ServoptError):
            _parse_rates(bad)
    assert not math.isnan(sum(_parse_rates("0.1,0.2")))
