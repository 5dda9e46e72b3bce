"""`servopt cli default` and `servopt cli exp` end to end, in a subprocess (real exit codes, streams)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def servopt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "servopt", *args], capture_output=True, text=True, timeout=600
    )


def test_default_json_is_clean_and_complete():
    out = servopt(
        "cli", "default", "--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm", "--json"
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)  # nothing but the document on stdout
    for key in (
        "mode",
        "tokens_per_s_per_gpu",
        "tokens_per_s_per_user",
        "ttft_ms",
        "tpot_ms",
        "total_gpus_used",
    ):
        assert key in doc["best"]
    assert doc["agg"] and doc["disagg"] and doc["pareto"]


def test_dashed_and_underscored_flags_are_the_same():
    a = servopt("cli", "default", "--model", "QWEN3_32B", "--total-gpus", "8", "--system", "h200_sxm", "--json",
                "--top-n", "2")  # fmt: skip
    b = servopt("cli", "default", "--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm", "--json",
                "--top_n", "2")  # fmt: skip
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout


def test_default_table_output_lists_best_top_and_frontier():
    out = servopt("cli", "default", "--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm")
    assert out.returncode == 0, out.stderr
    for text in (
        "Verdict",
        "Deploy ",
        "agg top configurations",
        "disagg top configurations",
        "Pareto frontier",
    ):
        assert text in out.stdout


def test_usage_errors_are_one_servopt_line():
    """Typer's own validation (types, ranges, unknown and missing flags) speaks servopt's style."""
    base = ["cli", "default", "--model", "QWEN3_32B", "--system", "h200_sxm"]
    for args, line in (
        (["--total_gpus", "abc"], "error: --total_gpus: 'abc' is not a valid integer"),
        (["--total_gpus", "70000"], "error: --total_gpus: 70000 is not in the range 1<=x<=65536"),
        (["--total_gpus", "8", "--top_m", "2"], "error: --top_m: no such option (did you mean --top_n"),
        (["--total_gpus", "8", "--isl"], "error: --isl: requires a value"),
    ):
        out = servopt(*base, *args)
        assert out.returncode == 2
        assert out.stderr.startswith(line), out.stderr
        assert "Usage:" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = servopt("cli", "default", "--total_gpus", "8", "--system", "h200_sxm")
    assert out.returncode == 2 and out.stderr.startswith("error: --model: required")


def test_help_describes_every_option_and_lists_choices():
    out = servopt("cli", "default", "--help")
    assert out.returncode == 0
    for needle in ("h200_sxm", "trtllm, sglang, vllm", "1 to 65536", "Hugging Face"):
        assert needle in " ".join(out.stdout.split()), needle
    estimate = servopt("cli", "estimate", "--help").stdout
    model_help = "Hugging Face id (e.g. Qwen/Qwen3-32B"
    assert model_help in " ".join(estimate.split()) and model_help in " ".join(out.stdout.split())
    assert "fp8_block" in " ".join(estimate.split())


def test_infeasible_sla_exits_1_with_reason():
    out = servopt("cli", "default", "--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm",
                  "--tpot", "1")  # fmt: skip
    assert out.returncode == 1
    assert "closest achievable TPOT" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "QWEN3_33B", "--total_gpus", "8", "--system", "h200_sxm"], "QWEN3_32B"),
        (["--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h300_sxm"], "h200_sxm"),
        (["--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm", "--backend", "trt"], "trtllm"),
    ],
)
def test_unknown_names_exit_2_with_closest(args, needle):
    out = servopt("cli", "default", *args)
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and "Traceback" not in out.stderr


def test_exp_runs_the_seed_example():
    out = servopt("cli", "exp", "--yaml_path", str(EXPERIMENTS / "example.yaml"), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {e["name"] for e in doc["experiments"]} == {"exp_agg_full", "exp_disagg_full"}
    disagg = next(e for e in doc["experiments"] if e["name"] == "exp_disagg_full")
    assert disagg["best"]["total_gpus_used"] <= 32


def test_patch_and_equivalent_replace_give_identical_results(tmp_path):
    from servopt.config import load_experiments

    patch = tmp_path / "patch.yaml"
    patch.write_text(
        "e:\n  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: 8\n"
        "  system_name: h200_sxm\n  config:\n    worker_config:\n      tp_list: [1, 2]\n      num_gpu_per_worker: [1, 2]\n"
    )
    (exp,) = load_experiments(patch)
    full = exp.to_dict()
    full["mode"] = "replace"
    for key in ("name", "profiles"):
        full.pop(key, None)
    replace = tmp_path / "replace.yaml"
    import yaml

    replace.write_text(yaml.safe_dump({"e": full}))
    a = servopt("cli", "exp", "--yaml_path", str(patch), "--json")
    b = servopt("cli", "exp", "--yaml_path", str(replace), "--json")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    assert json.loads(a.stdout) == json.loads(b.stdout)


def test_bad_yaml_exits_2_naming_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "e:\n  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: -8\n  system_name: h200_sxm\n"
    )
    out = servopt("cli", "exp", "--yaml_path", str(bad))
    assert out.returncode == 2
    assert "bad.yaml:5" in out.stderr and "total_gpus" in out.stderr and "Traceback" not in out.stderr


def test_cpsat_composition_engine_gives_the_same_answer():
    base = ["cli", "default", "--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm", "--json"]
    menu = servopt(*base, "--composition", "menu")
    cpsat = servopt(*base, "--composition", "cpsat")
    assert menu.returncode == cpsat.returncode == 0, cpsat.stderr
    a, b = json.loads(menu.stdout)["best"], json.loads(cpsat.stdout)["best"]
    assert b["tokens_per_s_per_gpu"] == pytest.approx(a["tokens_per_s_per_gpu"], rel=1e-12)
    assert b["mode"] == a["mode"]


def test_saved_config_yaml_reruns_with_cli_exp(tmp_path):
    first = servopt("cli", "default", "--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm",
                    "--json", "--save_dir", str(tmp_path))  # fmt: skip
    assert first.returncode == 0, first.stderr
    (config,) = tmp_path.glob("*/config.yaml")
    again = servopt("cli", "exp", "--yaml_path", str(config), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == json.loads(first.stdout)


def test_borrowed_tables_are_in_the_json_and_one_warning_line():
    """SGLang 0.5.14 on h200_sxm fills tables from older versions: --json names them per role and
    stderr says so once, on one line, for the tables the model can use."""
    out = servopt("cli", "default", "--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm",
                  "--backend", "sglang", "--json", "--top_n", "1")  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    for exp in doc["experiments"]:
        roles = {"agg"} if exp["serving_mode"] == "agg" else {"prefill", "decode"}
        assert set(exp["borrowed_tables"]) == roles
        for rows in exp["borrowed_tables"].values():
            assert {(b["table"], b["version"]) for b in rows} >= {("moe_perf", "0.5.10")}
            assert all(b["rows"] > 0 and b["channel"] != "primary" for b in rows)
    # The JSON keeps the database's whole provenance; the warning names only what the model can use:
    # a dense model is not told about borrowed MoE tables, a MoE model is, once.
    assert not [line for line in out.stderr.splitlines() if "borrows measured data" in line], out.stderr
    moe = servopt("cli", "default", "--model", "QWEN3_30B_A3B", "--total_gpus", "8", "--system", "h200_sxm",
                  "--backend", "sglang", "--json", "--top_n", "1")  # fmt: skip
    assert moe.returncode == 0, moe.stderr
    lines = [line for line in moe.stderr.splitlines() if "borrows measured data" in line]
    assert len(lines) == 1 and "moe_perf <- 0.5.10" in lines[0], moe.stderr
    assert "mla" not in lines[0]  # Qwen3 MoE has no MLA attention
