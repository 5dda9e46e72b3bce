"""Plumbing shared by every family's batched queries (grid families and GEMM): up-front
deduplication, key -> slice ids, one kernel call per family, provenance, and errors that name the
missing slice."""

from __future__ import annotations

import functools
import inspect
from typing import Literal

import numpy as np

from servopt.errors import ServoptError
from servopt.hardware import SystemSpec
from servopt.perf_db.families import FAMILIES, PARAM_WIDTH
from servopt.perf_db.grids import GridFamily
from servopt_kernels import dedup
from servopt_kernels import grid as gk
from servopt_kernels.primitives import PROV_SOL

Missing = Literal["raise", "nan"]


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# Keyword flags of the query methods (never query coordinates).
_FLAGS = frozenset({"self", "provenance", "missing", "qk_norm", "fused_extras", "gated"})
# Below this many queries deduplication costs more than it saves.
DEDUP_MIN_QUERIES = 64


def _distinct(shape: tuple, arrays: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of numeric arrays broadcast to ``shape`` (compared as float64 bit patterns):
    (first, inverse, distinct), ``distinct[j]`` the contiguous float64 column of ``arrays[j]``."""
    n = int(np.prod(shape))
    if len(arrays) <= 3 and all(np.shape(a) == shape for a in arrays):
        # Up to three full-size columns (a GEMM batch's m, n, k): hashed in place, no matrix copy.
        cols = [np.ascontiguousarray(a, dtype=np.float64).reshape(n) for a in arrays]
        # The kernel's one signature (and the AOT export's) takes writeable arrays only.
        cols = [c if c.flags.writeable else c.copy() for c in cols]
        bits = [c.view(np.int64) for c in cols]
        first, inverse = dedup.unique_bits3(bits[0], bits[min(1, len(bits) - 1)], bits[-1])
        return first, inverse, np.stack([c[first] for c in cols])
    bits, floats = dedup.bit_matrix(len(arrays), n)
    # Broadcast straight into the matrix: one contiguous copy per argument.
    fields = floats.reshape(len(arrays), *shape)
    for j, a in enumerate(arrays):
        fields[j] = a
    first, inverse = dedup.unique_bits(bits)
    return first, inverse, np.take(floats, first, axis=1)


def _is_numeric(v) -> bool:
    return not isinstance(v, (str, bool, np.str_)) and np.asarray(v).dtype.kind in "iuf"


def batched(fn=None, *, min_queries: int = DEDUP_MIN_QUERIES):
    """Deduplicate identical queries before any work: numeric arguments are broadcast, the distinct
    rows found in one hash pass, ``fn`` runs on those only and the results are scattered back.
    ``@batched`` or ``@batched(min_queries=N)`` (batches of fewer queries run as they are)."""
    if fn is None:
        return lambda f: batched(f, min_queries=min_queries)
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        provenance = bound.arguments["provenance"]
        numeric = {n: _arr(v) for n, v in bound.arguments.items() if n not in _FLAGS and _is_numeric(v)}
        # Only arguments that vary across the batch take part; scalars stay scalars.
        names = [n for n, a in numeric.items() if a.size > 1]
        try:
            shape = np.broadcast_shapes(*[a.shape for a in numeric.values()]) if numeric else ()
        except ValueError:
            names = []  # not broadcastable: ``fn`` names the problem
        if not names or int(np.prod(shape)) < min_queries:
            return fn(*bound.args, **bound.kwargs)
        _, inverse, distinct = _distinct(shape, [numeric[n] for n in names])
        for n, col in zip(names, distinct, strict=True):
            bound.arguments[n] = col
        bound.arguments["provenance"] = True
        lat, prov = fn(*bound.args, **bound.kwargs)
        lat = np.asarray(lat).ravel()[inverse].reshape(shape)
        prov = np.asarray(prov).ravel()[inverse].reshape(shape)
        return (lat, prov) if provenance else lat

    return wrapper


def _norm_key(row) -> tuple:
    out = []
    for v in row:
        if isinstance(v, (np.floating, float)) and float(v).is_integer():
            out.append(int(v))
        elif isinstance(v, np.generic):
            out.append(v.item())
        else:
            out.append(v)
    return tuple(out)


class QueryBase:
    """State and helpers the per-family query mixins share (set up by ``PerfDatabase``)."""

    system: SystemSpec
    sol: bool
    families: dict[str, GridFamily]
    system_name: str
    backend: str
    version: str
    _built: object

    @property
    def from_cache(self) -> bool:
        return bool(self._built and self._built.from_cache)

    @property
    def table_info(self) -> dict:
        return self._built.table_info if self._built else {}

    @property
    def borrowed_tables(self) -> list[dict]:
        """Measured rows this database takes from other versions (or backends) than its own:
        ``{"table", "backend", "version", "channel", "rows"}`` per contributing source."""
        return [{"table": t, **b} for t, info in self.table_info.items() for b in info.get("borrowed", ())]

    def borrowed_summary(self, relevant=None) -> str | None:
        """One line naming every borrowed table and where it came from (None: nothing borrowed).
        ``relevant(table) -> bool`` keeps only the tables a run can use."""
        items = [b for b in self.borrowed_tables if relevant is None or relevant(b["table"])]
        if not items:
            return None
        parts = []
        for b in items:
            where = b["version"] if b["backend"] == self.backend else f"{b['backend']} {b['version']}"
            parts.append(f"{b['table']} <- {where} ({b['rows']} rows)")
        return (
            f"{self.system_name}/{self.backend} {self.version} borrows measured data from other versions: "
            + "; ".join(parts)
        )

    def _flops(self, dtype) -> float:
        if dtype is None:
            return np.nan
        return self.system.flops_per_s(dtype)

    def _lookup(
        self, family: str, slice_ids, coords, param_fn, avg_axis: int = -1
    ) -> tuple[np.ndarray, np.ndarray]:
        """One kernel call over the distinct (slice, coords) rows; params built per distinct row."""
        fam = self.families[family]
        spec = FAMILIES[family]
        sid = np.asarray(slice_ids, dtype=np.int64).ravel()
        bits, floats = dedup.bit_matrix(1 + len(coords), len(sid))
        bits[0] = sid
        for j, c in enumerate(coords):
            floats[1 + j] = np.asarray(c, dtype=np.float64).ravel()
        first, inverse = dedup.unique_bits(bits)
        u_sid = bits[0, first]
        u_xs = np.ascontiguousarray(np.take(floats[1:], first, axis=1).T)
        par = param_fn(u_sid) if len(first) else np.zeros((0, PARAM_WIDTH))
        out = np.empty(len(first))
        prov = np.empty(len(first), dtype=np.int8)
        gk.grid_lookup(
            *fam.kernel_args(), fam.ndim, spec.sol_kind, spec.sqrt_axis, avg_axis,
            u_sid, u_xs, np.ascontiguousarray(par), out, prov,
        )  # fmt: skip
        return out[inverse], prov[inverse]

    def _slices(self, family: str, keys: list) -> np.ndarray:
        """Vectorised key -> slice id; each key part is a scalar or a numeric array (broadcast).

        Batches carry few distinct keys: the varying parts are hash-deduplicated and each distinct key
        is looked up once.
        """
        fam = self.families[family]
        parts = [np.asarray(k) for k in keys]
        shape = np.broadcast_shapes(*[p.shape for p in parts])
        varying = [i for i, p in enumerate(parts) if p.size > 1 or (p.ndim > 0 and p.size != 1)]
        scalar = [p.item() if p.size == 1 else None for p in parts]
        if not varying:
            return np.full(shape, fam.slice_id(_norm_key(scalar)), dtype=np.int64)
        if any(parts[i].dtype.kind not in "iuf" for i in varying):
            raise ServoptError(family, "key", "categorical key parts must be scalars")
        if int(np.prod(shape)) == 0:
            return np.zeros(shape, dtype=np.int64)
        first, inverse, distinct = _distinct(shape, [parts[i] for i in varying])
        ids = np.empty(len(first), dtype=np.int64)
        for j in range(len(first)):
            key = list(scalar)
            for c, i in enumerate(varying):
                key[i] = distinct[c, j]
            ids[j] = fam.slice_id(_norm_key(key))
        return ids[inverse].reshape(shape)

    def _finish(self, op: str, lat, prov, shape, provenance: bool, missing: Missing, describe):
        lat = np.asarray(lat, dtype=np.float64).reshape(shape)
        prov = np.asarray(prov, dtype=np.int8).reshape(shape)
        bad = ~np.isfinite(lat)
        if missing == "raise" and bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            raise ServoptError(op, describe(i), f"no measured data can answer this query on {self.label()}")
        if provenance:
            return lat, prov
        return lat

    def _sol_result(self, lat, shape, provenance: bool):
        lat = np.asarray(lat, dtype=np.float64).reshape(shape)
        if provenance:
            return lat, np.full(shape, PROV_SOL, dtype=np.int8)
        return lat

    def label(self) -> str:
        return f"{self.system_name}/{self.backend}/{self.version}" + (" (sol)" if self.sol else "")

    def _require(self, family: str, sid: np.ndarray, op: str, describe, keys=None) -> None:
        """Raise naming the first query whose slice is not measured, and the slices that are (those
        sharing the query's categorical key parts)."""
        missing_idx = np.flatnonzero(np.asarray(sid).ravel() < 0)
        if missing_idx.size == 0:
            return
        i = int(missing_idx[0])
        fam = self.families[family]
        fixed: dict[int, object] = {}
        if keys is not None:
            for j, arr in enumerate(np.broadcast_arrays(*[np.asarray(k) for k in keys])):
                v = arr.ravel()[i]
                if isinstance(v, (str, np.str_)):
                    fixed[j] = str(v)
        have = []
        for s_ in range(fam.num_slices):
            key = fam.key(s_)
            if all(key[j] == v for j, v in fixed.items()):
                have.append(
                    " ".join(
                        f"{n}={v}"
                        for j, (n, v) in enumerate(zip(fam.key_names, key, strict=True))
                        if j not in fixed
                    )
                )
        where = " ".join(f"{fam.key_names[j]}={v}" for j, v in fixed.items())
        raise ServoptError(
            op,
            describe(i),
            f"no measured slice on {self.label()}" + (f"; measured for {where}" if where else ""),
            sorted(set(have)) or ["(nothing)"],
        )
