"""Resolution rules: precedence, profiles, wide EP, names, quant support, nulls and clipping."""

from __future__ import annotations

import pytest

from servopt.config import ConfigError, load_experiments, load_experiments_text
from servopt.config.defaults import DEFAULT_NUM_GPU_PER_REPLICA

HEAD = "  mode: {mode}\n  serving_mode: {serving}\n  model_name: {model}\n  total_gpus: {gpus}\n  system_name: {system}\n"


def exp(body: str = "", *, mode="patch", serving="agg", model="QWEN3_32B", gpus=8, system="h200_sxm") -> str:
    head = HEAD.format(mode=mode, serving=serving, model=model, gpus=gpus, system=system)
    return "e:\n" + head + body


def one(text: str, catalog):
    (experiment,) = load_experiments_text(text, catalog=catalog)
    return experiment


def problems(text: str, catalog) -> str:
    with pytest.raises(ConfigError) as info:
        load_experiments_text(text, catalog=catalog)
    assert info.value.exit_code == 2
    return str(info.value)


def test_defaults_fill_everything(fake_catalog):
    e = one(exp(serving="disagg", model="DEEPSEEK_V3", gpus=64), fake_catalog)
    p = e.worker("prefill")
    assert (p.gemm_quant_mode, p.moe_quant_mode, p.kvcache_quant_mode, p.fmha_quant_mode) == (
        "fp8_block",
        "fp8_block",
        "fp8",
        "fp8",
    )
    assert (
        p.num_gpu_per_worker == p.tp_list == p.dp_list == p.moe_tp_list == p.moe_ep_list == (1, 2, 4, 8, 16)
    )
    # The catalog's DEEPSEEK_V3 is a plain MoE stand-in (no MLA): servopt has no large-EP graph
    # for it, so the fused lists and replica sizes stay (tests/config/test_defaults.py covers the
    # data-driven ladder on the real model).
    assert e.replica.num_gpu_per_replica == DEFAULT_NUM_GPU_PER_REPLICA
    assert e.replica.max_gpu_per_replica == 64  # 128 capped by the budget
    assert (e.config.nextn, e.enable_wide_ep, e.profiles) == (0, False, ())


def test_profiles_apply_in_order_and_the_patch_wins(fake_catalog):
    body = "  profiles: [fp8, bf16]\n  config:\n    worker_config: {kvcache_quant_mode: fp8}\n"
    w = one(exp(body), fake_catalog).worker("agg")
    assert (w.gemm_quant_mode, w.fmha_quant_mode, w.kvcache_quant_mode) == ("float16", "float16", "fp8")


def test_profile_alias_and_recorded_names(fake_catalog):
    e = one(exp("  profiles: [bfloat16, kv_fp8]\n"), fake_catalog)
    assert e.profiles == ("bfloat16", "kv_fp8")
    assert (e.worker("agg").gemm_quant_mode, e.worker("agg").kvcache_quant_mode) == ("float16", "fp8")


def test_user_profile_file_relative_to_the_experiment(write_yaml, fake_catalog):
    write_yaml("description: mine\nconfig:\n  worker_config: {tp_list: [2]}\n", "mine.yaml")
    path = write_yaml(exp("  profiles: [./mine.yaml]\n"))
    (e,) = load_experiments(path, catalog=fake_catalog)
    assert e.worker("agg").tp_list == (2,)


def test_problems_inside_a_profile_file_point_into_it(write_yaml, fake_catalog):
    profile = write_yaml("description: mine\nconfig:\n  worker_config: {tp_lst: [2]}\n", "bad_profile.yaml")
    path = write_yaml(exp("  profiles: [bad_profile.yaml]\n"))
    with pytest.raises(ConfigError) as info:
        load_experiments(path, catalog=fake_catalog)
    assert f"{profile}:3:19: config.worker_config.tp_lst: 'tp_lst': unknown key (did you mean tp_list" in str(
        info.value
    )


