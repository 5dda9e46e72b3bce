"""One queryable performance database per (system, backend, version): measured grids or rooflines.

Every query method takes numeric arguments as array-likes (broadcast together) and categorical
arguments (quant modes, op names) as scalars, and returns float64 latency in ms of ONE op instance,
with the peer's per-op wrappers applied. Slice-key numeric arguments (kv heads, head_dim, window,
MoE shape, GPU counts) may be arrays too: key tuples map to slice ids vectorised and each family
runs ONE kernel call over the deduplicated queries. ``provenance=True`` also returns an int8 array:
0 exact, 1 interpolated, 2 edge-corrected, 3 extrapolated, 4 sol (-1 missing, with ``missing="nan"``).
"""

from __future__ import annotations

import functools
import inspect
from typing import Literal

import numpy as np

from servopt.errors import ServoptError, UnknownNameError
from servopt.perf_db import locate, quant, sol
from servopt.perf_db.build import Built, build_or_load
from servopt.perf_db.families import FAMILIES, PARAM_WIDTH, generation_attention_flops
from servopt.perf_db.grids import GridFamily
from servopt.perf_db.systems import SystemSpec, load_system, system_names
from servopt.resources import cache_dir as resolve_cache_dir
from servopt_kernels import grid as gk

PROV_SOL = 4
Missing = Literal["raise", "nan"]
NCCL_OPS = ("all_gather", "all_reduce", "reduce_scatter", "alltoall")
MLA_BMM_OPS = {"pre": "mla_gen_pre", "post": "mla_gen_post"}
MOE_UNIFORM = "uniform"
# TRT-LLM's min-latency nvfp4 MoE kernel serves gated layers at up to this many tokens.
MOE_LOW_LATENCY_MAX_TOKENS = 128
GATED_GEMMS, NON_GATED_GEMMS = 3, 2


def open_database(
    system: str,
    backend: str = "trtllm",
    version: str | None = None,
    cache_dir: str | None = None,
    sol: bool = False,
) -> PerfDatabase:
    """Open (building on first use, then from the cache) the database of one system/backend/version.

    ``cache_dir`` overrides the cache location (else $SERVOPT_CACHE_DIR, else the user cache).
    """
    spec = load_system(system)
    if spec.roofline_only:
        if backend not in locate.BACKENDS:
            raise UnknownNameError("backend", backend, "unknown backend", locate.BACKENDS)
        return PerfDatabase(system, spec, backend, version or "sol", None, sol=True)
    resolved = locate.resolve_version(spec.measured_data, system, backend, version)
    if sol:
        return PerfDatabase(system, spec, backend, resolved, None, sol=True)
    built = build_or_load(system, spec, backend, resolved, resolve_cache_dir(cache_dir))
    return PerfDatabase(system, spec, backend, resolved, built, sol=False)


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# Keyword flags of the query methods (never query coordinates).
_FLAGS = frozenset({"self", "provenance", "missing", "qk_norm", "gated"})
# Below this many queries deduplication costs more than it saves.
DEDUP_MIN_QUERIES = 64


def _plain(x, dtype) -> np.ndarray:
    """A flat, C-contiguous, writable array (numba types read-only broadcast views differently)."""
    return np.require(np.asarray(x, dtype=dtype).ravel(), dtype=dtype, requirements=["C", "W"])


def _is_numeric(v) -> bool:
    return not isinstance(v, (str, bool, np.str_)) and np.asarray(v).dtype.kind in "iuf"


def batched(fn):
    """Deduplicate identical queries before any work: numeric arguments are broadcast, the distinct
    rows found in one hash pass, ``fn`` runs on those only and the results are scattered back."""
    sig = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        provenance = bound.arguments["provenance"]
        names = [n for n, v in bound.arguments.items() if n not in _FLAGS and _is_numeric(v)]
        arrays = np.broadcast_arrays(*[_arr(bound.arguments[n]) for n in names])
        shape = arrays[0].shape if arrays else ()
        if not arrays or arrays[0].size < DEDUP_MIN_QUERIES:
            return fn(*bound.args, **bound.kwargs)
        flat = [_plain(a, np.float64) for a in arrays]
        first, inverse = gk.unique_cols(tuple(f.view(np.int64) for f in flat))
        for n, f in zip(names, flat, strict=True):
            bound.arguments[n] = f[first]
        bound.arguments["provenance"] = True
        lat, prov = fn(*bound.args, **bound.kwargs)
        lat = np.asarray(lat).ravel()[inverse].reshape(shape)
        prov = np.asarray(prov).ravel()[inverse].reshape(shape)
        return (lat, prov) if provenance else lat

    return wrapper


