"""Context and generation attention queries (GQA/MHA, optional sliding window)."""

from __future__ import annotations

import numpy as np

from servopt.perf_db import quant, sol
from servopt.perf_db.families import generation_attention_flops
from servopt.perf_db.query_base import Missing, QueryBase, _arr, batched
from servopt_kernels import grid as gk


class AttentionQueries(QueryBase):
    @batched
    def context_attention_ms(
        self, fmha_quant, kv_quant, batch, seq, prefix, num_heads, num_kv_heads, head_dim, window=0,
        *, qk_norm: bool = False, fused_extras: bool = True, provenance: bool = False,
        missing: Missing = "raise",
    ):  # fmt: skip
        """``fused_extras=False``: the attention kernel alone, without the fused rope / KV-write /
        qk-norm side-ops (the second chunk of a context-parallel zigzag pair: the peer adds them
        once per pair)."""
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
        if not fused_extras:
            extras = np.zeros_like(extras)
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

        # Roofline row: kv heads, head dim, window (the slice key after the dtypes).
        params = sol.slice_params(fam, (2, 3, 4), (kv.bytes_per_elem, flops, mem_bw))
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

        params = sol.slice_params(fam, (1, 2, 3), (kv.bytes_per_elem, flops, mem_bw))
        lat, prov = self._lookup("generation_attention", sid, (n, b, s), params, avg_axis=2)
        return self._finish(
            "generation_attention", np.maximum(lat, 0.0), prov, shape, provenance, missing, describe
        )
