"""The real catalog: registry, system specs, perf-data version slots and layouts."""

from __future__ import annotations

import pytest

from servopt.config.catalog import DefaultCatalog
from servopt.errors import UnknownNameError


def test_default_catalog_answers_from_the_real_owners():
    catalog = DefaultCatalog()
    assert catalog.resolve_model("DEEPSEEK_V3").is_moe
    assert catalog.resolve_model("Qwen/Qwen3-32B").name == "QWEN3_32B"
    with pytest.raises(UnknownNameError):
        catalog.resolve_model("NOT_A_MODEL_X")
    assert "h200_sxm" in catalog.system_names()
    assert {"bf16", "fp8"} <= catalog.compute_dtypes("h200_sxm") and "fp4" not in catalog.compute_dtypes(
        "h200_sxm"
    )
    versions = catalog.backend_versions("h200_sxm")
    assert {"trtllm", "sglang", "vllm"} <= set(versions)
    assert "1.3.0rc20" in versions["trtllm"] and "current" in versions["trtllm"]
    layouts = catalog.enumerate_layouts(
        role="agg",
        is_moe=False,
        backend="trtllm",
        num_experts=0,
        num_gpu_per_worker=(4,),
        tp_list=(1, 2, 4),
        pp_list=(1,),
        dp_list=(1,),
        moe_tp_list=(1,),
        moe_ep_list=(1,),
    )
    assert [layout.gpus for layout in layouts] == [4]


def test_roofline_only_systems_have_no_versions():
    catalog = DefaultCatalog()
    from servopt.hardware import load_system

    roofline = [s for s in catalog.system_names() if load_system(s).measured_data is None]
    if not roofline:
        pytest.skip("every shipped system has measured data")
    assert catalog.backend_versions(roofline[0]) is None
