"""The hardware: GPU system specs (``perf_db/systems/*.yaml`` in servopt's data folder), written by us
from public spec sheets. Below every layer (models, evaluate, perf_db and simulate read it).

Peak numbers come from vendor datasheets; the ``empirical`` block holds the few fitted constants the
latency and memory models need (named, documented, easy to change).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError

from servopt.errors import ServoptError, UnknownNameError
from servopt.resources import data_root

ComputeDtype = Literal["bf16", "fp8", "int8", "fp4"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuSpec(_Strict):
    sm_version: PositiveInt
    mem_capacity_bytes: PositiveInt
    mem_bw_bytes_per_s: PositiveFloat
    # Dense tensor-core peak per compute dtype (no sparsity).
    peak_flops_per_s: dict[ComputeDtype, PositiveFloat]
    power_w: PositiveFloat


class NodeSpec(_Strict):
    gpus_per_node: PositiveInt
    # GPUs reachable over NVLink without leaving the NVLink fabric (8 on HGX, 72 on NVL72).
    gpus_per_nvlink_domain: PositiveInt
    nvlink_bw_bytes_per_s: PositiveFloat  # per GPU, one direction
    network_bw_bytes_per_s: PositiveFloat  # per GPU, one direction, scale-out (IB/Ethernet)
    pcie_bw_bytes_per_s: PositiveFloat


class EmpiricalSpec(_Strict):
    # Achieved fraction of HBM bandwidth for memory-bound element-wise ops.
    mem_bw_efficiency: float = Field(gt=0, le=1)
    # Fixed launch/latency cost added to every memory-bound element-wise op.
    mem_op_constant_latency_s: float = Field(ge=0)
    # Fixed cost of one pipeline-parallel point-to-point hop.
    p2p_latency_s: float = Field(ge=0)
    # NCCL/communicator buffers per GPU, keyed by min(tp, 8).
    nccl_mem_bytes: dict[int, int]
    # CUDA context, cuBLAS workspaces and other runtime memory per GPU.
    other_mem_bytes: PositiveInt
    # NCCL version whose collective measurements apply to this system.
    nccl_version: str


class SystemSpec(_Strict):
    name: str
    description: str
    sources: list[str]
    # aiconfigurator-core data folder with measured grids, or None for a roofline-only system.
    measured_data: str | None
    gpu: GpuSpec
    node: NodeSpec
    empirical: EmpiricalSpec

    @property
    def roofline_only(self) -> bool:
        return self.measured_data is None

    @property
    def inter_node_bw_bytes_per_s(self) -> float:
        """Bandwidth between two nodes: NVLink when the NVLink domain spans nodes, else the network."""
        if self.node.gpus_per_nvlink_domain > self.node.gpus_per_node:
            return self.node.nvlink_bw_bytes_per_s
        return self.node.network_bw_bytes_per_s

    def collective_bw_bytes_per_s(self, num_gpus: int) -> float:
        """Per-GPU bandwidth of a collective over ``num_gpus`` ranks."""
        if num_gpus <= self.node.gpus_per_node:
            return self.node.nvlink_bw_bytes_per_s
        if num_gpus <= self.node.gpus_per_nvlink_domain:
            return self.inter_node_bw_bytes_per_s
        return self.node.network_bw_bytes_per_s

    def flops_per_s(self, dtype: ComputeDtype) -> float:
        try:
            return self.gpu.peak_flops_per_s[dtype]
        except KeyError:
            raise UnknownNameError(
                "dtype", dtype, f"system {self.name} has no {dtype} tensor cores", self.gpu.peak_flops_per_s
            ) from None


def systems_dir() -> Path:
    return data_root() / "systems"


def system_names() -> list[str]:
    return sorted(p.stem for p in systems_dir().glob("*.yaml"))


@cache
def load_system(name: str) -> SystemSpec:
    """Load and validate one system spec by name."""
    path = systems_dir() / f"{name}.yaml"
    if not path.is_file():
        raise UnknownNameError("system", name, "unknown system", system_names())
    try:
        raw = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return SystemSpec.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as err:
        first = str(err).splitlines()[:3]
        raise ServoptError("system", name, f"invalid spec {path}: {' '.join(first)}") from None