class PerfDatabase:
    """Batched latency queries over one database (see the module docstring for conventions)."""

    def __init__(
        self, name: str, system: SystemSpec, backend: str, version: str, built: Built | None, sol: bool
    ):
        self.system_name = name
        self.system = system
        self.backend = backend
        self.version = version
        self.sol = sol
        self.roofline_only = system.roofline_only
        self._built = built
        self.families: dict[str, GridFamily] = built.families if built else {}
        self._gemm_tables = None

    # ------------------------------------------------------------------ plumbing
    @property
    def from_cache(self) -> bool:
        return bool(self._built and self._built.from_cache)

    @property
    def table_info(self) -> dict:
        return self._built.table_info if self._built else {}

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
        sid = _plain(slice_ids, np.int64)
        xs = [_plain(c, np.float64) for c in coords]
        first, inverse = gk.unique_cols((sid, *(x.view(np.int64) for x in xs)))
        u_sid = sid[first]
        u_xs = np.empty((len(first), len(xs)))
        for j, x in enumerate(xs):
            u_xs[:, j] = x[first]
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
        cols = [
            _plain(np.broadcast_to(parts[i], shape), np.float64) for i in varying
        ]
        first, inverse = gk.unique_cols(tuple(c.view(np.int64) for c in cols))
        ids = np.empty(len(first), dtype=np.int64)
        for j, row in enumerate(first):
            key = list(scalar)
            for c, i in enumerate(varying):
                key[i] = cols[c][row]
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

    # ------------------------------------------------------------------ attention
    @batched
    def context_attention_ms(
        self, fmha_quant, kv_quant, batch, seq, prefix, num_heads, num_kv_heads, head_dim, window=0,
        *, qk_norm: bool = False, provenance: bool = False, missing: Missing = "raise",
    ):  # fmt: skip
        fm = quant.resolve("fmha_quant", fmha_quant, quant.FMHA_QUANTS)
        kv = quant.resolve("kv_quant", kv_quant, quant.KV_QUANTS)
        b, s, p, n, nkv, hd, w = (
            np.asarray(x)
            for x in np.broadcast_arrays(
                *map(_arr, (batch, seq, prefix, num_heads, num_kv_heads, head_dim, window))
            )
        )
        shape = b.shape
        full = s + p
        extras = sol.attention_extras_ms(self.system, n, nkv, hd, fm.bytes_per_elem, qk_norm, self.sol)
        flops = self._flops(fm.compute)
        if self.sol:
            par = sol.params(b.size)
            par[:, 0], par[:, 1], par[:, 2] = nkv.ravel(), hd.ravel(), w.ravel()
            par[:, 3], par[:, 4], par[:, 5], par[:, 6] = (
                kv.bytes_per_elem,
                flops,
                self.system.gpu.mem_bw_bytes_per_s,
                p.ravel(),
            )
            t = sol.run(gk.SOL_CTX_ATTN, np.column_stack([n.ravel(), full.ravel(), b.ravel()]), par)
            return self._sol_result(np.maximum(t.reshape(shape) + extras, 0.0), shape, provenance)
        nkv_lookup = np.where(nkv == n, 0, nkv).astype(np.int64)
        keys = [fm.name, kv.name, nkv_lookup, hd.astype(np.int64), w.astype(np.int64)]
        sid = self._slices("context_attention", keys)

        def describe(i):
            return f"fmha={fm.name} kv={kv.name} heads={n.flat[i]:g} kv_heads={nkv.flat[i]:g} head_dim={hd.flat[i]:g} window={w.flat[i]:g}"

        if missing == "raise":
            self._require("context_attention", sid, "context_attention", describe, keys)
        fam = self.families["context_attention"]
        mem_bw = self.system.gpu.mem_bw_bytes_per_s

        def params(u):
            par = sol.params(len(u))
            ok = u >= 0
            par[ok, 0] = fam.key_cols[2][u[ok]]
            par[ok, 1] = fam.key_cols[3][u[ok]]
            par[ok, 2] = fam.key_cols[4][u[ok]]
            par[:, 3], par[:, 4], par[:, 5] = kv.bytes_per_elem, flops, mem_bw
            return par

        lat, prov = self._lookup("context_attention", sid, (n, full, b), params)
        lat = lat.reshape(shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.where(full > 0, (full * full - p * p) / (full * full), 0.0)
        total = np.maximum(lat * corr + extras, 0.0)
        return self._finish("context_attention", total, prov, shape, provenance, missing, describe)

    @batched
    def generation_attention_ms(
        self, kv_quant, batch, kv_len, num_heads, num_kv_heads, head_dim, window=0,
        *, provenance: bool = False, missing: Missing = "raise",
    ):  # fmt: skip
        kv = quant.resolve("kv_quant", kv_quant, quant.KV_QUANTS)
        b, s, n, nkv, hd, w = (
            np.asarray(x)
            for x in np.broadcast_arrays(
                *map(_arr, (batch, kv_len, num_heads, num_kv_heads, head_dim, window))
            )
        )
        shape = b.shape
        flops = generation_attention_flops(self.system, kv.name)
        mem_bw = self.system.gpu.mem_bw_bytes_per_s
        if self.sol:
            par = sol.params(b.size)
            par[:, 0], par[:, 1], par[:, 2] = nkv.ravel(), hd.ravel(), w.ravel()
            par[:, 3], par[:, 4], par[:, 5] = kv.bytes_per_elem, flops, mem_bw
            t = sol.run(gk.SOL_GEN_ATTN, np.column_stack([n.ravel(), b.ravel(), s.ravel()]), par)
            return self._sol_result(np.maximum(t, 0.0), shape, provenance)
        nkv_lookup = np.where(nkv == n, 0, nkv).astype(np.int64)
        keys = [kv.name, nkv_lookup, hd.astype(np.int64), w.astype(np.int64)]
        sid = self._slices("generation_attention", keys)

        def describe(i):
            return f"kv={kv.name} heads={n.flat[i]:g} kv_heads={nkv.flat[i]:g} head_dim={hd.flat[i]:g} window={w.flat[i]:g}"

        if missing == "raise":
            self._require("generation_attention", sid, "generation_attention", describe, keys)
        fam = self.families["generation_attention"]

        def params(u):
            par = sol.params(len(u))
            ok = u >= 0
            par[ok, 0] = fam.key_cols[1][u[ok]]
            par[ok, 1] = fam.key_cols[2][u[ok]]
            par[ok, 2] = fam.key_cols[3][u[ok]]
            par[:, 3], par[:, 4], par[:, 5] = kv.bytes_per_elem, flops, mem_bw
            return par

        lat, prov = self._lookup("generation_attention", sid, (n, b, s), params, avg_axis=2)
        return self._finish(
            "generation_attention", np.maximum(lat, 0.0), prov, shape, provenance, missing, describe
        )

    # ------------------------------------------------------------------ MLA
    def _mla_context(self, family, key, kv, flops, batch, seq, prefix, num_heads, provenance, missing, what):
        b, s, p, n = (np.asarray(x) for x in np.broadcast_arrays(*map(_arr, (batch, seq, prefix, num_heads))))
        shape = b.shape
        full = s + p
        mem_bw = self.system.gpu.mem_bw_bytes_per_s

        def fill(par, prefix_col):
            par[:, 0], par[:, 1], par[:, 2], par[:, 3] = kv.bytes_per_elem, flops, mem_bw, prefix_col
            return par

        if self.sol:
            par = fill(sol.params(b.size), p.ravel())
            t = sol.run(gk.SOL_CTX_MLA, np.column_stack([n.ravel(), full.ravel(), b.ravel()]), par)
            return self._sol_result(np.maximum(t, 0.0), shape, provenance)
        sid = np.broadcast_to(self._slices(family, list(key)), shape)

        def describe(i):
            return f"{what} heads={n.flat[i]:g} batch={b.flat[i]:g} seq={s.flat[i]:g} prefix={p.flat[i]:g}"

        if missing == "raise":
            self._require(family, sid, family, describe, list(key))
        lat, prov = self._lookup(family, sid, (n, full, b), lambda u: fill(sol.params(len(u)), 0.0))
        lat = lat.reshape(shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.where(full > 0, (full * full - p * p) / (full * full), 0.0)
        return self._finish(family, np.maximum(lat * corr, 0.0), prov, shape, provenance, missing, describe)

    @batched
    def context_mla_ms(
        self,
        fmha_quant,
        kv_quant,
        batch,
        seq,
        prefix,
        num_heads,
        *,
        provenance=False,
        missing: Missing = "raise",
    ):
        fm = quant.resolve("fmha_quant", fmha_quant, quant.FMHA_QUANTS)
        kv = quant.resolve("kv_quant", kv_quant, quant.KV_QUANTS)
        return self._mla_context(
            "context_mla", (fm.name, kv.name), kv, self._flops(fm.compute), batch, seq, prefix, num_heads,
            provenance, missing, f"fmha={fm.name} kv={kv.name}",
        )  # fmt: skip

    @batched
    def generation_mla_ms(
        self, kv_quant, batch, kv_len, num_heads, *, provenance=False, missing: Missing = "raise"
    ):
        kv = quant.resolve("kv_quant", kv_quant, quant.KV_QUANTS)
        return self._mla_generation(
            "generation_mla",
            (kv.name,),
            kv,
            None,
            batch,
            kv_len,
            num_heads,
            provenance,
            missing,
            f"kv={kv.name}",
        )

    def _mla_generation(self, family, key, kv, gemm, batch, kv_len, num_heads, provenance, missing, what):
        b, s, n = (np.asarray(x) for x in np.broadcast_arrays(*map(_arr, (batch, kv_len, num_heads))))
        shape = b.shape
        kind = gk.SOL_GEN_MLA if gemm is None else gk.SOL_GEN_MLA_MODULE
        attn_flops = generation_attention_flops(self.system, kv.name)
        mem_bw = self.system.gpu.mem_bw_bytes_per_s

        def fill(par):
            par[:, 0], par[:, 1], par[:, 2] = kv.bytes_per_elem, attn_flops, mem_bw
            if gemm is not None:
                par[:, 3], par[:, 4] = gemm.bytes_per_elem, self._flops(gemm.compute)
            return par

        if self.sol:
            t = sol.run(kind, np.column_stack([n.ravel(), b.ravel(), s.ravel()]), fill(sol.params(b.size)))
            return self._sol_result(np.maximum(t, 0.0), shape, provenance)
        sid = np.broadcast_to(self._slices(family, list(key)), shape)

        def describe(i):
            return f"{what} heads={n.flat[i]:g} batch={b.flat[i]:g} kv_len={s.flat[i]:g}"

        if missing == "raise":
            self._require(family, sid, family, describe, list(key))
        lat, prov = self._lookup(family, sid, (n, b, s), lambda u: fill(sol.params(len(u))))
        return self._finish(family, np.maximum(lat, 0.0), prov, shape, provenance, missing, describe)

    @batched
    def mla_module_ms(
        self, phase, gemm_quant, kv_quant, batch, seq_or_kv_len, prefix, num_heads, fmha_quant="bfloat16",
        *, provenance=False, missing: Missing = "raise",
    ):  # fmt: skip
        from servopt.perf_db.gemm import GEMM_QUANTS

        kv = quant.resolve("kv_quant", kv_quant, quant.KV_QUANTS)
        if gemm_quant not in GEMM_QUANTS:
            raise UnknownNameError("gemm_quant", gemm_quant, "unknown quantization mode", sorted(GEMM_QUANTS))
        gq = GEMM_QUANTS[gemm_quant]
        gemm = quant.QuantMode(gq.table_dtype, gq.bytes_per_elem, gq.compute)
        if phase == "context":
            fm = quant.resolve("fmha_quant", fmha_quant, quant.FMHA_QUANTS)
            return self._mla_context(
                "mla_context_module", (fm.name, kv.name, gemm.name), kv, self._flops(fm.compute), batch,
                seq_or_kv_len, prefix, num_heads, provenance, missing, f"fmha={fm.name} kv={kv.name} gemm={gemm.name}",
            )  # fmt: skip
        if phase == "generation":
            return self._mla_generation(
                "mla_generation_module", (kv.name, gemm.name), kv, gemm, batch, seq_or_kv_len, num_heads,
                provenance, missing, f"kv={kv.name} gemm={gemm.name}",
            )  # fmt: skip
        raise UnknownNameError("phase", phase, "unknown MLA module phase", ["context", "generation"])

    @batched
    def mla_bmm_ms(
        self, op, quant_mode, num_tokens, num_heads, *, provenance=False, missing: Missing = "raise"
    ):
        if op not in MLA_BMM_OPS:
            raise UnknownNameError("op", op, "unknown MLA BMM op", sorted(MLA_BMM_OPS))
        q = quant.resolve("quant", quant_mode, quant.BMM_QUANTS)
        t, n = (np.asarray(x) for x in np.broadcast_arrays(_arr(num_tokens), _arr(num_heads)))
        shape = t.shape
        mem_bw = self.system.gpu.mem_bw_bytes_per_s
        flops = self._flops(q.compute)
        if self.sol:
            par = sol.params(t.size)
            par[:, 0], par[:, 1], par[:, 2], par[:, 3] = n.ravel(), q.bytes_per_elem, flops, mem_bw
            return self._sol_result(sol.run(gk.SOL_MLA_BMM, t.reshape(-1, 1), par), shape, provenance)
        fam = self.families["mla_bmm"]
        name = MLA_BMM_OPS[op]
        # Rows in the requested quant, else the bf16 rows (the roofline keeps the requested quant).
        stored = (
            q.name
            if any(fam.key_cols[0][i] == q.name and fam.key_cols[1][i] == name for i in range(fam.num_slices))
            else "bfloat16"
        )
        heads = n.astype(np.int64)
        pow2 = np.where(heads > 0, 2 ** np.ceil(np.log2(np.maximum(heads, 1))).astype(np.int64), heads)
        exact = self._slices("mla_bmm", [stored, name, heads])
        use_pow2 = (pow2 != heads) & (exact < 0)
        slice_heads = np.where(use_pow2, pow2, heads)
        scale = np.where(use_pow2, heads / np.maximum(pow2, 1), 1.0)
        sid = self._slices("mla_bmm", [stored, name, slice_heads])

        def describe(i):
            return f"op={op} quant={q.name} heads={n.flat[i]:g} tokens={t.flat[i]:g}"

        if missing == "raise":
            self._require("mla_bmm", sid, "mla_bmm", describe, [stored, name, slice_heads])

        def params(u):
            par = sol.params(len(u))
            ok = u >= 0
            par[ok, 0] = fam.key_cols[2][u[ok]]
            par[:, 1], par[:, 2], par[:, 3] = q.bytes_per_elem, flops, mem_bw
            return par

        lat, prov = self._lookup("mla_bmm", sid, (t,), params)
        return self._finish(
            "mla_bmm", np.maximum(lat.reshape(shape) * scale, 0.0), prov, shape, provenance, missing, describe
        )

    # ------------------------------------------------------------------ MoE
    @batched
    def moe_ms(
        self, quant_mode, distribution, topk, num_experts, hidden, inter, moe_tp, moe_ep, num_tokens,
        *, gated: bool = True, provenance=False, missing: Missing = "raise",
    ):  # fmt: skip
        q = quant.resolve("moe_quant", quant_mode, quant.MOE_QUANTS)
        arrs = np.broadcast_arrays(*map(_arr, (topk, num_experts, hidden, inter, moe_tp, moe_ep, num_tokens)))
        k, e, h, i_, tp, ep, tok = (np.asarray(a) for a in arrs)
        shape = tok.shape
        mem_bw = self.system.gpu.mem_bw_bytes_per_s
        flops = self._flops(q.compute)
        gemms = GATED_GEMMS if gated else NON_GATED_GEMMS

        def shape_params(par, kk, ee, hh, ii, tt, pp):
            par[:, 0], par[:, 1], par[:, 2], par[:, 3], par[:, 4], par[:, 5] = kk, ee, hh, ii, tt, pp
            par[:, 6], par[:, 7], par[:, 8], par[:, 9] = gemms, q.bytes_per_elem, flops, mem_bw
            return par

        if self.sol:
            par = shape_params(sol.params(tok.size), *(a.ravel() for a in (k, e, h, i_, tp, ep)))
            return self._sol_result(sol.run(gk.SOL_MOE, tok.reshape(-1, 1), par), shape, provenance)
        ints = [a.astype(np.int64) for a in (k, e, h, i_, tp, ep)]
        sid = self._slices("moe", [0, q.name, str(distribution), *ints])
        if (sid < 0).any() and distribution != MOE_UNIFORM:
            fallback = self._slices("moe", [0, q.name, MOE_UNIFORM, *ints])
            sid = np.where(sid < 0, fallback, sid)
        fam = self.families["moe"]
        if q.name == "nvfp4" and gated:
            ll = self._slices("moe", [1, q.name, str(distribution), *ints])
            if (ll < 0).any() and distribution != MOE_UNIFORM:
                ll = np.where(ll < 0, self._slices("moe", [1, q.name, MOE_UNIFORM, *ints]), ll)
            sid = np.where((tok <= MOE_LOW_LATENCY_MAX_TOKENS) & (ll >= 0), ll, sid)

        def describe(j):
            return (
                f"quant={q.name} dist={distribution} topk={k.flat[j]:g} experts={e.flat[j]:g} hidden={h.flat[j]:g} "
                f"inter={i_.flat[j]:g} moe_tp={tp.flat[j]:g} moe_ep={ep.flat[j]:g} tokens={tok.flat[j]:g}"
            )

        if missing == "raise":
            self._require("moe", sid, "moe", describe, [0, q.name, str(distribution), *ints])

        def params(u):
            ok = u >= 0
            cols = [np.zeros(len(u)) for _ in range(6)]
            for c, kc in zip(cols, fam.key_cols[3:9], strict=True):
                c[ok] = kc[u[ok]]
            return shape_params(sol.params(len(u)), *cols)

        lat, prov = self._lookup("moe", sid, (tok,), params)
        # A curve with a single measured point cannot define the low-token floor below it.
        sid_flat = sid.ravel()
        ok = sid_flat >= 0
        single = np.zeros(sid_flat.shape, dtype=bool)
        single[ok] = (fam.leaf_off[sid_flat[ok] + 1] - fam.leaf_off[sid_flat[ok]]) == 1
        below = np.zeros(sid_flat.shape, dtype=bool)
        below[single] = tok.ravel()[single] < fam.leaf_coord[fam.leaf_off[sid_flat[single]], 0]
        lat = np.where(below, np.nan, lat)
        prov = np.where(below, -1, prov)
        return self._finish("moe", np.maximum(lat, 0.0), prov, shape, provenance, missing, describe)

    # ------------------------------------------------------------------ communication
    @batched
    def custom_allreduce_ms(self, num_gpus, message_elems, *, provenance=False, missing: Missing = "raise"):
        g, m = (np.asarray(x) for x in np.broadcast_arrays(_arr(num_gpus), _arr(message_elems)))
        shape = g.shape
        if self.sol:
            return self._sol_result(sol.custom_allreduce_ms(self.system, g, m), shape, provenance)
        fam = self.families["custom_allreduce"]
        measured = fam.key_cols[0] if fam.num_slices else np.zeros(0, dtype=np.int64)
        cap = int(measured.max()) if measured.size else self.system.node.gpus_per_node
        return self._comm("custom_allreduce", [], g, m, cap, provenance, missing, "custom_allreduce")

    @batched
    def nccl_ms(self, op, dtype, num_gpus, message_elems, *, provenance=False, missing: Missing = "raise"):
        if op not in NCCL_OPS:
            raise UnknownNameError("op", op, "unknown collective", NCCL_OPS)
        dt = quant.resolve("dtype", dtype, quant.COMM_QUANTS, quant.COMM_ALIASES)
        g, m = (np.asarray(x) for x in np.broadcast_arrays(_arr(num_gpus), _arr(message_elems)))
        shape = g.shape
        if self.sol:
            return self._sol_result(sol.nccl_ms(self.system, op, dt.bytes_per_elem, g, m), shape, provenance)
        fam = self.families["nccl"]
        sel = [
            int(fam.key_cols[2][i])
            for i in range(fam.num_slices)
            if fam.key_cols[0][i] == dt.name and fam.key_cols[1][i] == op
        ]
        cap = max(sel) if sel else 0
        return self._comm("nccl", [dt.name, op], g, m, cap, provenance, missing, f"nccl {op} dtype={dt.name}")

    def _comm(self, family, key, g, m, cap, provenance, missing, what):
        """Collectives: tp <= 1 is free; beyond the largest measured fan-out, scale the boundary curve
        by the ring-traffic ratio and the link-bandwidth ratio."""
        shape = g.shape
        eff = np.minimum(g, cap) if cap > 0 else g
        sid = self._slices(family, [*key, eff.astype(np.int64)])
        active = g > 1
        sid = np.where(active, sid, -2)

        def describe(i):
            return f"{what} num_gpus={g.flat[i]:g} elems={m.flat[i]:g}"

        if missing == "raise":
            self._require(family, np.where(sid == -2, 0, sid), family, describe, [*key, eff.astype(np.int64)])
        lat, prov = self._lookup(family, np.maximum(sid, -1), (m,), lambda u: sol.params(len(u)))
        lat = lat.reshape(shape)
        prov = prov.reshape(shape)
        over = active & (g > eff)
        if over.any():
            gm = np.where(over, g, 2.0)
            em = np.where(over, eff, 2.0)
            factor = (gm - 1.0) / gm * em / np.maximum(em - 1.0, 1.0)
            factor = factor * sol.collective_bw(self.system, em) / sol.collective_bw(self.system, gm)
            lat = np.where(over, lat * factor, lat)
        lat = np.where(active, lat, 0.0)
        prov = np.where(active, prov, 0).astype(np.int8)
        return self._finish(family, np.maximum(lat, 0.0), prov, shape, provenance, missing, describe)

    # ------------------------------------------------------------------ GEMM family (perf_db.gemm)
    def _gemm(self):
        from servopt.perf_db import gemm as gemm_mod

        if self._gemm_tables is None:
            self._gemm_tables = gemm_mod.GemmTables.from_arrays(self._built.gemm_arrays)
        return gemm_mod, self._gemm_tables

    def gemm_ms(
        self,
        quant_mode,
        m,
        n,
        k,
        *,
        low_precision_input: bool = False,
        provenance=False,
        missing: Missing = "raise",
    ):
        if self.sol:
            from servopt.perf_db.gemm import gemm_sol_ms

            lat = gemm_sol_ms(self.system, quant_mode, m, n, k)
            return self._sol_result(lat, np.shape(lat), provenance)
        mod, tables = self._gemm()
        return mod.gemm_ms(
            tables,
            self.system,
            quant_mode,
            m,
            n,
            k,
            provenance,
            low_precision_input=low_precision_input,
            missing=missing,
        )

    def compute_scale_ms(self, m, k, *, provenance=False, missing: Missing = "raise"):
        if self.sol:
            return self._sol_result(
                sol.scale_ms(self.system, m, k, "compute_scale"), np.broadcast(m, k).shape, provenance
            )
        mod, tables = self._gemm()
        return mod.compute_scale_ms(tables, self.system, m, k, provenance, missing=missing)

    def scale_matrix_ms(self, m, k, *, provenance=False, missing: Missing = "raise"):
        if self.sol:
            return self._sol_result(
                sol.scale_ms(self.system, m, k, "scale_matrix"), np.broadcast(m, k).shape, provenance
            )
        mod, tables = self._gemm()
        return mod.scale_matrix_ms(tables, self.system, m, k, provenance, missing=missing)

    # ------------------------------------------------------------------ analytic
    def mem_op_ms(self, nbytes):
        return sol.mem_op_ms(self.system, nbytes, self.sol)

    def p2p_ms(self, nbytes):
        return sol.p2p_ms(self.system, nbytes, self.sol)


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


def known_systems() -> list[str]:
    return system_names()
