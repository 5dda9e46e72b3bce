"""The measured tables servopt reads, and how one parquet file becomes column arrays.

Each table has a merge key: the columns that identify one measured point the way the peer's loader
folds rows (first row wins per key, across sources in priority order). Derived columns are added
here so every consumer sees the same coordinates:

- ``seq``: the attention/MLA sequence axis: ``isl`` for context tables, ``isl + step`` (the kv length
  of the measured decode step) for generation tables.
- ``n_kv_lookup``: ``num_key_value_heads``, or 0 when it equals ``num_heads`` (the MHA sentinel the
  peer's attention tables are keyed by).
- ``lane``: ``kernel_source`` or ``"default"`` when absent/empty (attention kernel lane).

Units: latency in ms everywhere; columns ending in ``_us`` (and ``moe_a2a_perf.latency``) are
microseconds in the files and are divided by 1000 here. Message sizes stay in elements.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servopt.errors import ServoptError

US_PER_MS = 1000.0
DEFAULT_LANE = "default"


@dataclass(frozen=True)
class TableSpec:
    """One measured table: its family folder, file, and merge key (after derived columns)."""

    name: str
    family: str
    filename: str
    key: tuple[str, ...]
    # Numeric shape columns kept as int64 (everything else that is not latency is a string column).
    ints: tuple[str, ...]
    # Framework-agnostic tables live under comm/nccl/<nccl_version>/ and never inherit rows.
    framework_agnostic: bool = False


_ATTN_INTS = ("batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "window_size", "step")

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec("gemm_perf", "gemm", "gemm_perf.parquet", ("gemm_dtype", "m", "n", "k"), ("m", "n", "k")),
        TableSpec(
            "computescale_perf",
            "quantize",
            "computescale_perf.parquet",
            ("quant_dtype", "m", "k"),
            ("m", "k"),
        ),
        TableSpec(
            "scale_matrix_perf",
            "quantize",
            "scale_matrix_perf.parquet",
            ("quant_dtype", "m", "k"),
            ("m", "k"),
        ),
        TableSpec(
            "context_attention_perf",
            "attention",
            "context_attention_perf.parquet",
            (
                "lane",
                "attn_dtype",
                "kv_cache_dtype",
                "n_kv_lookup",
                "head_dim",
                "window_size",
                "num_heads",
                "seq",
                "batch_size",
            ),
            _ATTN_INTS,
        ),
        TableSpec(
            "generation_attention_perf",
            "attention",
            "generation_attention_perf.parquet",
            (
                "lane",
                "kv_cache_dtype",
                "n_kv_lookup",
                "head_dim",
                "window_size",
                "num_heads",
                "batch_size",
                "seq",
            ),
            _ATTN_INTS,
        ),
        TableSpec(
            "context_mla_perf",
            "mla",
            "context_mla_perf.parquet",
            ("mla_dtype", "kv_cache_dtype", "num_heads", "seq", "batch_size"),
            ("num_heads", "batch_size", "isl", "tp_size", "step"),
        ),
        TableSpec(
            "generation_mla_perf",
            "mla",
            "generation_mla_perf.parquet",
            ("kv_cache_dtype", "num_heads", "batch_size", "seq"),
            ("num_heads", "batch_size", "isl", "tp_size", "step"),
        ),
        TableSpec(
            "mla_context_module_perf",
            "mla",
            "mla_context_module_perf.parquet",
            ("mla_dtype", "kv_cache_dtype", "gemm_type", "num_heads", "seq", "batch_size"),
            ("num_heads", "batch_size", "isl", "tp_size", "step"),
        ),
        TableSpec(
            "mla_generation_module_perf",
            "mla",
            "mla_generation_module_perf.parquet",
            ("kv_cache_dtype", "gemm_type", "num_heads", "batch_size", "seq"),
            ("num_heads", "batch_size", "isl", "tp_size", "step"),
        ),
        TableSpec(
            "mla_bmm_perf",
            "mla_bmm",
            "mla_bmm_perf.parquet",
            ("bmm_dtype", "op_name", "num_heads", "num_tokens"),
            ("num_tokens", "num_heads"),
        ),
        TableSpec(
            "moe_perf",
            "moe",
            "moe_perf.parquet",
            (
                "low_latency",
                "moe_dtype",
                "distribution",
                "topk",
                "num_experts",
                "hidden_size",
                "inter_size",
                "moe_tp_size",
                "moe_ep_size",
                "num_tokens",
            ),
            ("num_tokens", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size", "moe_ep_size"),
        ),
        TableSpec(
            "custom_allreduce_perf",
            "comm",
            "custom_allreduce_perf.parquet",
            ("num_gpus", "message_size"),
            ("num_gpus", "message_size"),
        ),
        TableSpec(
            "nccl_perf",
            "comm",
            "nccl_perf.parquet",
            ("nccl_dtype", "op_name", "num_gpus", "message_size"),
            ("num_gpus", "message_size"),
            framework_agnostic=True,
        ),
    )
}

# Kernel names whose MoE rows form the TRT-LLM low-latency split (probed first for small-token nvfp4).
MOE_LOW_LATENCY_KERNEL = "moe_torch_flow_min_latency"
# The collector logs two mxfp4 kernels under one moe_dtype; the peer routes them to dedicated quants.
MOE_QUANT_REMAP = {
    ("w4a8_mxfp4_mxfp8", "sglang_mxfp4_flashinfer_trtllm_moe"): "w4a8_mxfp4_mxfp8_trtllm",
    ("w4a16_mxfp4", "sglang_flashinfer_cutlass_moe"): "w4a16_mxfp4_cutlass",
}
# GEMM dtypes the peer does not model.
GEMM_SKIPPED_DTYPES = frozenset({"awq", "gptq"})


def table_spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        from servopt.errors import UnknownNameError

        raise UnknownNameError("table", name, "unknown measured table", sorted(TABLES)) from None


def _strings(column) -> np.ndarray:
    """A string column as a fixed-width unicode array (nulls become "")."""
    import pyarrow as pa
    import pyarrow.compute as pc

    column = pc.fill_null(column.cast(pa.string()), "")
    return np.asarray(column.to_numpy(zero_copy_only=False)).astype(str)


def read_parquet(path: Path, spec: TableSpec) -> dict[str, np.ndarray]:
    """One parquet file -> column arrays (ints int64, strings unicode, latency float64 ms), derived columns
    added and the peer's row filters applied. Raises ServoptError naming the file if it is unreadable."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ServoptError("perf_db", str(path), f"unreadable parquet file: {err}") from None
    names = set(table.column_names)
    cols: dict[str, np.ndarray] = {}
    for name in table.column_names:
        column = table.column(name)
        if name == "latency" or name.endswith("_us") or name == "avg_ms" or name == "power":
            arr = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
            if name.endswith("_us"):
                arr = arr / US_PER_MS
            cols[name] = arr
        elif name in spec.ints:
            cols[name] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            cols[name] = _strings(column)
    if "latency" not in cols:
        raise ServoptError("perf_db", str(path), "table has no latency column")
    n = len(cols["latency"])
    cols.setdefault("kernel_source", np.full(n, "", dtype=str))
    if "window_size" in spec.ints and "window_size" not in names:
        cols["window_size"] = np.zeros(n, dtype=np.int64)
    if "step" in spec.ints and "step" not in names:
        cols["step"] = np.zeros(n, dtype=np.int64)
    _derive(spec, cols)
    keep = _row_filter(spec, cols, path)
    if keep is not None:
        cols = {k: v[keep] for k, v in cols.items()}
    return cols


