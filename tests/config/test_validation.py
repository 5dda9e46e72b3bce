"""Pydantic errors become located, plain-words problems."""

from __future__ import annotations

from servopt.config.schema import ConfigInput, ExperimentInput, WorkerConfigPatch
from servopt.config.source import parse_yaml
from servopt.config.validation import model_at, validate


def test_model_at_walks_nested_sections():
    assert model_at(ExperimentInput, ("config",)) is ConfigInput
    assert model_at(ExperimentInput, ("config", "worker_config")) is WorkerConfigPatch
    assert model_at(ExperimentInput, ("isl",)) is None
    assert model_at(ExperimentInput, ("nope", "deeper")) is None


def test_errors_map_to_positions_and_words():
    text = "worker_config:\n  tp_list: [1, 0, x]\n  gemm_quant_mode: fp9\n  tpl: 1\nnextn: 9\n"
    doc, _ = parse_yaml(text, "c.yaml")
    problems: list = []
    assert validate(ConfigInput, doc.data, doc, (), problems) is None
    lines = sorted(str(p) for p in problems)
    assert lines == [
        "c.yaml:2:16: worker_config.tp_list[1]: 0: must be >= 1",
        "c.yaml:2:19: worker_config.tp_list[2]: 'x': expected an integer, got a string",
        "c.yaml:3:20: worker_config.gemm_quant_mode: 'fp9': not an allowed value (did you mean fp8, nvfp4?) "
        "(allowed: float16, fp8, fp8_block, fp8_static, int8_wo, int4_wo, nvfp4, w4afp8)",
        "c.yaml:4:3: worker_config.tpl: 'tpl': unknown key (did you mean tp_list?) (allowed: "
        "gemm_quant_mode, moe_quant_mode, kvcache_quant_mode, fmha_quant_mode, comm_quant_mode, "
        "num_gpu_per_worker, tp_list, pp_list, dp_list, moe_tp_list, moe_ep_list, cp_list)",
        "c.yaml:5:8: nextn: 9: must be <= 5",
    ]


def test_missing_required_keys_point_at_their_parent():
    doc, _ = parse_yaml("exp:\n  mode: patch\n", "e.yaml")
    problems: list = []
    validate(ExperimentInput, doc.get(("exp",)), doc, ("exp",), problems)
    assert "e.yaml:1:1: exp.model_name: required key is missing" in [str(p) for p in problems]
