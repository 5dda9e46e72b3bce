"""`servopt perfdb list|query` end to end (through the console entry point for error exits)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from servopt.cli.app import app

runner = CliRunner()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVOPT_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_list_all_systems_json(cache):
    res = runner.invoke(app, ["perfdb", "list", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    by_name = {s["system"]: s for s in doc["systems"]}
    assert by_name["h200_sxm"]["backends"]["trtllm"]["current"] == "1.3.0rc20"
    assert by_name["a100_pcie"]["data"] == "roofline-only"


def test_list_one_system_shows_tables(cache):
    res = runner.invoke(app, ["perfdb", "list", "--system", "h200_sxm", "--backend", "sglang", "--json"])
    assert res.exit_code == 0, res.output
    db = json.loads(res.output)["databases"][0]
    assert db["tables"]["context_attention_perf"]["rows"] > 30_000
    assert db["tables"]["mla_context_module_perf"]["rows"] == 0


@pytest.mark.parametrize(
    ("args", "provenance"),
    [
        (
            [
                "moe",
                "quant_mode=fp8_block",
                "distribution=power_law_1.01",
                "topk=8",
                "num_experts=256",
                "hidden=7168",
                "inter=2048",
                "moe_tp=1",
                "moe_ep=8",
                "num_tokens=100",
            ],
            "interpolated",
        ),
        (["nccl", "op=all_reduce", "dtype=half", "num_gpus=8", "message_elems=1048576"], "exact"),
        (
            [
                "generation_attention",
                "kv_quant=fp8",
                "batch=2048",
                "kv_len=131072",
                "num_heads=32",
                "num_kv_heads=8",
                "head_dim=128",
            ],
            "extrapolated",
        ),
    ],
)
def test_query_reports_provenance(cache, args, provenance):
    res = runner.invoke(app, ["perfdb", "query", args[0], "--system", "h200_sxm", *args[1:], "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["provenance"] == provenance and doc["latency_ms"] > 0


def test_query_sol(cache):
    res = runner.invoke(
        app,
        [
            "perfdb",
            "query",
            "custom_allreduce",
            "--system",
            "l4",
            "--sol",
            "num_gpus=2",
            "message_elems=1000",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "(sol)" in res.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["query", "gemm", "--system", "h100"], "unknown system"),
        (
            [
                "query",
                "gemm",
                "--system",
                "h200_sxm",
                "--backend",
                "vlm",
                "quant_mode=fp8",
                "m=1",
                "n=1",
                "k=1",
            ],
            "unknown backend",
        ),
        (["query", "attn", "--system", "h200_sxm"], "unknown op"),
        (["query", "gemm", "--system", "h200_sxm", "quant_mode=fp8", "m=1"], "required by gemm"),
        (
            [
                "query",
                "gemm",
                "--system",
                "h200_sxm",
                "--version",
                "0.1",
                "quant_mode=fp8",
                "m=1",
                "n=1",
                "k=1",
            ],
            "queryable",
        ),
        (
            [
                "query",
                "context_attention",
                "--system",
                "h200_sxm",
                "fmha_quant=fp4",
                "kv_quant=fp8",
                "batch=1",
                "seq=1",
                "prefix=0",
                "num_heads=8",
                "num_kv_heads=8",
                "head_dim=128",
            ],
            "unknown quantization",
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(cache, args, needle):
    proc = subprocess.run(
        [sys.executable, "-c", "from servopt.cli.app import main; main()", "perfdb", *args],
        capture_output=True,
        text=True,
        env={"SERVOPT_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_warm_builds_the_databases_then_finds_them_cached(cache):
    first = runner.invoke(app, ["perfdb", "warm", "--system", "h200_sxm", "--system", "h100_sxm"])
    assert first.exit_code == 0, first.output
    assert "perf database h200_sxm/trtllm/1.3.0rc20: built" in first.output
    assert "perf database h100_sxm/trtllm/1.3.0rc20: built" in first.output
    assert "SERVOPT_AOT=0" in first.output  # the test session keeps to the JIT (tests/conftest.py)
    again = runner.invoke(app, ["perfdb", "warm", "--system", "h200_sxm"])
    assert again.exit_code == 0 and "h200_sxm/trtllm/1.3.0rc20: cached" in again.output


def test_warm_names_an_unknown_system(cache):
    res = subprocess.run(
        [sys.executable, "-m", "servopt", "perfdb", "warm", "--system", "h999"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "h999" in res.stderr and "h200_sxm" in res.stderr
