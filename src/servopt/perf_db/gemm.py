"""GEMM and fp8 quantization-overhead tables: build from resolved parquet columns, run the kernels.

``build_gemm_tables`` turns the resolved ``gemm_perf`` / ``computescale_perf`` /
``scale_matrix_perf`` rows into plain arrays (``GemmTables``, cacheable with ``to_arrays``);
``gemm_raw`` / ``scale_raw`` answer flat batches with one kernel call each (``servopt_kernels.gemm``);
``gemm_sol_ms`` is the roofline alone. The database's queries are ``perf_db.gemm_queries``.

Provenance (int8): 0 exact (a measured point), 1 interpolated (between measured m of a collected
(n, k); inside a scale grid), 2 edge-corrected (utilization of nearby collected (n, k) transferred
to an uncollected one; a ragged scale-grid survivor), 3 extrapolated (a utilization hold beyond the
measured range, or the gate waiver for an oversized (n, k)), 4 sol (fp8_static floored at its
roofline). With ``missing="nan"`` an unanswerable query is NaN with provenance -1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from servopt.errors import ServoptError, UnknownNameError
from servopt.hardware import ComputeDtype, SystemSpec

# Bump when GemmTables' arrays or build rules change: caches holding older builds must be rebuilt
# (the perf_db cache folds it into its fingerprint).
GEMM_FORMAT_VERSION = 1
# Quant modes the peer's loader never models through the perf tables (skipped at load, as it does).
IGNORED_TABLE_DTYPES = frozenset({"awq", "gptq"})
# The only quant whose static-scale overheads are modelled (fp8_static reads the fp8 rows).
SCALE_TABLE_DTYPE = "fp8"
# Roofline bytes moved per m*k element: compute-scale reads bf16 activations and writes fp8
# (2 B/elem); scale-matrix reads, scales and writes them (3 B/elem).
COMPUTE_SCALE_BYTES_PER_ELEM = 2.0
SCALE_MATRIX_BYTES_PER_ELEM = 3.0


class GemmQuant(NamedTuple):
    """How a GEMM quant mode reads the tables and what its roofline is."""

    table_dtype: str  # gemm_dtype rows it reads
    bytes_per_elem: float  # weight/activation bytes per element in the roofline's memory term
    compute: ComputeDtype  # tensor-core peak that bounds its math
    static_scales: bool = False  # subtract the static-quantization overheads (fp8_static)


# Quant modes by servopt name. "float16" is the experiment YAML's name for bf16 GEMMs.
GEMM_QUANTS: dict[str, GemmQuant] = {
    "float16": GemmQuant("bfloat16", 2.0, "bf16"),
    "bfloat16": GemmQuant("bfloat16", 2.0, "bf16"),
    "fp8": GemmQuant("fp8", 1.0, "fp8"),
    # Static per-tensor fp8: the dynamic-fp8 GEMM minus the activation-scale computation it skips.
    "fp8_static": GemmQuant("fp8", 1.0, "fp8", static_scales=True),
    "fp8_block": GemmQuant("fp8_block", 1.0, "fp8"),
    "fp8_ootb": GemmQuant("fp8_ootb", 1.0, "fp8"),
    "sq": GemmQuant("sq", 1.0, "int8"),
    "int8_wo": GemmQuant("int8_wo", 1.0, "bf16"),
    "int4_wo": GemmQuant("int4_wo", 0.5, "bf16"),
    # nvfp4: 4-bit weights plus one fp8 scale per 16 weights = 9/16 byte per element.
    "nvfp4": GemmQuant("nvfp4", 9 / 16, "fp4"),
    "nvfp4_wo": GemmQuant("nvfp4_wo", 9 / 16, "bf16"),
    "w4a16_nvfp4": GemmQuant("w4a16_nvfp4", 9 / 16, "bf16"),
}


class GemmTables(NamedTuple):
    """Measured GEMM curves and fp8 scale grids of one (system, backend, version), arrays only.

    gemm_dtypes: (D,) str, sorted; dtype d owns sites site_ptr[d]:site_ptr[d + 1].
    site_n, site_k, site_log2_n, site_log2_k: (S,) float64, sorted by (n, k) within a dtype.
    site_rank: (S,) int64, tie order of equidistant donor sites (``_walk_positions``).
    site_axis: (S,) int64, equal for sites measured at exactly the same m values.
    curve_ptr: (S + 1,) int64 into curve_m / curve_ms: (P,) float64, latency floored at the roofline.
    cover_ptr: (D + 1,) int64 into cover_breaks: (B,) float64, each dtype's sorted curve ends.
    compute_scale_m (Mc,), compute_scale_k (Kc,), compute_scale_ms (Mc, Kc): the fp8 grid, NaN where
    not measured; empty when the table is absent. scale_matrix_*: the same for scale-matrix.
    """

    gemm_dtypes: np.ndarray
    site_ptr: np.ndarray
    site_n: np.ndarray
    site_k: np.ndarray
    site_log2_n: np.ndarray
    site_log2_k: np.ndarray
    site_rank: np.ndarray
    site_axis: np.ndarray
    curve_ptr: np.ndarray
    curve_m: np.ndarray
    curve_ms: np.ndarray
    cover_ptr: np.ndarray
    cover_breaks: np.ndarray
    compute_scale_m: np.ndarray
    compute_scale_k: np.ndarray
    compute_scale_ms: np.ndarray
    scale_matrix_m: np.ndarray
    scale_matrix_k: np.ndarray
    scale_matrix_ms: np.ndarray

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(value) for name, value in zip(self._fields, self, strict=True)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> GemmTables:
        missing = [f for f in cls._fields if f not in arrays]
        if missing:
            raise ServoptError("gemm tables", sorted(arrays), f"missing arrays {missing}")
        return cls(**{f: np.asarray(arrays[f]) for f in cls._fields})

    def dtype_index(self, table_dtype: str) -> int:
        hits = np.flatnonzero(self.gemm_dtypes == table_dtype)
        return int(hits[0]) if hits.size else -1

    def sites(self, d: int):
        """The kernel view of dtype d (array views, no copies)."""
        from servopt_kernels.gemm import GemmSites

        s0, s1 = int(self.site_ptr[d]), int(self.site_ptr[d + 1])
        c0, c1 = int(self.cover_ptr[d]), int(self.cover_ptr[d + 1])
        return GemmSites(
            self.site_n[s0:s1],
            self.site_k[s0:s1],
            self.site_log2_n[s0:s1],
            self.site_log2_k[s0:s1],
            self.site_rank[s0:s1],
            self.site_axis[s0:s1],
            self.curve_ptr[s0 : s1 + 1],
            self.curve_m,
            self.curve_ms,
            self.cover_breaks[c0:c1],
        )

    def available_quants(self, system: SystemSpec) -> list[str]:
        """servopt quant names this data (and the system's tensor cores) can answer."""
        names = []
        for name, quant in GEMM_QUANTS.items():
            if self.dtype_index(quant.table_dtype) < 0 or quant.compute not in system.gpu.peak_flops_per_s:
                continue
            if quant.static_scales and self.compute_scale_m.size == 0:
                continue
            names.append(name)
        return names


def _column(table: dict[str, np.ndarray], name: str, what: str) -> np.ndarray:
    if name not in table:
        raise ServoptError(what, sorted(table), f"table has no column {name!r}")
    return np.asarray(table[name])


def _quant_for_dtype(table_dtype: str) -> GemmQuant | None:
    quant = GEMM_QUANTS.get(table_dtype)
    return quant if quant is not None and quant.table_dtype == table_dtype else None


def _walk_positions(dtype_ids: np.ndarray, m: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Each row's position in the walk dtype -> m -> n -> k where every level keeps first-listed
    order (rows are in table order). Equidistant donor sites are taken in the order this walk first
    meets them: the peer keeps its tables in insertion-ordered maps and selects donors stably, so
    this order decides its ties (verified on every tie the h200 tables produce)."""
    rows = np.arange(len(m))
    d = dtype_ids.astype(np.float64)
    first_of_m = _first_row_of(d, m, m)
    first_of_mn = _first_row_of(d, m, n)
    walk = np.lexsort((rows, first_of_mn, first_of_m, dtype_ids))
    pos = np.empty(len(m), dtype=np.int64)
    pos[walk] = rows
    return pos


def _axis_ids(m: np.ndarray, curve_ptr: np.ndarray) -> np.ndarray:
    """An id per site, equal for sites whose curves were measured at exactly the same m values
    (donors sharing an axis share one bracket search per query)."""
    ids: dict[bytes, int] = {}
    out = np.empty(len(curve_ptr) - 1, dtype=np.int64)
    for s in range(len(out)):
        key = m[curve_ptr[s] : curve_ptr[s + 1]].tobytes()
        out[s] = ids.setdefault(key, len(ids))
    return out


def _first_row_of(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """For each row of (a, b, c), the index of the first row with the same values."""
    from servopt_kernels.dedup import unique_cols

    first, inverse = unique_cols([col.astype(np.float64).view(np.int64) for col in (a, b, c)])
    return first[inverse]


def _dtype_rows(dtype_ids: np.ndarray) -> list[np.ndarray]:
    return [np.flatnonzero(dtype_ids == d) for d in range(int(dtype_ids.max(initial=-1)) + 1)]


def _build_sites(gemm: dict[str, np.ndarray] | None, system: SystemSpec) -> dict[str, np.ndarray]:
    from servopt_kernels.gemm import gemm_roofline_batch_ms

    if not gemm or len(_column(gemm, "latency", "gemm_perf")) == 0:
        dtype_names: np.ndarray = np.array([], dtype=str)
        m = n = k = lat = np.array([], dtype=np.float64)
        dtype_ids = np.array([], dtype=np.int64)
    else:
        raw_dtype = _column(gemm, "gemm_dtype", "gemm_perf").astype(str)
        m = _column(gemm, "m", "gemm_perf").astype(np.float64)
        n = _column(gemm, "n", "gemm_perf").astype(np.float64)
        k = _column(gemm, "k", "gemm_perf").astype(np.float64)
        lat = _column(gemm, "latency", "gemm_perf").astype(np.float64)
        keep = ~np.isin(raw_dtype, list(IGNORED_TABLE_DTYPES)) & np.isfinite(lat)
        raw_dtype, m, n, k, lat = raw_dtype[keep], m[keep], n[keep], k[keep], lat[keep]
        dtype_names, dtype_ids = np.unique(raw_dtype, return_inverse=True)
        # Duplicate keys: the first row (the highest-priority source) wins.
        first = np.concatenate(
            [
                rows[_first_row_of(n[rows], k[rows], m[rows]) == np.arange(rows.size)]
                for rows in _dtype_rows(dtype_ids)
            ]
        )
        first.sort()
        dtype_ids, m, n, k, lat = dtype_ids[first], m[first], n[first], k[first], lat[first]
        walk_pos = _walk_positions(dtype_ids, m, n)
        order = np.lexsort((m, k, n, dtype_ids))
        walk_pos = walk_pos[order]
        dtype_ids, m, n, k, lat = dtype_ids[order], m[order], n[order], k[order], lat[order]
        # Floor every measurement at its roofline (a kernel cannot beat speed of light; data that does
        # is a timing artifact). Dtypes without a roofline on this system stay as measured.
        for d, name in enumerate(dtype_names):
            quant = _quant_for_dtype(str(name))
            if quant is None or quant.compute not in system.gpu.peak_flops_per_s:
                continue
            rows = np.flatnonzero(dtype_ids == d)
            sol = np.empty(rows.size)
            gemm_roofline_batch_ms(
                m[rows],
                n[rows],
                k[rows],
                system.flops_per_s(quant.compute),
                system.gpu.mem_bw_bytes_per_s,
                quant.bytes_per_elem,
                sol,
            )
            lat[rows] = np.maximum(lat[rows], sol)

    # Site boundaries: a new site starts wherever (dtype, n, k) changes.
    change = np.ones(len(m), dtype=bool)
    if len(m):
        change[1:] = (dtype_ids[1:] != dtype_ids[:-1]) | (n[1:] != n[:-1]) | (k[1:] != k[:-1])
    starts = np.flatnonzero(change)
    curve_ptr = np.append(starts, len(m)).astype(np.int64)
    site_dtype = dtype_ids[starts]
    site_ptr = np.searchsorted(site_dtype, np.arange(len(dtype_names) + 1)).astype(np.int64)
    site_n = n[starts]
    site_k = k[starts]
    site_rank = np.zeros(len(starts), dtype=np.int64)
    if len(m):
        # A site's tie rank: where it is first met in the walk (its earliest row in walk order).
        first_met = np.minimum.reduceat(walk_pos, starts)
        for d in range(len(dtype_names)):
            s0, s1 = site_ptr[d], site_ptr[d + 1]
            site_rank[s0:s1] = np.argsort(np.argsort(first_met[s0:s1], kind="stable"), kind="stable")
    site_axis = _axis_ids(m, curve_ptr)
    # Curve ends of each dtype, where the set of sites covering m can change.
    breaks, cover_ptr = [], [0]
    for d in range(len(dtype_names)):
        s0, s1 = site_ptr[d], site_ptr[d + 1]
        ends = np.concatenate([m[curve_ptr[s0:s1]], m[curve_ptr[s0 + 1 : s1 + 1] - 1]])
        ends = np.unique(ends)
        breaks.append(ends)
        cover_ptr.append(cover_ptr[-1] + len(ends))
    return {
        "gemm_dtypes": np.asarray(dtype_names, dtype=str),
        "site_ptr": site_ptr,
        "site_n": site_n,
        "site_k": site_k,
        "site_log2_n": np.log2(np.maximum(site_n, 1.0)),
        "site_log2_k": np.log2(np.maximum(site_k, 1.0)),
        "site_rank": site_rank,
        "site_axis": site_axis,
        "curve_ptr": curve_ptr,
        "curve_m": m,
        "curve_ms": lat,
        "cover_ptr": np.asarray(cover_ptr, dtype=np.int64),
        "cover_breaks": np.concatenate(breaks) if breaks else np.array([], dtype=np.float64),
    }


def _build_scale_grid(table: dict[str, np.ndarray] | None, what: str) -> tuple[np.ndarray, ...]:
    empty = (np.array([], dtype=np.float64), np.array([], dtype=np.float64), np.zeros((0, 0)))
    if not table or len(_column(table, "latency", what)) == 0:
        return empty
    dtype = _column(table, "quant_dtype", what).astype(str)
    m = _column(table, "m", what).astype(np.float64)
    k = _column(table, "k", what).astype(np.float64)
    lat = _column(table, "latency", what).astype(np.float64)
    keep = (dtype == SCALE_TABLE_DTYPE) & np.isfinite(lat)
    m, k, lat = m[keep], k[keep], lat[keep]
    if m.size == 0:
        return empty
    m_axis, mi = np.unique(m, return_inverse=True)
    k_axis, ki = np.unique(k, return_inverse=True)
    grid = np.full((m_axis.size, k_axis.size), np.nan)
    # First row wins: write in reverse so earlier rows overwrite later duplicates.
    grid[mi[::-1], ki[::-1]] = lat[::-1]
    return m_axis, k_axis, grid


def build_gemm_tables(
    gemm: dict[str, np.ndarray] | None,
    compute_scale: dict[str, np.ndarray] | None,
    scale_matrix: dict[str, np.ndarray] | None,
    system: SystemSpec,
) -> GemmTables:
    """Turn resolved table columns (parquet names, latency in ms, rows in source priority order)
    into ``GemmTables``. Any table may be None or empty (absent for this backend).

    Row order matters beyond first-wins: it decides which of two equidistant donor sites an
    uncollected (n, k) borrows from (``_walk_positions``), so pass rows in file order.
    """
    arrays = _build_sites(gemm, system)
    cs = _build_scale_grid(compute_scale, "computescale_perf")
    sm = _build_scale_grid(scale_matrix, "scale_matrix_perf")
    arrays.update(compute_scale_m=cs[0], compute_scale_k=cs[1], compute_scale_ms=cs[2])
    arrays.update(scale_matrix_m=sm[0], scale_matrix_k=sm[1], scale_matrix_ms=sm[2])
    return GemmTables.from_arrays(arrays)


# ---------------------------------------------------------------------------------------------
# Queries
# ---------------------------------------------------------------------------------------------


def resolve_quant(quant: str) -> GemmQuant:
    spec = GEMM_QUANTS.get(str(quant))
    if spec is None:
        raise UnknownNameError("quant", quant, "unknown GEMM quant mode", GEMM_QUANTS)
    return spec


def flat_coords(**coords) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Coordinates broadcast together: (their shape, each flattened to a contiguous float64 array);
    anything else is a named error."""
    try:
        arrays = [np.asarray(v, dtype=np.float64) for v in coords.values()]
        shaped = np.broadcast_arrays(*arrays)
    except (TypeError, ValueError) as err:
        names = ", ".join(coords)
        raise ServoptError(names, "", f"coordinates must be numeric and broadcastable: {err}") from None
    shape = shaped[0].shape
    return shape, [np.ascontiguousarray(a).reshape(-1) for a in shaped]


def gemm_raw(tables: GemmTables, system: SystemSpec, spec: GemmQuant, m, n, k):
    """One kernel call over flat (N,) float64 m, n, k: (latency ms, int8 provenance)."""
    from servopt_kernels.gemm import gemm_latency_ms

    d = tables.dtype_index(spec.table_dtype)
    out = np.empty(m.size)
    prov = np.empty(m.size, dtype=np.int8)
    gemm_latency_ms(
        m,
        n,
        k,
        tables.sites(d),
        system.flops_per_s(spec.compute),
        system.gpu.mem_bw_bytes_per_s,
        spec.bytes_per_elem,
        out,
        prov,
    )
    return out, prov


def scale_raw(tables: GemmTables, system: SystemSpec, which: str, m, k):
    """``compute_scale`` or ``scale_matrix`` over flat (N,) float64 m, k: (latency ms, provenance)."""
    from servopt_kernels.gemm import scale_grid_latency_ms

    if which == "compute_scale":
        axes = (tables.compute_scale_m, tables.compute_scale_k, tables.compute_scale_ms)
        bytes_per_elem, ratio_beyond = COMPUTE_SCALE_BYTES_PER_ELEM, False
    else:
        axes = (tables.scale_matrix_m, tables.scale_matrix_k, tables.scale_matrix_ms)
        bytes_per_elem, ratio_beyond = SCALE_MATRIX_BYTES_PER_ELEM, True
    if axes[0].size == 0:
        raise UnknownNameError(
            "table", f"{which}_perf", "not in this database (only fp8_static GEMMs need it)"
        )
    out = np.empty(m.size)
    prov = np.empty(m.size, dtype=np.int8)
    scale_grid_latency_ms(
        m,
        k,
        axes[0],
        axes[1],
        axes[2],
        bytes_per_elem,
        system.gpu.mem_bw_bytes_per_s,
        ratio_beyond,
        out,
        prov,
    )
    return out, prov


def gemm_sol_ms(system: SystemSpec, quant: str, m, n, k) -> np.ndarray:
    """Roofline GEMM latency (ms) from the system spec alone: max(2mnk / peak, bytes / HBM bw)."""
    from servopt_kernels.gemm import gemm_roofline_batch_ms

    spec = resolve_quant(quant)
    flops = system.flops_per_s(spec.compute)
    shape, (fm, fn, fk) = flat_coords(m=m, n=n, k=k)
    out = np.empty(fm.size)
    gemm_roofline_batch_ms(fm, fn, fk, flops, system.gpu.mem_bw_bytes_per_s, spec.bytes_per_elem, out)
    return out.reshape(shape)
