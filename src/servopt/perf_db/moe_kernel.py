"""A database whose MoE expert rows of one quant come from a named kernel measured under another
backend of the same system.

An engine's own ``moe_perf`` table holds one kernel per quant (the one the peer's collector ran):
TRT-LLM 1.3's B200 ``fp8_block`` rows are DeepGEMM's. A run whose launch script states another MoE
backend ran another kernel; where that kernel was measured through a different framework on the same
GPU (TRT-LLM-gen's fp8 block-scale MoE through FlashInfer in SGLang), :func:`with_moe_kernel` prices
that quant from those rows instead. Only the calibration replay uses it (stated settings of a
measured run); the search keeps the peer's pricing.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from servopt.perf_db import families, sources
from servopt.perf_db.build import Built
from servopt.perf_db.database import PerfDatabase
from servopt.perf_db.tables import concat

MOE_TABLE = "moe_perf"


class KernelRows(NamedTuple):
    """The rows of one MoE kernel: the (backend, version) whose table measured it, its
    ``kernel_source``, and the quant it serves."""

    backend: str
    version: str
    kernel_source: str
    moe_quant: str
    measured_by: str  # how it was measured, for the setup's assumption text

    @property
    def note(self) -> str:
        return (
            f"moe {self.moe_quant} priced from {self.kernel_source} rows ({self.measured_by}; "
            f"{self.backend} {self.version} table)"
        )


# (engine, stated MoE backend, moe quant) -> the rows of the kernel that backend runs, where the
# engine's own table measured another one. TRT-LLM's ``moe_config.backend: TRTLLM`` runs the
# TRT-LLM-gen block-scale MoE; FlashInfer ships the same trtllm-gen kernels, which aiconfigurator-core
# measured through SGLang 0.5.14 on B200 (``sglang_flashinfer_trtllm_moe``).
STATED_MOE_KERNELS = {
    ("trtllm", "TRTLLM", "fp8_block"): KernelRows(
        "sglang",
        "0.5.14",
        "sglang_flashinfer_trtllm_moe",
        "fp8_block",
        "TRT-LLM-gen kernels measured through FlashInfer in SGLang 0.5.14",
    ),
}


def stated_moe_kernel(engine: str, moe_backend: str | None, moe_quant: str) -> KernelRows | None:
    """The kernel rows a stated MoE backend prices ``moe_quant`` from, or None (the engine's own)."""
    return STATED_MOE_KERNELS.get((engine, moe_backend or "", moe_quant))


def _merged(db: PerfDatabase, backend: str, version: str, kernel_source: str | None = None):
    """The ``moe_perf`` columns of (backend, version) on ``db``'s system, merged first-source-wins as
    that backend's database would; only ``kernel_source``'s rows where given."""
    measured, nccl = db.system.measured_data, db.system.empirical.nccl_version
    resolved = sources.resolve_sources(measured, backend, version, MOE_TABLE, nccl)
    if kernel_source is not None:
        only = frozenset({kernel_source})
        resolved = [dataclasses.replace(s, kernel_sources=only) for s in resolved]
    return sources.merge_sources(resolved, MOE_TABLE)


def kernel_rows(db: PerfDatabase, kernel: KernelRows) -> dict[str, np.ndarray]:
    """The ``moe_perf`` rows of ``kernel`` on ``db``'s system: only that kernel_source, only its quant."""
    cols = _merged(db, kernel.backend, kernel.version, kernel.kernel_source)
    if not cols:
        return {}
    keep = cols["moe_dtype"] == kernel.moe_quant
    return {k: v[keep] for k, v in cols.items()}


def with_moe_kernel(db: PerfDatabase, kernel: KernelRows) -> PerfDatabase:
    """``db`` with its MoE family rebuilt: every slice (model shape and layout) of ``kernel.moe_quant``
    that the kernel measured comes from the kernel's rows; every other slice stays ``db``'s own."""
    if db.sol or db._built is None:
        return db  # a roofline database has no measured rows to replace
    spec = families.FAMILIES["moe"]
    own = _merged(db, db.backend, db.version)
    new = kernel_rows(db, kernel)
    if not new:
        return db
    slices = set(zip(*(new[k].tolist() for k in spec.key), strict=True))
    kept = np.array(
        [s not in slices for s in zip(*(own[k].tolist() for k in spec.key), strict=True)], dtype=bool
    )
    cols = concat([new, {k: v[kept] for k, v in own.items()}])
    fams = dict(db.families)
    fams["moe"] = families.build(spec, cols, None, db.system, db.backend, db.version)
    built = db._built
    rebuilt = Built(fams, built.gemm_arrays, dict(built.table_info), from_cache=False)
    return PerfDatabase(db.system_name, db.system, db.backend, db.version, rebuilt, sol=db.sol)
