"""Shipped profiles: valid, documented, usable on the real catalog, and the peer's where it has them."""

from __future__ import annotations

import re

import pytest

from servopt.config import load_experiments_text
from servopt.config.profiles import load_profile, shipped_dir, shipped_profile_names, shipped_profiles

from .conftest import REPO

# A model/system each profile makes sense on.
_USE = {
    "nvfp4": ("DEEPSEEK_V3", "b200_sxm"),
    "mxfp4": ("GPT_OSS_120B", "h200_sxm"),
    "wide_ep": ("DEEPSEEK_V3", "h200_sxm"),
    "attention_dp": ("DEEPSEEK_V3", "h200_sxm"),
    "mtp1": ("DEEPSEEK_V3", "h200_sxm"),
    "mtp2": ("DEEPSEEK_V3", "h200_sxm"),
}


@pytest.mark.parametrize("name", shipped_profile_names())
def test_shipped_profile_is_valid_and_documented(name):
    profile, problems, why = load_profile(name, None)
    assert why is None and problems == () and profile is not None
    doc = (REPO / "docs" / "profiles.md").read_text()
    assert re.search(rf"^### `{re.escape(name)}`", doc, re.M), f"docs/profiles.md has no section for {name}"


@pytest.mark.parametrize("name", shipped_profile_names())
@pytest.mark.parametrize("serving", ["agg", "disagg"])
def test_shipped_profile_resolves_on_the_real_catalog(name, serving):
    model, system = _USE.get(name, ("QWEN3_32B", "h200_sxm"))
    text = (
        f"e: {{mode: patch, serving_mode: {serving}, model_name: {model}, total_gpus: 128, "
        f"system_name: {system}, profiles: [{name}]}}\n"
    )
    (experiment,) = load_experiments_text(text)
    assert experiment.profiles == (name,)


def test_aliases_point_at_their_profile():
    index = shipped_profiles()
    assert index["bfloat16"] == index["float16"] == shipped_dir() / "bf16.yaml"


@pytest.mark.peer
@pytest.mark.parametrize(
    ("ours", "peers"),
    [
        ("fp8", "fp8"),
        ("fp8_static", "fp8_static"),
        ("bf16", "bfloat16"),
        ("nvfp4", "nvfp4"),
        ("mxfp4", "mxfp4"),
    ],
)
def test_quant_profiles_equal_the_peers(ours, peers):
    compat = pytest.importorskip("aiconfigurator.sdk.task_v1_compat", reason="the peer is not installed")
    profile, _, _ = load_profile(ours, None)
    for section in ("worker_config", "prefill_worker_config", "decode_worker_config"):
        values = profile.doc.get(("config", section))
        expected = {k: v.replace("bfloat16", "float16") for k, v in compat._PROFILE_TO_QUANT[peers].items()}
        assert values == expected, section