def test_a_bad_value_from_a_profile_is_blamed_on_the_profile(write_yaml, fake_catalog):
    profile = write_yaml("description: x\nconfig:\n  worker_config:\n    num_gpu_per_worker: [3]\n", "p.yaml")
    path = write_yaml(exp("  profiles: [p.yaml]\n"))
    with pytest.raises(ConfigError) as info:
        load_experiments(path, catalog=fake_catalog)
    text = str(info.value)
    assert f"{profile}:4:" in text and "e.config.worker_config" in text and "(set by profile p.yaml)" in text


def test_profile_sections_of_the_other_mode_are_ignored(fake_catalog):
    # attention_dp sets worker_config (agg) and decode_worker_config (disagg).
    e = one(exp("  profiles: [attention_dp]\n", serving="disagg", model="DEEPSEEK_V3", gpus=32), fake_catalog)
    assert e.worker("decode").tp_list == (1,) and e.worker("prefill").tp_list == (1, 2, 4, 8, 16)


def test_replace_mode_requires_the_whole_block(fake_catalog):
    text = problems(
        exp("  config:\n    nextn: 0\n    worker_config: {tp_list: [1]}\n", mode="replace"), fake_catalog
    )
    assert "e.config.nextn_accept_rates: mode replace takes the config section as given" in text
    assert (
        "e.config.worker_config: mode replace takes the section as given, so it must set every key; missing:"
        in text
    )


def test_wide_ep_swaps_in_the_large_ep_ladders(fake_catalog):
    e = one(exp("  enable_wide_ep: true\n", serving="disagg", model="DEEPSEEK_V3", gpus=128), fake_catalog)
    assert e.enable_wide_ep
    assert e.worker("decode").moe_ep_list == (4, 8, 16, 32, 64) and e.worker("decode").moe_tp_list == (1,)
    assert e.replica.num_gpu_per_replica is None and e.replica.max_gpu_per_replica == 128
    assert e.replica_gpu_sizes == tuple(range(1, 129))
    agg = one(exp("  profiles: [wide_ep]\n", model="DEEPSEEK_V3", gpus=64), fake_catalog)
    assert agg.enable_wide_ep and agg.worker("agg").dp_list == (2, 4, 8, 16, 32, 64)
    # The experiment's own key beats the profile's.
    off = one(
        exp("  profiles: [wide_ep]\n  enable_wide_ep: false\n", model="DEEPSEEK_V3", gpus=64), fake_catalog
    )
    assert not off.enable_wide_ep and off.worker("agg").dp_list == (1, 2, 4, 8, 16)


@pytest.mark.parametrize(
    ("body", "kwargs", "expected"),
    [
        ("  enable_wide_ep: true\n", {}, "e.enable_wide_ep: True: wide expert parallelism needs a MoE model"),
        (
            "  backend_name: vllm\n  enable_wide_ep: true\n",
            {"model": "DEEPSEEK_V3"},
            "backend vllm has no wide-EP search lists",
        ),
        (
            "  backend_name: sglang\n",
            {"system": "a100_sxm"},
            "system a100_sxm has no measured data for backend sglang",
        ),
        ("  backend_version: 9.9\n", {}, "e.backend_version: 9.9: expected a string, got a number"),
        ("  backend_version: '9.9'\n", {}, "not a trtllm version on h200_sxm (allowed: 1.3.0rc20, 1.3.0rc23"),
        (
            "  backend_version: '1.0'\n",
            {"system": "roofline_gpu"},
            "roofline only): leave backend_version unset",
        ),
        (
            "  config:\n    worker_config: {gemm_quant_mode: nvfp4}\n",
            {},
            "gemm_quant_mode: 'nvfp4': computes in fp4, which system h200_sxm has no tensor cores for",
        ),
        (
            "  profiles: [fp8]\n",
            {"system": "a100_sxm"},
            "computes in fp8, which system a100_sxm has no tensor cores",
        ),
        (
            "  backend_name: sglang\n  profiles: [fp8_static]\n",
            {},
            "static FP8 GEMMs are TRT-LLM only (backend is sglang)",
        ),
        ("  decode_system_name: h200_sxm\n", {}, "e.decode_system_name: only for serving_mode disagg"),
        ("  config:\n    replica_config: {}\n", {}, "e.config.replica_config: only for serving_mode disagg"),
        ("  config:\n    worker_config:\n      tp_list:\n", {}, "tp_list: None: expected a list, got null"),
        ("  isl:\n", {}, "e.isl: None: expected an integer, got null"),
        ("  osl: 1\n", {}, "e.osl: 1: must be >= 2"),
        ("  ttft: .nan\n", {}, "e.ttft: nan: must be a finite number"),
        ("  model_path: x\n", {}, "unknown key (did you mean model_name?)"),
        (
            "  config:\n    prefill_worker_config:\n      cp_list: [1, 2]\n",
            {"serving": "disagg"},
            "e.config.prefill_worker_config.cp_list: [1, 2]: context parallelism (cp > 1) is modelled on "
            "sglang only (backend is trtllm) (allowed: [1])",
        ),
        (
            "  backend_name: sglang\n  config:\n    decode_worker_config:\n      cp_list: [2]\n",
            {"serving": "disagg"},
            "e.config.decode_worker_config.cp_list: [2]: decode workers are not context-parallel "
            "(SGLang's cp splits the prefill) (allowed: [1])",
        ),
        (
            "  backend_name: sglang\n  config:\n    worker_config:\n      cp_list: [0]\n",
            {},
            "e.config.worker_config.cp_list[0]: 0: must be >= 1",
        ),
        ("", {"gpus": 65_537}, "e.total_gpus: 65537: must be <= 65536"),
    ],
)
def test_problem_messages(body, kwargs, expected, fake_catalog):
    assert expected in problems(exp(body, **kwargs), fake_catalog)


