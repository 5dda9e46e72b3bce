"""load_experiments / default_experiments: the shipped examples, patch == replace, flags == YAML."""

from __future__ import annotations

import sys

import pytest
import yaml

from servopt.config import ConfigError, default_experiments, load_experiments, load_experiments_text

from .conftest import EXPERIMENTS

PATCH = """
dense_patch:
  mode: patch
  serving_mode: disagg
  model_name: QWEN3_32B
  total_gpus: 16
  system_name: h200_sxm
  profiles: [fp8]
  config:
    nextn: 1
    decode_worker_config:
      num_gpu_per_worker: [2, 4]
      tp_list: [4, 2]
    replica_config:
      max_gpu_per_replica: 0
"""

# The same experiment written out in full: every key of the mode's sections set.
REPLACE = """
dense_replace:
  mode: replace
  serving_mode: disagg
  model_name: QWEN3_32B
  total_gpus: 16
  system_name: h200_sxm
  profiles: [fp8]
  config:
    nextn: 1
    nextn_accept_rates: [0.85, 0, 0, 0, 0]
    prefill_worker_config:
      gemm_quant_mode: fp8
      moe_quant_mode: fp8
      kvcache_quant_mode: fp8
      fmha_quant_mode: fp8
      comm_quant_mode: half
      num_gpu_per_worker: [1, 2, 4, 8]
      tp_list: [1, 2, 4, 8]
      pp_list: [1]
      dp_list: [1]
      moe_tp_list: [1]
      moe_ep_list: [1]
    decode_worker_config:
      gemm_quant_mode: fp8
      moe_quant_mode: fp8
      kvcache_quant_mode: fp8
      fmha_quant_mode: fp8
      comm_quant_mode: half
      num_gpu_per_worker: [2, 4]
      tp_list: [2, 4]
      pp_list: [1]
      dp_list: [1]
      moe_tp_list: [1]
      moe_ep_list: [1]
    replica_config:
      num_gpu_per_replica: [1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128]
      max_gpu_per_replica: 16
      max_prefill_worker: 32
      max_decode_worker: 32
    advanced_tuning_config:
      prefill_latency_correction_scale: 1.1
      decode_latency_correction_scale: 1.08
      prefill_max_batch_size: 1
      decode_max_batch_size: 512
"""


def _same(a, b) -> bool:
    return a.model_copy(update={"name": "x"}) == b.model_copy(update={"name": "x"})


def test_seed_example_runs_as_is_on_the_real_catalog():
    agg, disagg = load_experiments(EXPERIMENTS / "example.yaml")
    assert (agg.name, agg.serving_mode, agg.model_name, agg.total_gpus) == (
        "exp_agg_full",
        "agg",
        "DEEPSEEK_V3",
        8,
    )
    worker = agg.worker("agg")
    assert (worker.gemm_quant_mode, worker.moe_quant_mode) == ("fp8_block", "fp8_block")
    assert (worker.kvcache_quant_mode, worker.fmha_quant_mode, worker.comm_quant_mode) == ("float16",) * 2 + (
        "half",
    )
    assert (
        worker.num_gpu_per_worker == (4, 8) and worker.dp_list == (1, 2, 4, 8) and worker.moe_tp_list == (1,)
    )
    assert agg.config.nextn == 1 and agg.config.nextn_accept_rates == (0.85, 0, 0, 0, 0)
    assert agg.replica is None and agg.tuning is None
    assert disagg.system("prefill") == disagg.system("decode") == "h200_sxm"
    assert disagg.worker("prefill").dp_list == (1,) and disagg.worker("decode").dp_list == (1, 2, 4, 8)
    # max_gpu_per_replica 128 is capped by the 32-GPU budget; sizes above it drop out.
    assert disagg.replica.max_gpu_per_replica == 32
    assert disagg.replica_gpu_sizes == (8, 16, 24, 32)
    assert disagg.tuning.prefill_latency_correction_scale == 1.1
    assert disagg.tuning.decode_max_batch_size == 512


@pytest.mark.parametrize("name", sorted(p.name for p in EXPERIMENTS.glob("*.yaml")))
def test_every_shipped_experiment_file_loads(name):
    experiments = load_experiments(EXPERIMENTS / name)
    assert experiments
    # Several experiments of one file are compared in one report: their names are distinct.
    assert len({e.name for e in experiments}) == len(experiments)


def test_patch_and_equivalent_replace_resolve_identically(fake_catalog):
    (patched,) = load_experiments_text(PATCH, catalog=fake_catalog)
    (replaced,) = load_experiments_text(REPLACE, catalog=fake_catalog)
    assert _same(patched, replaced)
    assert patched.worker("decode").tp_list == (2, 4)  # lists are canonical: sorted, unique


def test_patch_and_replace_agree_on_the_real_catalog():
    (patched,) = load_experiments_text(PATCH)
    (replaced,) = load_experiments_text(REPLACE)
    assert _same(patched, replaced)


@pytest.mark.parametrize("name", sorted(p.name for p in EXPERIMENTS.glob("*.yaml")))
def test_to_yaml_reloads_to_an_equal_experiment(name):
    for experiment in load_experiments(EXPERIMENTS / name):
        text = experiment.to_yaml()
        assert yaml.safe_load(text)[experiment.name]["mode"] == "replace"
        (again,) = load_experiments_text(text)
        assert again == experiment


