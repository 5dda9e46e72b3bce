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
microseconds in the files and are divided by 1000 here (``LATENCY_US_TABLES``). Message sizes stay in elements.
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
_A2A_KEY = (
    "comm_backend",
    "phase",
    "comm_dtype",
    "ep_size",
    "node_num",
    "hidden_size",
    "topk",
    "num_experts",
    "sms",
    "num_tokens",
)
_A2A_INTS = ("ep_size", "node_num", "hidden_size", "topk", "num_experts", "sms", "num_tokens")
_WIDEEP_MOE_KEY = (
    "kernel_source",
    "moe_dtype",
    "distribution",
    "topk",
    "num_experts",
    "num_slots",
    "hidden_size",
    "inter_size",
    "moe_tp_size",
    "moe_ep_size",
    "num_tokens",
)
_WIDEEP_MOE_INTS = (
    "num_tokens",
    "hidden_size",
    "inter_size",
    "topk",
    "num_experts",
    "num_slots",
    "moe_tp_size",
    "moe_ep_size",
)
_WIDEEP_MOE = (_WIDEEP_MOE_KEY, _WIDEEP_MOE_INTS)

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
            "moe_a2a_perf",
            "comm",
            "moe_a2a_perf.parquet",
            _A2A_KEY,
            _A2A_INTS,
        ),
        TableSpec(
            "wideep_moe_perf",
            "moe",
            "wideep_moe_perf.parquet",
            *_WIDEEP_MOE,
        ),
        # SGLang's legacy large-EP tables (its versions 0.5.6.post2 - 0.5.12). The DeepEP files hold
        # dispatch and combine side by side; each row becomes one row per comm phase in the
        # ``moe_a2a_perf`` schema (``_stack_deepep``) and feeds the all-to-all family.
        TableSpec(
            "sglang_deepep_normal_perf",
            "comm",
            "wideep_deepep_normal_perf.parquet",
            _A2A_KEY,
            (*_A2A_INTS, "num_token", "num_topk", "dispatch_sms", "combine_sms"),
        ),
        TableSpec(
            "sglang_deepep_ll_perf",
            "comm",
            "wideep_deepep_ll_perf.parquet",
            _A2A_KEY,
            (*_A2A_INTS, "num_token", "num_topk"),
        ),
        # Expert compute of SGLang's DeepEP MoE, one table per inference phase; rows take the wide-EP
        # compute schema (slots = experts, the kernel named by phase) and feed ``wideep_moe``.
        TableSpec("sglang_wideep_context_moe_perf", "moe", "wideep_context_moe_perf.parquet", *_WIDEEP_MOE),
        TableSpec(
            "sglang_wideep_generation_moe_perf", "moe", "wideep_generation_moe_perf.parquet", *_WIDEEP_MOE
        ),
        # SGLang's wide-EP MLA attention (kernel lane, MLA dtype; DeepSeek-V3 shape only).
        TableSpec(
            "wideep_context_mla_perf",
            "mla",
            "wideep_context_mla_perf.parquet",
            ("kernel_source", "mla_dtype", "kv_cache_dtype", "num_heads", "seq", "batch_size"),
            ("num_heads", "batch_size", "isl", "tp_size", "step"),
        ),
        TableSpec(
            "wideep_generation_mla_perf",
            "mla",
            "wideep_generation_mla_perf.parquet",
            ("kernel_source", "mla_dtype", "kv_cache_dtype", "num_heads", "batch_size", "seq"),
            ("num_heads", "batch_size", "isl", "tp_size", "step"),
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
# Tables whose ``latency`` column is in microseconds (the all-to-all collector's convention).
LATENCY_US_TABLES = frozenset({"moe_a2a_perf"})
# SGLang's legacy DeepEP tables: comm backend, and per comm phase the latency columns (summed) and
# the SM-budget column. The normal (high-throughput) kernel is priced at the peer's 20 SMs; the
# low-latency kernel has no SM axis.
SGLANG_DEEPEP_TABLES = {
    "sglang_deepep_normal_perf": (
        "deepep_ht",
        {
            "dispatch": (("dispatch_transmit_us", "dispatch_notify_us"), "dispatch_sms"),
            "combine": (("combine_transmit_us", "combine_notify_us"), "combine_sms"),
        },
    ),
    "sglang_deepep_ll_perf": (
        "deepep_ll",
        {"dispatch": (("dispatch_avg_t_us",), None), "combine": (("combine_avg_t_us",), None)},
    ),
}
# The DeepEP collections measured 8-GPU HGX nodes: EP size = 8 x nodes.
SGLANG_DEEPEP_NODE_GPUS = 8
SGLANG_WIDEEP_MOE_KERNELS = {
    "sglang_wideep_context_moe_perf": "sglang_deepep_context",
    "sglang_wideep_generation_moe_perf": "sglang_deepep_generation",
}
# GEMM dtypes the peer does not model.
GEMM_SKIPPED_DTYPES = frozenset({"awq", "gptq"})


def table_spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        from servopt.errors import UnknownNameError

        raise UnknownNameError("table", name, "unknown measured table", sorted(TABLES)) from None


def _numbers(column, dtype, null) -> np.ndarray:
    """A numeric column as a ``dtype`` array, nulls as ``null``, read off its Arrow buffers: pyarrow's
    own to_numpy imports pandas (0.35 s of a cold run) even for a zero-copy read."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)) or (
        arr.null_count and null is None
    ):
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)  # rare: keep pyarrow's rules
    n, first = len(arr), arr.offset
    bitmap, data = arr.buffers()[:2]
    if n == 0:
        return np.empty(0, dtype=dtype)
    out = np.frombuffer(data, dtype=np.dtype(arr.type.to_pandas_dtype()))[first : first + n].astype(dtype)
    if arr.null_count:
        valid = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")[first : first + n]
        out[~valid.astype(bool)] = null
    return out


def _strings(column) -> np.ndarray:
    """A string column as a fixed-width unicode array (nulls become ""), via its small dictionary."""
    import pyarrow as pa

    # Nulls are mapped to "" here, from the validity bitmap: pyarrow's fill_null("") and its
    # boolean to_numpy both import pandas (0.35 s of a cold run).
    enc = column.cast(pa.string()).combine_chunks().dictionary_encode()
    vocab = np.asarray([*enc.dictionary.to_pylist(), ""], dtype=str)
    idx = _numbers(enc.indices, np.int64, len(vocab) - 1)  # null -> the trailing ""
    return vocab[idx]


def codes(col: np.ndarray) -> np.ndarray:
    """Equality codes (int64, in order of first appearance) of any 1-D array, hashing in O(n)."""
    from servopt_kernels.dedup import unique_rows

    arr = np.ascontiguousarray(col)
    if arr.dtype.kind in "iuf":
        rows = arr.astype(np.float64).reshape(-1, 1)
    else:
        raw = arr.view(np.uint8).reshape(len(arr), -1)
        width = -(-raw.shape[1] // 8) * 8
        padded = np.zeros((len(arr), max(width, 8)), dtype=np.uint8)
        padded[:, : raw.shape[1]] = raw
        rows = padded.view(np.float64)  # bit patterns only: unique_rows compares the raw bits
    _, inverse = unique_rows(np.ascontiguousarray(rows))
    return inverse


def _columns_to_read(path: Path, spec: TableSpec) -> list[str]:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    derived = {"lane", "n_kv_lookup", "seq", "low_latency"}
    wanted = (
        {k for k in spec.key if k not in derived} | set(spec.ints) | {"latency", "kernel_source", "backend"}
    )
    wanted |= {"num_heads", "num_key_value_heads"} if "n_kv_lookup" in spec.key else set()
    return [n for n in names if n in wanted or n.endswith("_us")]


def read_parquet(path: Path, spec: TableSpec) -> dict[str, np.ndarray]:
    """One parquet file -> column arrays (ints int64, strings unicode, latency float64 ms), derived columns
    added and the peer's row filters applied. Raises ServoptError naming the file if it is unreadable."""
    import pyarrow.parquet as pq

    try:
        # ParquetFile, not read_table: read_table goes through pyarrow.dataset, which imports pandas
        # (0.35 s of a cold run) for a single file that needs neither.
        table = pq.ParquetFile(path).read(columns=_columns_to_read(path, spec))
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise ServoptError("perf_db", str(path), f"unreadable parquet file: {err}") from None
    names = set(table.column_names)
    cols: dict[str, np.ndarray] = {}
    for name in table.column_names:
        column = table.column(name)
        if name == "latency" or name.endswith("_us") or name == "avg_ms" or name == "power":
            arr = _numbers(column, np.float64, np.nan)
            if name.endswith("_us") or (name == "latency" and spec.name in LATENCY_US_TABLES):
                arr = arr / US_PER_MS
            cols[name] = arr
        elif name in spec.ints:
            # A nullable SM budget (all-to-all rows without one) reads as 0, as the peer does.
            cols[name] = _numbers(column, np.int64, 0 if name == "sms" else None)
        else:
            cols[name] = _strings(column)
    if spec.name in SGLANG_DEEPEP_TABLES:
        return _stack_deepep(spec.name, cols)  # one row per comm phase; no other derived columns
    if "latency" not in cols:
        raise ServoptError("perf_db", str(path), "table has no latency column")
    n = len(cols["latency"])
    cols.setdefault("kernel_source", np.full(n, "", dtype=str))
    if "window_size" in spec.ints and "window_size" not in names:
        cols["window_size"] = np.zeros(n, dtype=np.int64)
    if "step" in spec.ints and "step" not in names:
        cols["step"] = np.zeros(n, dtype=np.int64)
    if "sms" in spec.ints and "sms" not in names:
        cols["sms"] = np.zeros(n, dtype=np.int64)
    _derive(spec, cols)
    keep = _row_filter(spec, cols, path)
    if keep is not None:
        cols = {k: v[keep] for k, v in cols.items()}
    return cols


def _stack_deepep(table: str, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A legacy SGLang DeepEP file (dispatch and combine per row) as ``moe_a2a_perf`` rows, one per
    comm phase: latency = the phase's summed microsecond columns (already ms here), wire dtype
    ``default``, EP size 8 x nodes."""
    backend, phases = SGLANG_DEEPEP_TABLES[table]
    n = len(cols["num_token"])
    parts = []
    for phase, (latency_cols, sms_col) in phases.items():
        parts.append(
            {
                "comm_backend": np.full(n, backend),
                "phase": np.full(n, phase),
                "comm_dtype": np.full(n, "default"),
                "ep_size": cols["node_num"] * SGLANG_DEEPEP_NODE_GPUS,
                "node_num": cols["node_num"],
                "hidden_size": cols["hidden_size"],
                "topk": cols["num_topk"],
                "num_experts": cols["num_experts"],
                "sms": cols[sms_col] if sms_col else np.zeros(n, dtype=np.int64),
                "num_tokens": cols["num_token"],
                "latency": sum(cols[c] for c in latency_cols),
                "kernel_source": cols.get("kernel_source", np.full(n, "")),
            }
        )
    return concat(parts)


def _derive(spec: TableSpec, cols: dict[str, np.ndarray]) -> None:
    n = len(cols["latency"])
    if spec.name in ("context_attention_perf", "generation_attention_perf"):
        nh, nkv = cols["num_heads"], cols["num_key_value_heads"]
        cols["n_kv_lookup"] = np.where(nkv == nh, 0, nkv).astype(np.int64)
        ks = cols["kernel_source"]
        cols["lane"] = np.where(ks == "", DEFAULT_LANE, ks)
    if "isl" in cols and "seq" in spec.key:
        generation = "generation" in spec.name
        cols["seq"] = cols["isl"] + cols["step"] if generation else cols["isl"].copy()
    if spec.name in SGLANG_WIDEEP_MOE_KERNELS:
        # One expert slot per expert (no EPLB redundancy in these collections); the kernel is named
        # by the inference phase so both phases share the wide-EP compute family.
        cols["num_slots"] = cols["num_experts"].copy()
        cols["kernel_source"] = np.full(n, SGLANG_WIDEEP_MOE_KERNELS[spec.name])
    if spec.name == "moe_perf":
        ks = cols["kernel_source"]
        cols["low_latency"] = (ks == MOE_LOW_LATENCY_KERNEL).astype(np.int64)
        for (raw, kernel), remapped in MOE_QUANT_REMAP.items():
            mask = (cols["moe_dtype"] == raw) & (ks == kernel)
            if mask.any():
                cols["moe_dtype"] = np.where(mask, remapped, cols["moe_dtype"])
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
    if len(cols["latency"]) == 0:
        return cols
    first = first_rows(cols, key)
    return {k: v[first] for k, v in cols.items()}


def first_rows(cols: dict[str, np.ndarray], key: tuple[str, ...]) -> np.ndarray:
    """Indices of the first row of every key, in row order."""
    from servopt_kernels.dedup import unique_rows

    rows = np.column_stack(
        [
            cols[k].astype(np.float64) if cols[k].dtype.kind in "iuf" else codes(cols[k]).astype(np.float64)
            for k in key
        ]
    )
    first, _ = unique_rows(np.ascontiguousarray(rows))
    return first


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate column dicts, keeping only the columns every part has."""
    if not parts:
        return {}
    common = [k for k in parts[0] if all(k in p for p in parts[1:])]
    return {k: np.concatenate([p[k] for p in parts]) for k in common}