def test_budget_and_replica_problems(fake_catalog):
    agg = problems(exp("  config:\n    worker_config: {num_gpu_per_worker: [4, 8]}\n", gpus=2), fake_catalog)
    assert "e.total_gpus: 2: is below the smallest worker (4 GPUs)" in agg
    body = "  config:\n    prefill_worker_config: {num_gpu_per_worker: [4]}\n"
    disagg = problems(exp(body, serving="disagg", gpus=4), fake_catalog)
    assert "is below the smallest replica: 1 prefill worker (4 GPUs) + 1 decode worker (1 GPUs)" in disagg
    body = "  config:\n    replica_config: {max_gpu_per_replica: 1}\n"
    cap = problems(exp(body, serving="disagg", gpus=8), fake_catalog)
    assert "e.config.replica_config.max_gpu_per_replica: 1: leaves no room for 1 prefill" in cap


def test_nulls_and_canonical_lists(fake_catalog):
    body = "  config:\n    worker_config:\n    nextn_accept_rates: [0.5]\n"
    e = one(exp(body), fake_catalog)  # an empty section is an empty patch
    assert e.worker("agg").tp_list == (1, 2, 4, 8) and e.config.nextn_accept_rates == (0.5,)
    body = "  config:\n    replica_config: {num_gpu_per_replica: null, max_gpu_per_replica: 0}\n"
    d = one(exp(body, serving="disagg", gpus=12), fake_catalog)
    assert d.replica.num_gpu_per_replica is None and d.replica.max_gpu_per_replica == 12
    assert d.replica_gpu_sizes == tuple(range(1, 13))


def test_worker_sizes_are_clipped_to_the_budget(fake_catalog):
    e = one(
        exp("  config:\n    worker_config: {num_gpu_per_worker: [16, 1, 2, 4, 8, 2]}\n", gpus=4), fake_catalog
    )
    assert e.worker("agg").num_gpu_per_worker == (1, 2, 4)


def test_quant_aliases_normalise(fake_catalog):
    body = "  config:\n    worker_config: {gemm_quant_mode: bfloat16, kvcache_quant_mode: bf16}\n"
    w = one(exp(body), fake_catalog).worker("agg")
    assert (w.gemm_quant_mode, w.kvcache_quant_mode) == ("float16", "float16")


def test_heterogeneous_systems_check_quant_per_role(fake_catalog):
    body = (
        "  decode_system_name: h200_sxm\n  config:\n"
        "    prefill_worker_config: {gemm_quant_mode: nvfp4}\n"
        "    decode_worker_config: {gemm_quant_mode: nvfp4}\n"
    )
    text = problems(exp(body, serving="disagg", gpus=16, system="b200_sxm"), fake_catalog)
    assert "decode_worker_config.gemm_quant_mode: 'nvfp4': computes in fp4, which system h200_sxm" in text
    assert "prefill_worker_config.gemm_quant_mode" not in text