def test_default_experiments_equal_the_yaml_that_says_the_same(fake_catalog):
    flags = default_experiments("DEEPSEEK_V3", 64, "h200_sxm", decode_system="b200_sxm", catalog=fake_catalog)
    text = """
agg: {mode: patch, serving_mode: agg, model_name: DEEPSEEK_V3, total_gpus: 64, system_name: h200_sxm}
disagg:
  mode: patch
  serving_mode: disagg
  model_name: DEEPSEEK_V3
  total_gpus: 64
  system_name: h200_sxm
  decode_system_name: b200_sxm
"""
    assert flags == load_experiments_text(text, catalog=fake_catalog)
    agg, disagg = flags
    assert (agg.isl, agg.osl, agg.ttft, agg.tpot, agg.backend_name, agg.backend_version) == (
        4000,
        1000,
        1000.0,
        40.0,
        "trtllm",
        None,
    )
    assert disagg.system("decode") == "b200_sxm"


def test_default_experiments_on_one_gpu_is_agg_only(fake_catalog):
    (only,) = default_experiments("QWEN3_32B", 1, "h200_sxm", catalog=fake_catalog)
    assert only.serving_mode == "agg" and only.worker("agg").num_gpu_per_worker == (1,)


def test_default_experiment_problems_name_the_flags(fake_catalog):
    with pytest.raises(ConfigError) as info:
        default_experiments("QWEN_33B", 8, "h200_sxn", isl=0, catalog=fake_catalog)
    text = str(info.value)
    for flag in ("--model: 'QWEN_33B': unknown model", "--system: 'h200_sxn'", "--isl: 0: must be >= 1"):
        assert flag in text
    assert "did you mean QWEN3_32B" in text and "did you mean h200_sxm" in text


def test_exps_selects_and_orders(fake_catalog):
    text = """
exps: [b, a]
a: {mode: patch, serving_mode: agg, model_name: QWEN3_32B, total_gpus: 8, system_name: h200_sxm}
b: {mode: patch, serving_mode: agg, model_name: QWEN3_32B, total_gpus: 4, system_name: h200_sxm}
c: {mode: patch, serving_mode: agg, model_name: QWEN3_32B, total_gpus: 2, system_name: h200_sxm}
"""
    assert [e.name for e in load_experiments_text(text, catalog=fake_catalog)] == ["b", "a"]
    with pytest.raises(ConfigError, match=r"<string>:2:11: exps\[1\]: 'd': no experiment of this name"):
        load_experiments_text(text.replace("[b, a]", "[b, d]"), catalog=fake_catalog)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file holds no experiments"),
        ("- a\n- b\n", "<string>:1:1: <file>: ['a', 'b']: the file must map experiment names to experiments"),
        ("exp: 3\n", "<string>:1:6: exp: 3: an experiment must be a mapping"),
        ("1: {}\n", "<string>:1:1: 1: 1: an experiment name must be a non-empty string"),
        ("exp: {a: 1, a: 2}\n", "<string>:1:13: exp.a: key appears more than once"),
    ],
)
def test_file_shape_problems(text, expected, fake_catalog):
    with pytest.raises(ConfigError) as info:
        load_experiments_text(text, catalog=fake_catalog)
    assert expected in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_experiments(tmp_path / "nope.yaml")
    assert info.value.exit_code == 2 and "cannot read the file" in str(info.value)


def test_cli_entry_point_exits_2_with_the_problems(write_yaml, monkeypatch, capsys):
    """Through the console-script entry point ``servopt.cli.app.main``."""
    import typer

    from servopt.cli import app as cli

    path = write_yaml(
        "exp:\n  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: -8\n  system_name: h200_sxm\n"
    )
    # A stub ``cli exp`` that only loads (the real one also searches): the test is about main()'s
    # handling of a ConfigError, whatever the lead's command does afterwards.
    stub = typer.Typer()

    @stub.command("exp")
    def exp(yaml_path: str = typer.Option(..., "--yaml_path")) -> None:
        load_experiments(yaml_path)

    others = [c for c in cli.cli_app.registered_commands if c.name != "exp"]
    monkeypatch.setattr(cli.cli_app, "registered_commands", [*others, *stub.registered_commands])
    monkeypatch.setattr(sys, "argv", ["servopt", "cli", "exp", "--yaml_path", str(path)])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{path}:5:15: exp.total_gpus: -8: must be >= 1" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "extra",
    [
        "  profiles: [wide_ep, mtp2]\n",
        "  decode_system_name: b200_sxm\n  backend_version: current\n",
        "  config:\n    replica_config: {num_gpu_per_replica: null, max_gpu_per_replica: 0}\n",
    ],
)
def test_to_yaml_round_trips_nulls_profiles_and_heterogeneous_systems(extra, fake_catalog):
    text = "e:\n  mode: patch\n  serving_mode: disagg\n  model_name: DEEPSEEK_V3\n  total_gpus: 96\n  system_name: h200_sxm\n"
    (experiment,) = load_experiments_text(text + extra, catalog=fake_catalog)
    (again,) = load_experiments_text(experiment.to_yaml(), catalog=fake_catalog)
    assert again == experiment
