"""Mixture-of-experts expert-compute queries (token curves per model shape and layout)."""

from __future__ import annotations

import numpy as np

from servopt.perf_db import quant, sol
from servopt.perf_db.query_base import Missing, QueryBase, _arr, batched
from servopt_kernels import grid as gk
from servopt_kernels.primitives import PROV_MISSING

MOE_UNIFORM = "uniform"
# TRT-LLM's min-latency nvfp4 MoE kernel serves gated layers at up to this many tokens.
MOE_LOW_LATENCY_MAX_TOKENS = 128
GATED_GEMMS, NON_GATED_GEMMS = 3, 2


def expert_roofline_tail(query: QueryBase, q: quant.QuantMode, gated: bool) -> tuple[float, ...]:
    """Roofline parameters 6..9 of an expert-GEMM row: GEMMs per expert, weight bytes per element,
    peak flops and memory bandwidth (the first six are the row's shape)."""
    gemms = GATED_GEMMS if gated else NON_GATED_GEMMS
    return gemms, q.bytes_per_elem, query._flops(q.compute), query.system.gpu.mem_bw_bytes_per_s


def drop_below_single_point(fam, sid: np.ndarray, tok: np.ndarray, lat: np.ndarray, prov: np.ndarray):
    """Points below the only measured token count of their curve become misses (flat): a curve with a
    single measured point cannot define the low-token floor below it."""
    sid_flat = sid.ravel()
    ok = sid_flat >= 0
    single = np.zeros(sid_flat.shape, dtype=bool)
    single[ok] = (fam.leaf_off[sid_flat[ok] + 1] - fam.leaf_off[sid_flat[ok]]) == 1
    below = np.zeros(sid_flat.shape, dtype=bool)
    below[single] = tok.ravel()[single] < fam.leaf_coord[fam.leaf_off[sid_flat[single]], 0]
    return np.where(below, np.nan, lat), np.where(below, PROV_MISSING, prov)


class MoeQueries(QueryBase):
    def measured_moe_quants(self) -> list[str]:
        """The MoE quant modes (table names) with measured expert rows here; none when roofline-only."""
        fam = self.families.get("moe")
        if fam is None:
            return []
        return sorted(set(fam.key_cols[fam.key_names.index("moe_dtype")].tolist()))

    @batched
    def moe_ms(
        self, quant_mode, distribution, topk, num_experts, hidden, inter, moe_tp, moe_ep, num_tokens,
        *, gated: bool = True, provenance=False, missing: Missing = "raise",
    ):  # fmt: skip
        q = quant.resolve("moe_quant", quant_mode, quant.MOE_QUANTS)
        arrs = np.broadcast_arrays(*map(_arr, (topk, num_experts, hidden, inter, moe_tp, moe_ep, num_tokens)))
        k, e, h, i_, tp, ep, tok = (np.asarray(a) for a in arrs)
        shape = tok.shape
        tail = expert_roofline_tail(self, q, gated)

        def shape_params(par, kk, ee, hh, ii, tt, pp):
            par[:, 0], par[:, 1], par[:, 2], par[:, 3], par[:, 4], par[:, 5] = kk, ee, hh, ii, tt, pp
            par[:, 6:10] = tail
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

        # Roofline row: topk, experts, hidden, inter, moe tp, moe ep (the slice key's shape).
        lat, prov = self._lookup("moe", sid, (tok,), sol.slice_params(fam, range(3, 9), tail))
        lat, prov = drop_below_single_point(fam, sid, tok, lat, prov)
        return self._finish("moe", np.maximum(lat, 0.0), prov, shape, provenance, missing, describe)