def test_relative_model_path_resolves_from_the_experiment_file(write_yaml, fake_catalog, tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    key = str((tmp_path / "m" / "config.json").resolve())
    fake_catalog.models = {**fake_catalog.models, key: fake_catalog.models["QWEN3_32B"]}
    (e,) = load_experiments(write_yaml(exp(model="./m/config.json")), catalog=fake_catalog)
    assert e.model_name == key


def test_context_parallel_lists(fake_catalog):
    """SGLang agg/prefill workers sweep cp in {1, 2, 4, 8} by default (decode and other backends: 1);
    a user's cp_list is kept, and a replace-mode section written without cp_list still loads."""
    agg = one(exp("  backend_name: sglang\n"), fake_catalog)
    assert agg.worker("agg").cp_list == (1, 2, 4, 8)
    disagg = one(exp("  backend_name: sglang\n", serving="disagg"), fake_catalog)
    assert disagg.worker("prefill").cp_list == (1, 2, 4, 8) and disagg.worker("decode").cp_list == (1,)
    assert one(exp(), fake_catalog).worker("agg").cp_list == (1,)
    mine = one(exp("  backend_name: sglang\n  config:\n    worker_config: {cp_list: [4, 1]}\n"), fake_catalog)
    assert mine.worker("agg").cp_list == (1, 4)
    again = one(mine.to_yaml().replace("    cp_list: [1, 4]\n", ""), fake_catalog)
    assert again.worker("agg").cp_list == (1,)


def test_context_parallel_of_mla_models():
    """The real catalog's DeepSeek-V3 (MLA): SGLang agg/prefill sweep cp as the peer does (its
    DeepSeek class supports cp on SGLang); a cp list on TRT-LLM is refused with one line."""
    agg = load_experiments_text(exp("  backend_name: sglang\n", model="DEEPSEEK_V3"))[0]
    assert agg.worker("agg").cp_list == (1, 2, 4, 8)
    disagg = load_experiments_text(exp("  backend_name: sglang\n", serving="disagg", model="DEEPSEEK_V3"))[0]
    assert disagg.worker("prefill").cp_list == (1, 2, 4, 8) and disagg.worker("decode").cp_list == (1,)
    text = exp(
        "  backend_name: trtllm\n  config:\n    worker_config:\n      cp_list: [1, 2]\n", model="DEEPSEEK_V3"
    )
    with pytest.raises(ConfigError) as info:
        load_experiments_text(text)
    assert (
        "e.config.worker_config.cp_list: [1, 2]: context parallelism (cp > 1) is modelled on sglang only "
        "(backend is trtllm) (allowed: [1])" in str(info.value)
    )


def test_calibration_key_defaults_names_and_profile_files(fake_catalog, write_yaml, tmp_path):
    """``calibration``: absent = default (the shipped profile), none = the raw model, else a profile
    file relative to the YAML's folder, kept absolute so a saved config.yaml reruns anywhere."""
    assert one(exp(), fake_catalog).calibration == "default"
    assert one(exp("  calibration: none\n"), fake_catalog).calibration == "none"
    (tmp_path / "mine.yaml").write_text("schema: 1\n")  # content is checked when the run loads it
    (e,) = load_experiments(write_yaml(exp("  calibration: mine.yaml\n")), catalog=fake_catalog)
    assert e.calibration == str((tmp_path / "mine.yaml").resolve())
    assert "calibration: " + e.calibration in e.to_yaml()
    again = load_experiments_text(e.to_yaml(), catalog=fake_catalog)[0]
    assert again == e


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nowhere.yaml", "e.calibration: 'nowhere.yaml': not default, none or a calibration profile file"),
        ("", "e.calibration"),
        ("3", "e.calibration: '3': not default, none"),
    ],
)
def test_calibration_key_errors_name_line_and_column(fake_catalog, value, message):
    text = problems(exp(f"  calibration: '{value}'\n"), fake_catalog)
    assert message in text and "<string>:7:" in text
