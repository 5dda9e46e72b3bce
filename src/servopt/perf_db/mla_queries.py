"""Multi-head latent attention queries: op-level context/generation, whole-module, absorption BMMs."""

from __future__ import annotations

import numpy as np

from servopt.errors import UnknownNameError
from servopt.perf_db import quant, sol
from servopt.perf_db.families import generation_attention_flops
from servopt.perf_db.query_base import Missing, QueryBase, _arr, batched
from servopt_kernels import grid as gk

MLA_BMM_OPS = {"pre": "mla_gen_pre", "post": "mla_gen_post"}


class MlaQueries(QueryBase):
    def _mla_context(
        self, family, key, kv, flops, batch, seq, prefix, num_heads, provenance, missing, what, gemm_bytes=0.0
    ):
        b, s, p, n = (np.asarray(x) for x in np.broadcast_arrays(*map(_arr, (batch, seq, prefix, num_heads))))
        shape = b.shape
        full = s + p
        mem_bw = self.system.gpu.mem_bw_bytes_per_s

        def fill(par, prefix_col):
            par[:, 0], par[:, 1], par[:, 2], par[:, 3] = kv.bytes_per_elem, flops, mem_bw, prefix_col
            par[:, 4] = gemm_bytes  # read by the wide-EP MLA roofline only
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

    def _mla_generation(
        self, family, key, kv, gemm, batch, kv_len, num_heads, provenance, missing, what, gemm_bytes=0.0
    ):
        b, s, n = (np.asarray(x) for x in np.broadcast_arrays(*map(_arr, (batch, kv_len, num_heads))))
        shape = b.shape
        kind = gk.SOL_GEN_MLA if gemm is None else gk.SOL_GEN_MLA_MODULE
        attn_flops = generation_attention_flops(self.system, kv.name)
        mem_bw = self.system.gpu.mem_bw_bytes_per_s

        def fill(par):
            par[:, 0], par[:, 1], par[:, 2] = kv.bytes_per_elem, attn_flops, mem_bw
            if gemm is not None:
                par[:, 3], par[:, 4] = gemm.bytes_per_elem, self._flops(gemm.compute)
            elif gemm_bytes:
                par[:, 3] = gemm_bytes  # the wide-EP MLA roofline's projection weights
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

        params = sol.slice_params(fam, (2,), (q.bytes_per_elem, flops, mem_bw))  # heads
        lat, prov = self._lookup("mla_bmm", sid, (t,), params)
        return self._finish(
            "mla_bmm", np.maximum(lat.reshape(shape) * scale, 0.0), prov, shape, provenance, missing, describe
        )
