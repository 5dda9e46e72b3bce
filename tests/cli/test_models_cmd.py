"""`servopt models list|show`: table and JSON output, and one clear line for an unknown model."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from servopt.cli.app import app, main

runner = CliRunner()


def test_list_json_has_every_registry_model_with_family_and_quant():
    result = runner.invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["QWEN3_32B"]["family"] == "dense"
    assert rows["DEEPSEEK_V3"]["family"] == "mla_moe"
    assert rows["DEEPSEEK_V3"]["default_quant"]["gemm"] == "fp8_block"
    assert rows["GPT_OSS_120B"]["num_layers"] == 36
    assert 600 < rows["DEEPSEEK_V3"]["params_b"] < 700


def test_list_table_marks_bundled_models():
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert "LLAMA3.1_70B" in result.output
    if '"model_configs"' in runner.invoke(app, ["models", "list", "--json"]).output:
        assert "QWEN3_32B_FP8*" in result.output
        assert "bundled config.json" in result.output


def test_list_registry_only():
    rows = json.loads(runner.invoke(app, ["models", "list", "--json", "--registry-only"]).output)
    assert {row["source"] for row in rows} == {"registry"}


def test_show_by_hf_id_json():
    result = runner.invoke(app, ["models", "show", "Qwen/Qwen3-32B", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["name"], data["num_layers"], data["num_kv_heads"]) == ("QWEN3_32B", 64, 8)


def test_show_text():
    result = runner.invoke(app, ["models", "show", "KIMI_K2"])
    assert result.exit_code == 0, result.output
    assert "kv_lora_rank=512" in result.output


def test_unknown_model_is_one_line_and_nonzero_exit(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["servopt", "models", "show", "QWEN3_33B"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "did you mean QWEN3_32B" in err
