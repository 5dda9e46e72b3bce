"""aiconfigurator-core as a test oracle: the peer's own latency for one op at one point.

Tests only (servopt's runtime never imports the peer). Each op configuration is serialised once; every
query point is one call into the peer's compiled engine (``evaluate_ops_json``), ~40 us each.
Unanswerable points come back as NaN.
"""

from __future__ import annotations

import logging
import math
from functools import cache

import numpy as np


class PeerOracle:
    def __init__(self, system: str, backend: str, version: str | None = None):
        from aiconfigurator_core.sdk import common, engine, perf_database
        from aiconfigurator_core.sdk import operations as ops

        logging.getLogger("aiconfigurator_core").setLevel(logging.ERROR)
        self.common, self.engine, self.ops = common, engine, ops
        version = version or perf_database.get_latest_database_version(system, backend)
        self.db = perf_database.get_database(system, backend, version)
        self.version = version
        self.handle = engine._probe_handle_for(self.db, None)

    @cache  # noqa: B019 - one oracle per test module, keyed by op configuration
    def _ops_json(self, kind: str, *args) -> str:
        c, ops = self.common, self.ops
        if kind == "ctx_attn":
            fmha, kv, n, nkv, hd, w = args
            op = ops.ContextAttention(
                "a", 1, n, nkv, c.KVCacheQuantMode[kv], c.FMHAQuantMode[fmha], window_size=w, head_size=hd
            )
            self.engine._resolve_attention_lane_orders([op], self.db, None)
        elif kind == "gen_attn":
            kv, n, nkv, hd, w = args
            op = ops.GenerationAttention("a", 1, n, nkv, c.KVCacheQuantMode[kv], window_size=w, head_size=hd)
            self.engine._resolve_attention_lane_orders([op], self.db, None)
        elif kind == "ctx_mla":
            fmha, kv, n = args
            op = ops.ContextMLA("m", 1, n, c.KVCacheQuantMode[kv], c.FMHAQuantMode[fmha])
        elif kind == "gen_mla":
            kv, n = args
            op = ops.GenerationMLA("m", 1, n, c.KVCacheQuantMode[kv])
        elif kind == "mla_module":
            is_ctx, gemm, kv, fmha, n = args
            op = ops.MLAModule(
                "m", 1, is_ctx, n, c.KVCacheQuantMode[kv], c.FMHAQuantMode[fmha], c.GEMMQuantMode[gemm]
            )
        elif kind == "mla_bmm":
            pre, quant, n = args
            op = ops.MLABmm("b", 1, n, c.GEMMQuantMode[quant], pre)
        elif kind == "moe":
            quant, dist, topk, e, h, inter, tp, ep, gated = args
            op = ops.MoE("e", 1, h, inter, topk, e, tp, ep, c.MoEQuantMode[quant], dist, 1, is_gated=gated)
        elif kind == "allreduce":
            (tp,) = args
            op = ops.CustomAllReduce("r", 1, 1, tp)
        elif kind == "nccl":
            op_name, dtype, n = args
            op = ops.NCCL("n", 1, op_name, 1.0, n, c.CommQuantMode[dtype])
        else:  # pragma: no cover
            raise ValueError(kind)
        return self.engine.build_ops_json([op])

    def _eval(self, js: str, is_context: bool, batch: int = 1, s: int = 1, prefix: int = 0, x=None) -> float:
        try:
            out = self.handle.evaluate_ops_json(
                js, is_context=is_context, batch_size=int(batch), s=int(s), prefix=int(prefix),
                x=None if x is None else int(x),
            )  # fmt: skip
            v = float(out[0][1])
            return v if math.isfinite(v) else math.nan
        except Exception:
            return math.nan

    def context_attention(self, fmha, kv, b, s, prefix, n, nkv, hd, w=0) -> float:
        return self._eval(
            self._ops_json("ctx_attn", fmha, kv, int(n), int(nkv), int(hd), int(w)), True, b, s, prefix
        )

    def generation_attention(self, kv, b, s, n, nkv, hd, w=0) -> float:
        return self._eval(self._ops_json("gen_attn", kv, int(n), int(nkv), int(hd), int(w)), False, b, s)

    def context_mla(self, fmha, kv, b, s, prefix, n) -> float:
        return self._eval(self._ops_json("ctx_mla", fmha, kv, int(n)), True, b, s, prefix)

    def generation_mla(self, kv, b, s, n) -> float:
        return self._eval(self._ops_json("gen_mla", kv, int(n)), False, b, s)

    def mla_module(self, phase, gemm, kv, b, s, prefix, n, fmha="bfloat16") -> float:
        ctx = phase == "context"
        return self._eval(
            self._ops_json("mla_module", ctx, gemm, kv, fmha, int(n)), ctx, b, s, prefix if ctx else 0
        )

    def mla_bmm(self, op, quant, tokens, n) -> float:
        # Decode-phase op: its token count is the decode batch.
        return self._eval(self._ops_json("mla_bmm", op == "pre", quant, int(n)), False, tokens, 1)

    def moe(self, quant, dist, topk, e, h, inter, tp, ep, tokens, gated=True) -> float:
        js = self._ops_json(
            "moe", quant, dist, int(topk), int(e), int(h), int(inter), int(tp), int(ep), gated
        )
        return self._eval(js, True, 1, 1, x=tokens)

    def custom_allreduce(self, tp, elems) -> float:
        return self._eval(self._ops_json("allreduce", int(tp)), True, 1, 1, x=elems)

    def nccl(self, op, dtype, n, elems) -> float:
        return self._eval(self._ops_json("nccl", op, dtype, int(n)), True, 1, 1, x=elems)


def many(fn, rows) -> np.ndarray:
    """Evaluate ``fn(*row)`` for every row."""
    return np.array([fn(*r) for r in rows], dtype=np.float64)
