"""The grid families one database holds, and how each is built from its merged table.

Every family names its table, the categorical slice key, the numeric axes (outer -> inner, the order
the resolver brackets them), its roofline kind and the axis blended in sqrt space (the sequence axis
of context-phase ops, whose latency grows ~quadratically in it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from servopt.hardware import SystemSpec
from servopt.perf_db import lanes
from servopt.perf_db.grids import GridFamily, build_family
from servopt.perf_db.quant import KV_QUANTS
from servopt.perf_db.tables import TABLES, codes
from servopt_kernels import dedup
from servopt_kernels import grid as gk


class FamilySpec(NamedTuple):
    name: str
    table: str
    key: tuple[str, ...]
    axes: tuple[str, ...]
    sol_kind: int
    sqrt_axis: int = -1  # -1: raw blending on every axis
    lanes: bool = False  # attention tables: resolve kernel lanes before building
    # Tables in the same schema whose rows join the family after its own (first row wins per key).
    extra_tables: tuple[str, ...] = ()


def _family(name: str, table: str, n_axes: int, sol_kind: int, **options) -> FamilySpec:
    """A family slices its table's merge key (one measured point): the last ``n_axes`` columns are the
    grid axes, the others the slice key (less the kernel lane, resolved before the grid is built)."""
    merge = tuple(column for column in TABLES[table].key if column != "lane")
    return FamilySpec(name, table, merge[:-n_axes], merge[-n_axes:], sol_kind, **options)


FAMILIES: dict[str, FamilySpec] = {
    f.name: f
    for f in (
        _family("context_attention", "context_attention_perf", 3, gk.SOL_CTX_ATTN, sqrt_axis=1, lanes=True),
        _family("generation_attention", "generation_attention_perf", 3, gk.SOL_GEN_ATTN, lanes=True),
        _family("context_mla", "context_mla_perf", 3, gk.SOL_CTX_MLA, sqrt_axis=1),
        _family("generation_mla", "generation_mla_perf", 3, gk.SOL_GEN_MLA),
        _family("mla_context_module", "mla_context_module_perf", 3, gk.SOL_CTX_MLA, sqrt_axis=1),
        _family("mla_generation_module", "mla_generation_module_perf", 3, gk.SOL_GEN_MLA_MODULE),
        _family("mla_bmm", "mla_bmm_perf", 1, gk.SOL_MLA_BMM),
        _family("moe", "moe_perf", 1, gk.SOL_MOE),
        # Large-EP all-to-all (DeepEP / NVLink dispatch and combine): token curves per comm shape;
        # latency ~ payload ~ tokens within one slice, so the linear proxy anchors the hold.
        # SGLang's legacy DeepEP tables join it (tables.SGLANG_DEEPEP_TABLES).
        _family(
            "moe_a2a",
            "moe_a2a_perf",
            1,
            gk.SOL_LINEAR,
            extra_tables=("sglang_deepep_normal_perf", "sglang_deepep_ll_perf"),
        ),
        # Large-EP expert compute (TRT-LLM wide-EP grouped GEMMs; SGLang's DeepEP MoE per phase):
        # token curves per expert shape, anchored on the MoE roofline with the slot count (EPLB
        # redundancy) in place of experts.
        _family(
            "wideep_moe",
            "wideep_moe_perf",
            1,
            gk.SOL_MOE,
            extra_tables=("sglang_wideep_context_moe_perf", "sglang_wideep_generation_moe_perf"),
        ),
        # SGLang's wide-EP MLA attention (whole attention kernel at local heads, DeepSeek-V3 shape).
        _family("wideep_context_mla", "wideep_context_mla_perf", 3, gk.SOL_WIDEEP_CTX_MLA, sqrt_axis=1),
        _family("wideep_generation_mla", "wideep_generation_mla_perf", 3, gk.SOL_WIDEEP_GEN_MLA),
        _family("custom_allreduce", "custom_allreduce_perf", 1, gk.SOL_LINEAR),
        _family("nccl", "nccl_perf", 1, gk.SOL_LINEAR),
    )
}

PARAM_WIDTH = 10


def generation_attention_flops(system: SystemSpec, kv_quant: str) -> float:
    """Decode attention runs fp8 MMAs only with an fp8 KV cache on SM >= 89, else bf16."""
    if kv_quant == "fp8" and system.gpu.sm_version >= 89 and "fp8" in system.gpu.peak_flops_per_s:
        return system.flops_per_s("fp8")
    return system.flops_per_s("bf16")


def _key_codes(cols: dict[str, np.ndarray], key: tuple[str, ...]) -> np.ndarray:
    """One int64 code per row identifying its slice key."""
    rows = np.column_stack([codes(cols[k]).astype(np.float64) for k in key])
    return dedup.unique_rows(np.ascontiguousarray(rows))[1]


def _lane_filter(
    spec: FamilySpec, cols: dict[str, np.ndarray], primary: dict[str, np.ndarray] | None, walk_args
) -> dict[str, np.ndarray]:
    """Keep, per lane-free slice key, only the rows of the first lane in walk order that has it."""
    if not cols:
        return cols
    key_code = _key_codes(cols, spec.key)
    lane = cols["lane"]
    _, first = np.unique(lane, return_index=True)
    load_order = [str(x) for x in lane[np.sort(first)]]
    shared = lanes.density(lane, key_code)
    prim = lanes.density(primary["lane"], _key_codes(primary, spec.key)) if primary else {}
    walk = lanes.walk_order(*walk_args, shared, prim, load_order)
    lane_rank = np.zeros(len(lane), dtype=np.int64)
    for i, name in enumerate(walk):
        lane_rank[lane == name] = i
    # Per slice key the best (lowest) lane rank; keep rows of that lane only.
    best = np.full(int(key_code.max()) + 1, np.iinfo(np.int64).max)
    np.minimum.at(best, key_code, lane_rank)
    keep = lane_rank == best[key_code]
    return {k: v[keep] for k, v in cols.items()}


def _clamp_generation_to_sol(cols: dict[str, np.ndarray], system: SystemSpec) -> None:
    """Measured decode-attention rows below the roofline are raised to it (the peer does the same)."""
    if not cols:
        return
    n = len(cols["latency"])
    params = np.zeros((n, PARAM_WIDTH))
    params[:, 0] = cols["n_kv_lookup"]
    params[:, 1] = cols["head_dim"]
    params[:, 2] = cols["window_size"]
    for kv in np.unique(cols["kv_cache_dtype"]):
        mode = KV_QUANTS.get(str(kv))
        if mode is None:
            params[cols["kv_cache_dtype"] == kv, 4] = np.nan
            continue
        mask = cols["kv_cache_dtype"] == kv
        params[mask, 3] = mode.bytes_per_elem
        params[mask, 4] = generation_attention_flops(system, str(kv))
    params[:, 5] = system.gpu.mem_bw_bytes_per_s
    coords = np.column_stack([cols["num_heads"], cols["batch_size"], cols["seq"]]).astype(np.float64)
    sol = np.empty(n)
    gk.sol_batch(gk.SOL_GEN_ATTN, coords, params, sol)
    ok = np.isfinite(sol)
    cols["latency"] = np.where(ok, np.maximum(cols["latency"], np.where(ok, sol, 0.0)), cols["latency"])


def build(
    spec: FamilySpec,
    cols: dict[str, np.ndarray],
    primary: dict[str, np.ndarray] | None,
    system: SystemSpec,
    backend: str,
    version: str,
) -> GridFamily:
    if spec.lanes and cols:
        cols = _lane_filter(spec, cols, primary, (backend, version, system.gpu.sm_version))
    if spec.name == "generation_attention":
        cols = dict(cols)
        _clamp_generation_to_sol(cols, system)
    return build_family(spec.name, cols, spec.key, spec.axes)
