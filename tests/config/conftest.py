"""Shared fixtures: a fake catalog (no registry, no perf data) with the seed example's names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from servopt.errors import UnknownNameError
from servopt.models.arch import ModelArch, QuantDefaults
from servopt.models.parallel import enumerate_layouts

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"

DENSE = ModelArch(
    name="QWEN3_32B",
    family="dense",
    num_layers=64,
    hidden_size=5120,
    num_heads=64,
    num_kv_heads=8,
    head_dim=128,
    inter_size=25600,
    vocab_size=151936,
    max_context=40960,
)
MOE = ModelArch(
    name="DEEPSEEK_V3",
    family="moe",
    num_layers=61,
    hidden_size=7168,
    num_heads=128,
    num_kv_heads=128,
    head_dim=128,
    inter_size=18432,
    vocab_size=129280,
    max_context=163840,
    num_experts=256,
    topk=8,
    moe_inter_size=2048,
    quant=QuantDefaults(gemm="fp8_block", moe="fp8_block", kvcache="fp8", fmha="fp8"),
)


class FakeCatalog:
    """The seed example's names, with Hopper and Blackwell systems and a roofline-only one."""

    models: Mapping[str, ModelArch] = {"QWEN3_32B": DENSE, "DEEPSEEK_V3": MOE}
    dtypes: Mapping[str, frozenset[str]] = {
        "h200_sxm": frozenset({"bf16", "fp8", "int8"}),
        "b200_sxm": frozenset({"bf16", "fp8", "int8", "fp4"}),
        "a100_sxm": frozenset({"bf16", "int8"}),
        "roofline_gpu": frozenset({"bf16", "fp8"}),
    }
    versions: Mapping[str, Mapping[str, Sequence[str]] | None] = {
        "h200_sxm": {
            "trtllm": ("1.3.0rc20", "1.3.0rc23", "current", "next"),
            "sglang": ("0.5.14", "current"),
            "vllm": ("0.24.0", "current"),
        },
        "b200_sxm": {"trtllm": ("1.3.0rc20", "current"), "sglang": ("0.5.14", "current")},
        "a100_sxm": {"trtllm": ("1.0.0", "current")},
        "roofline_gpu": None,
    }

    def resolve_model(self, name: str) -> ModelArch:
        if name not in self.models:
            raise UnknownNameError("model", name, "unknown model", list(self.models))
        return self.models[name]

    def system_names(self) -> Sequence[str]:
        return sorted(self.dtypes)

    def compute_dtypes(self, system: str) -> frozenset[str]:
        return self.dtypes[system]

    def backend_versions(self, system: str, with_next: bool = True) -> Mapping[str, Sequence[str]] | None:
        return self.versions[system]

    def large_ep_eps(self, arch, backend, system, decode_system, version) -> dict[str, list[int]]:
        return {}  # no perf data: no multi-node EP coverage

    def enumerate_layouts(self, **kwargs):
        return enumerate_layouts(**kwargs)


@pytest.fixture
def fake_catalog() -> FakeCatalog:
    return FakeCatalog()


@pytest.fixture
def write_yaml(tmp_path):
    """Write YAML text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
