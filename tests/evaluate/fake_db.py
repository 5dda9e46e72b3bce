"""A synthetic perf database: smooth closed-form latencies for every query of the contract.

Lets the batched evaluator be checked against a plain-Python naive evaluation without measured
data. Every method broadcasts its numeric arguments and returns float64 ms; ``missing="nan"``
is accepted. ``module_heads_covered`` restricts the MLA module table to some head counts, so the
fallback path is exercised.
"""

from __future__ import annotations

import numpy as np

_QUANT_SPEED = {"float16": 1.0, "fp8": 1.7, "fp8_block": 1.6, "fp8_static": 1.8}


def _a(*xs):
    return np.broadcast_arrays(*(np.asarray(x, dtype=np.float64) for x in xs))


class FakeDatabase:
    def __init__(self, module_heads_covered: tuple[int, ...] | None = None) -> None:
        self.module_heads_covered = module_heads_covered
        self.calls: dict[str, int] = {}

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def gemm_ms(self, quant, m, n, k, *, low_precision_input=False, missing="raise"):
        self._count("gemm")
        m, n, k = _a(m, n, k)
        return 0.004 + 2e-12 * m * n * k / _QUANT_SPEED[quant] + 1e-9 * n * k

    def mem_op_ms(self, nbytes):
        self._count("mem")
        (b,) = _a(nbytes)
        return 0.003 + b / 3.84e9

    def p2p_ms(self, nbytes):
        self._count("p2p")
        (b,) = _a(nbytes)
        return 0.01 + b / 5e7

    def custom_allreduce_ms(self, num_gpus, elems, *, missing="raise"):
        self._count("allreduce")
        g, e = _a(num_gpus, elems)
        return 0.006 + 4e-9 * e * (g - 1) / g

    def nccl_ms(self, op, dtype, num_gpus, elems, *, missing="raise"):
        self._count("nccl")
        g, e = _a(num_gpus, elems)
        factor = {"all_gather": 1.0, "reduce_scatter": 1.1, "all_reduce": 2.0}[op]
        return 0.01 + factor * 2e-9 * e * (g - 1) / g

    def moe_ms(self, quant, distribution, topk, experts, hidden, inter, moe_tp, moe_ep, tokens, *, gated=True,
               missing="raise"):  # fmt: skip
        self._count("moe")
        t, e, h, i, mtp, mep, tok = _a(topk, experts, hidden, inter, moe_tp, moe_ep, tokens)
        skew = 1.3 if distribution.endswith("1.2") else 1.1
        return (
            0.02
            + skew * 6e-12 * tok * t * h * i / (mtp * mep) / _QUANT_SPEED[quant]
            + 1e-10 * h * i * e / mep
        )

    def context_attention_ms(self, fmha, kv, batch, seq, prefix, heads, kv_heads, head_dim, window=0, *,
                             qk_norm=False, fused_extras=True, missing="raise"):  # fmt: skip
        self._count("ctx_attn")
        b, s, p, n, nkv, d, _w = _a(batch, seq, prefix, heads, kv_heads, head_dim, window)
        full = s + p
        extras = (0.001 + (0.002 if qk_norm else 0.0)) if fused_extras else 0.0
        return 0.004 + 1e-10 * b * n * d * (full * full - p * p) + 1e-7 * nkv + extras

    def generation_attention_ms(
        self, kv, batch, seq, heads, kv_heads, head_dim, window=0, *, missing="raise"
    ):
        self._count("gen_attn")
        b, s, n, nkv, d, _w = _a(batch, seq, heads, kv_heads, head_dim, window)
        return 0.004 + 3e-9 * b * nkv * d * s + 1e-6 * n

    def context_mla_ms(self, fmha, kv, batch, seq, prefix, heads, *, missing="raise"):
        self._count("ctx_mla")
        b, s, p, n = _a(batch, seq, prefix, heads)
        return 0.006 + 2e-10 * b * n * ((s + p) ** 2 - p * p)

    def generation_mla_ms(self, kv, batch, seq, heads, *, missing="raise"):
        self._count("gen_mla")
        b, s, n = _a(batch, seq, heads)
        return 0.005 + 4e-9 * b * s * 576 / 128 + 1e-6 * n

    def mla_bmm_ms(self, op, quant, tokens, heads, *, missing="raise"):
        self._count("mla_bmm")
        t, n = _a(tokens, heads)
        return 0.003 + (1.2 if op == "pre" else 1.0) * 1e-7 * t * n

    def mla_module_ms(self, phase, gemm_quant, kv_quant, batch, seq, prefix, heads, fmha_quant="float16", *,
                      missing="raise"):  # fmt: skip
        self._count("mla_module")
        b, s, p, n = _a(batch, seq, prefix, heads)
        base = 0.05 + (3e-10 * b * n * ((s + p) ** 2 - p * p) if phase == "context" else 6e-9 * b * s * n)
        if self.module_heads_covered is not None:
            base = np.where(np.isin(n, self.module_heads_covered), base, np.nan)
        return base