def _derive(spec: TableSpec, cols: dict[str, np.ndarray]) -> None:
    n = len(cols["latency"])
    if spec.name in ("context_attention_perf", "generation_attention_perf"):
        nh, nkv = cols["num_heads"], cols["num_key_value_heads"]
        cols["n_kv_lookup"] = np.where(nkv == nh, 0, nkv).astype(np.int64)
        ks = cols["kernel_source"]
        cols["lane"] = np.where(ks == "", DEFAULT_LANE, ks)
    if "isl" in cols and "seq" in spec.key:
        generation = spec.name.startswith("generation") or spec.name == "mla_generation_module_perf"
        cols["seq"] = cols["isl"] + cols["step"] if generation else cols["isl"].copy()
    if spec.name == "moe_perf":
        ks = cols["kernel_source"]
        cols["low_latency"] = (ks == MOE_LOW_LATENCY_KERNEL).astype(np.int64)
        quant = cols["moe_dtype"].astype(object)
        for (raw, kernel), remapped in MOE_QUANT_REMAP.items():
            quant[(cols["moe_dtype"] == raw) & (ks == kernel)] = remapped
        cols["moe_dtype"] = quant.astype(str)
    assert all(len(v) == n for v in cols.values())


def _row_filter(spec: TableSpec, cols: dict[str, np.ndarray], path: Path) -> np.ndarray | None:
    if spec.name == "gemm_perf":
        return ~np.isin(cols["gemm_dtype"], list(GEMM_SKIPPED_DTYPES))
    if spec.name == "custom_allreduce_perf" and "/b60/" not in path.as_posix():
        # Production runs use CUDA graphs; the peer drops eager-mode rows (except on b60).
        backend = cols.get("backend", np.full(len(cols["latency"]), "", dtype=str))
        eager = np.char.endswith(cols["kernel_source"], "_eager") | np.char.endswith(backend, "_eager")
        return ~eager
    return None


def first_wins(cols: dict[str, np.ndarray], key: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Keep the first row of every key (rows are already in source-priority order)."""
    n = len(cols["latency"])
    if n == 0:
        return cols
    # Mixed-radix row code over per-column ranks; re-densify whenever the product could overflow.
    combined = np.zeros(n, dtype=np.int64)
    for name in key:
        _, inv = np.unique(cols[name], return_inverse=True)
        radix = int(inv.max()) + 1
        if int(combined.max()) >= (2**62) // max(radix, 1):
            _, combined = np.unique(combined, return_inverse=True)
        combined = combined * radix + inv.astype(np.int64)
    _, first = np.unique(combined, return_index=True)
    first.sort()
    return {k: v[first] for k, v in cols.items()}


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate column dicts, keeping only the columns every part has."""
    if not parts:
        return {}
    common = [k for k in parts[0] if all(k in p for p in parts[1:])]
    return {k: np.concatenate([p[k] for p in parts]) for k in common}
