"""GEMM and fp8 quantization-overhead queries, on the plumbing every family shares (``QueryBase``:
up-front deduplication, roofline results, provenance); the tables and kernel calls are in
``perf_db.gemm``.

``fp8_static`` is the fp8 GEMM minus the compute-scale overhead (and minus the scale-matrix one
when ``low_precision_input``: the activation already arrives in fp8), floored at its roofline.
A query the data cannot anchor raises ``ServoptError`` (``missing="raise"``) or yields NaN with
provenance -1 (``missing="nan"``); a coordinate that is not finite and positive is always an error.
"""

from __future__ import annotations

import numpy as np

from servopt.errors import ServoptError, UnknownNameError
from servopt.perf_db import gemm, sol
from servopt.perf_db.query_base import Missing, QueryBase, batched
from servopt_kernels.primitives import PROV_INVALID, PROV_MISSING, PROV_SOL

# GEMM batches repeat (m, n, k) from two queries on: deduplicate every batch.
GEMM_DEDUP_MIN_QUERIES = 2


def _check(prov, names, coords, what, missing: Missing) -> None:
    """Bad coordinates are always an error; queries nothing anchors are one when ``missing="raise"``."""
    bad = np.flatnonzero(prov == PROV_INVALID)
    if bad.size:
        i = bad[0]
        point = ", ".join(f"{nm}={c[i]!r}" for nm, c in zip(names, coords, strict=True))
        raise ServoptError(
            "/".join(names), point, f"{what}: coordinates must be finite and positive ({bad.size} bad)"
        )
    if missing == "raise":
        miss = np.flatnonzero(prov == PROV_MISSING)
        if miss.size:
            i = miss[0]
            point = ", ".join(f"{nm}={c[i]:g}" for nm, c in zip(names, coords, strict=True))
            raise ServoptError(
                what,
                point,
                f"no measured point within reach to anchor this query ({miss.size} such queries)",
            )


def _result(out_ms, prov, shape, provenance: bool):
    out_ms = out_ms.reshape(shape)
    return (out_ms, prov.reshape(shape)) if provenance else out_ms


class GemmQueries(QueryBase):
    """GEMM, compute-scale and scale-matrix latencies (ms) of one database."""

    _gemm_tables: gemm.GemmTables | None = None

    def gemm_tables(self) -> gemm.GemmTables:
        """The database's GEMM tables (array views of the build, made on first use)."""
        if self._gemm_tables is None:
            self._gemm_tables = gemm.GemmTables.from_arrays(self._built.gemm_arrays)
        return self._gemm_tables

    @batched(min_queries=GEMM_DEDUP_MIN_QUERIES)
    def gemm_ms(
        self, quant_mode, m, n, k,
        *, low_precision_input: bool = False, provenance=False, missing: Missing = "raise",
    ):  # fmt: skip
        """Latency (ms) of one (m x k) @ (k x n) GEMM per query; m, n, k broadcast together."""
        if self.sol:
            lat = gemm.gemm_sol_ms(self.system, quant_mode, m, n, k)
            return self._sol_result(lat, np.shape(lat), provenance)
        tables = self.gemm_tables()
        spec = gemm.resolve_quant(quant_mode)
        if tables.dtype_index(spec.table_dtype) < 0 or (
            spec.static_scales and tables.compute_scale_m.size == 0
        ):
            raise UnknownNameError(
                "quant",
                quant_mode,
                "no GEMM data for this quant mode here",
                tables.available_quants(self.system),
            )
        self.system.flops_per_s(spec.compute)  # a system without these tensor cores is a named error
        shape, (fm, fn, fk) = gemm.flat_coords(m=m, n=n, k=k)
        coords, what = (fm, fn, fk), f"gemm {quant_mode}"
        out, prov = gemm.gemm_raw(tables, self.system, spec, fm, fn, fk)
        if spec.static_scales:
            _check(prov, ("m", "n", "k"), coords, what, missing)
            cs, cs_prov = gemm.scale_raw(tables, self.system, "compute_scale", fm, fk)
            out = out - cs
            prov = np.maximum(prov, cs_prov)
            if low_precision_input:
                sm, sm_prov = gemm.scale_raw(tables, self.system, "scale_matrix", fm, fk)
                out = out - sm
                prov = np.maximum(prov, sm_prov)
            floor = gemm.gemm_sol_ms(self.system, quant_mode, fm, fn, fk)
            # Independently interpolated tables can cross; the path still contains the GEMM.
            floored = out < floor
            out = np.maximum(np.where(floored, floor, out), 0.0)
            prov = np.where(floored, PROV_SOL, prov).astype(np.int8)
            prov[np.isnan(out)] = PROV_MISSING
        _check(prov, ("m", "n", "k"), coords, what, missing)
        return _result(out, prov, shape, provenance)

    def _scale_query(self, which: str, m, k, provenance: bool, missing: Missing):
        if self.sol:
            return self._sol_result(
                sol.scale_ms(self.system, m, k, which), np.broadcast(m, k).shape, provenance
            )
        shape, (fm, fk) = gemm.flat_coords(m=m, k=k)
        out, prov = gemm.scale_raw(self.gemm_tables(), self.system, which, fm, fk)
        _check(prov, ("m", "k"), (fm, fk), which, missing)
        return _result(out, prov, shape, provenance)

    @batched(min_queries=GEMM_DEDUP_MIN_QUERIES)
    def compute_scale_ms(self, m, k, *, provenance=False, missing: Missing = "raise"):
        """Latency (ms) the dynamic fp8 GEMM spends computing activation scales, which static fp8
        skips. Beyond the measured (m, k) envelope the boundary value is held flat (a measured delta)."""
        return self._scale_query("compute_scale", m, k, provenance, missing)

    @batched(min_queries=GEMM_DEDUP_MIN_QUERIES)
    def scale_matrix_ms(self, m, k, *, provenance=False, missing: Missing = "raise"):
        """Latency (ms) of scaling an (m x k) activation to fp8. Beyond the measured envelope the
        boundary utilization is held and the roofline (3 bytes per element) carries the growth."""
        return self._scale_query("scale_matrix", m, k, provenance, missing)
