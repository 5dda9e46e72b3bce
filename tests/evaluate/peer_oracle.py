"""The peer (aiconfigurator-core 0.12.0) run as an oracle for the latency model's tests.

Only tests import this module; it needs the peer installed (callers guard with
``pytest.importorskip``). It builds the peer's model for the same architecture, layout and quant
modes, and runs its static / aggregated sessions on the peer's own database of the same data.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from functools import cache
from pathlib import Path

from servopt.models.arch import ModelArch
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout

# servopt quant names -> the peer's enum member names.
_PEER_QUANT = {"float16": "bfloat16"}

# Peer versions of the h200_sxm data servopt compares against (the peer's "current" slot).
PEER_VERSIONS = {"trtllm": "1.3.0rc20", "vllm": "0.24.0", "sglang": "0.5.14"}


def _quiet() -> None:
    for name in ("aiconfigurator_core", "aiconfigurator"):
        logging.getLogger(name).setLevel(logging.ERROR)


@cache
def peer_database(system: str, backend: str, version: str | None = None):
    _quiet()
    from aiconfigurator_core.sdk.perf_database import get_database

    return get_database(system, backend, version or PEER_VERSIONS[backend])


@cache
def _model_path(hf_id: str) -> str:
    """A model path the peer resolves offline: its bundled HF id, else a folder with the config."""
    from aiconfigurator_core.sdk.common import DefaultHFModels

    if hf_id in DefaultHFModels:
        return hf_id
    import aiconfigurator_core

    bundled = (
        Path(aiconfigurator_core.__file__).parent
        / "model_configs"
        / f"{hf_id.replace('/', '--')}_config.json"
    )
    folder = Path(tempfile.mkdtemp(prefix="servopt_peer_model_"))
    shutil.copy(bundled, folder / "config.json")
    return str(folder)


def _peer_quant(common, enum_name: str, value: str):
    return getattr(common, enum_name)[_PEER_QUANT.get(value, value)]


def peer_model(arch: ModelArch, layout: Layout, quant: QuantModes, backend: str, nextn: int = 0):
    _quiet()
    from aiconfigurator_core.sdk import common, config
    from aiconfigurator_core.sdk.models import get_model

    mc = config.ModelConfig(
        tp_size=layout.tp,
        pp_size=layout.pp,
        attention_dp_size=layout.dp,
        moe_tp_size=layout.moe_tp if arch.is_moe else None,
        moe_ep_size=layout.moe_ep if arch.is_moe else None,
        cp_size=layout.cp,
        gemm_quant_mode=_peer_quant(common, "GEMMQuantMode", quant.gemm),
        moe_quant_mode=_peer_quant(common, "MoEQuantMode", quant.moe),
        kvcache_quant_mode=_peer_quant(common, "KVCacheQuantMode", quant.kvcache),
        fmha_quant_mode=_peer_quant(common, "FMHAQuantMode", quant.fmha),
        nextn=nextn,
    )
    return get_model(_model_path(arch.hf_id), mc, backend)


def peer_op_specs(ops) -> list[dict]:
    """The peer's op list in its wire form: ``[{"Gemm": {...}}, ...]``."""
    return [json.loads(op._spec_json()) for op in ops]


def peer_weight_bytes(model) -> float:
    return float(sum(op.get_weights() for op in model.context_ops))


def peer_backend(backend: str):
    from aiconfigurator_core.sdk.backends.factory import get_backend

    return get_backend(backend)


def peer_static(
    model,
    backend: str,
    batch: int,
    isl: int,
    osl: int,
    mode: str = "static",
    prefix: int = 0,
    system: str = "h200_sxm",
    correction: float = 1.0,
):
    """The peer's run_static summary (per-op dicts, result row, memory)."""
    from aiconfigurator_core.sdk import config

    rc = config.RuntimeConfig(batch_size=batch, isl=isl, osl=osl, prefix=prefix)
    return peer_backend(backend).run_static(
        model, peer_database(system, backend), rc, mode, latency_correction_scale=correction
    )


def peer_agg(
    model,
    backend: str,
    batch: int,
    ctx_tokens: int,
    isl: int,
    osl: int,
    system: str = "h200_sxm",
    decode_tokens_per_iteration: float | None = None,
):
    from aiconfigurator_core.sdk import config

    rc = config.RuntimeConfig(batch_size=batch, isl=isl, osl=osl)
    kwargs = {"ctx_tokens": ctx_tokens}
    if decode_tokens_per_iteration is not None:
        kwargs["decode_tokens_per_iteration"] = decode_tokens_per_iteration
    return peer_backend(backend).run_agg(model, peer_database(system, backend), rc, **kwargs)


def summary_row(summary) -> dict:
    """The peer's result row as a plain dict (static: ColumnsStatic; agg: ColumnsAgg)."""
    df = summary.get_summary_df()
    return {k: df[k].iloc[0] for k in df.columns}


class PeerOpDatabase:
    """servopt's PerfDatabase query contract answered point by point by the peer's own op queries.

    Lets the composition (op lists, scales, quadrature, scheduling, memory) be checked against the
    peer independently of servopt's grid interpolation. Slow (one peer call per distinct point):
    tests only, small batches. ``context_attention_ms`` returns the table part only (the peer's op
    minus its fused extras), as servopt's database does; the model layer adds the extras.
    """

    def __init__(self, system: str, backend: str, version: str | None = None) -> None:
        _quiet()
        from aiconfigurator_core.sdk import common
        from aiconfigurator_core.sdk import operations as ops
        from aiconfigurator_core.sdk.engine import _evaluate_single_op

        self._db = peer_database(system, backend, version)
        self._ops = ops
        self._common = common
        self._eval = _evaluate_single_op
        self._cache: dict[tuple, float] = {}
        self.calls = 0

    def _point(self, key: tuple, make_op, **kwargs) -> float:
        value = self._cache.get(key)
        if value is None:
            self.calls += 1
            try:
                value = float(self._eval(self._db, make_op(), **kwargs))
            except Exception:  # the peer's typed data miss
                value = float("nan")
            self._cache[key] = value
        return value

    def _map(self, fn, *arrays, missing="raise"):
        import numpy as np

        from servopt.errors import ServoptError

        arrays = np.broadcast_arrays(*(np.asarray(a) for a in arrays))
        out = np.empty(arrays[0].shape, dtype=np.float64)
        for idx in np.ndindex(out.shape):
            out[idx] = fn(*(a[idx].item() for a in arrays))
        if missing == "raise" and np.isnan(out).any():
            raise ServoptError("peer", "query", "the peer's data cannot answer this query")
        return out

    def _q(self, enum: str, value: str):
        return _peer_quant(self._common, enum, value)

    def gemm_ms(self, quant, m, n, k, low_precision_input=False, missing="raise"):
        def one(m, n, k):
            def op():
                return self._ops.GEMM(
                    "g",
                    1,
                    int(n),
                    int(k),
                    self._q("GEMMQuantMode", quant),
                    low_precision_input=low_precision_input,
                )

            return self._point(
                ("gemm", quant, low_precision_input, m, n, k),
                op,
                is_context=True,
                batch_size=1,
                s=1,
                x=int(m),
            )

        return self._map(one, m, n, k, missing=missing)

    def mem_op_ms(self, nbytes):
        def one(b):
            if b % 2:
                gpu = self._db.system_spec["gpu"]
                scaled = gpu["mem_bw"] * gpu["mem_bw_empirical_scaling_factor"]
                return (b / scaled + gpu["mem_empirical_constant_latency"]) * 1000.0
            # An element-wise op of b / 2 input elements per token (2 bytes each), one token.
            op = lambda: self._ops.ElementWise("e", 1, int(b // 2), 0)  # noqa: E731
            return self._point(("mem", b), op, is_context=True, batch_size=1, s=1, x=1)

        return self._map(one, nbytes)

    def p2p_ms(self, nbytes):
        def one(b):
            op = lambda: self._ops.P2P("p", 1, int(b // 2), 2)  # noqa: E731
            return self._point(("p2p", b), op, is_context=True, batch_size=1, s=1, x=1)

        return self._map(one, nbytes)

    def custom_allreduce_ms(self, num_gpus, elems, missing="raise"):
        def one(g, e):
            op = lambda: self._ops.CustomAllReduce("ar", 1, int(e), int(g))  # noqa: E731
            return self._point(("ar", g, e), op, is_context=True, batch_size=1, s=1, x=1)

        return self._map(one, num_gpus, elems, missing=missing)

    def nccl_ms(self, collective, dtype, num_gpus, elems, missing="raise"):
        def one(g, e):
            def op():
                return self._ops.NCCL(
                    "n",
                    1,
                    collective,
                    float(e),
                    int(g),
                    self._common.CommQuantMode[dtype],
                )

            return self._point(("nccl", collective, g, e), op, is_context=True, batch_size=1, s=1, x=1)

        return self._map(one, num_gpus, elems, missing=missing)

    def moe_ms(
        self,
        quant,
        distribution,
        topk,
        experts,
        hidden,
        inter,
        moe_tp,
        moe_ep,
        tokens,
        gated=True,
        missing="raise",
    ):
        def one(t, e, h, i, mtp, mep, tok):
            def op():
                return self._ops.MoE(
                    "m",
                    1,
                    int(h),
                    int(i),
                    int(t),
                    int(e),
                    int(mtp),
                    int(mep),
                    self._q("MoEQuantMode", quant),
                    distribution,
                    1,
                )

            return self._point(
                ("moe", quant, distribution, t, e, h, i, mtp, mep, tok),
                op,
                is_context=True,
                batch_size=1,
                s=1,
                x=int(tok),
            )

        return self._map(one, topk, experts, hidden, inter, moe_tp, moe_ep, tokens, missing=missing)

    def context_attention_ms(
        self,
        fmha,
        kv,
        batch,
        seq,
        prefix,
        heads,
        kv_heads,
        head_dim,
        window=0,
        qk_norm=False,
        missing="raise",
    ):
        def one(b, s, p, n, nkv, d, w):
            def op():
                return self._ops.ContextAttention(
                    "a",
                    1,
                    int(n),
                    int(nkv),
                    self._q("KVCacheQuantMode", kv),
                    self._q("FMHAQuantMode", fmha),
                    window_size=int(w),
                    head_size=int(d),
                    use_qk_norm=qk_norm,
                )

            return self._point(
                ("ctx", fmha, kv, qk_norm, b, s, p, n, nkv, d, w),
                op,
                is_context=True,
                batch_size=int(b),
                s=int(s),
                prefix=int(p),
            )

        return self._map(one, batch, seq, prefix, heads, kv_heads, head_dim, window, missing=missing)

    def generation_attention_ms(self, kv, batch, seq, heads, kv_heads, head_dim, window=0, missing="raise"):
        def one(b, s, n, nkv, d, w):
            def op():
                return self._ops.GenerationAttention(
                    "a",
                    1,
                    int(n),
                    int(nkv),
                    self._q("KVCacheQuantMode", kv),
                    window_size=int(w),
                    head_size=int(d),
                )

            return self._point(
                ("gen", kv, b, s, n, nkv, d, w), op, is_context=False, batch_size=int(b), s=int(s)
            )

        return self._map(one, batch, seq, heads, kv_heads, head_dim, window, missing=missing)

    def context_mla_ms(self, fmha, kv, batch, seq, prefix, heads, missing="raise"):
        def one(b, s, p, n):
            def op():
                return self._ops.ContextMLA(
                    "a",
                    1,
                    int(n),
                    self._q("KVCacheQuantMode", kv),
                    self._q("FMHAQuantMode", fmha),
                )

            return self._point(
                ("cmla", fmha, kv, b, s, p, n),
                op,
                is_context=True,
                batch_size=int(b),
                s=int(s),
                prefix=int(p),
            )

        return self._map(one, batch, seq, prefix, heads, missing=missing)

    def generation_mla_ms(self, kv, batch, seq, heads, missing="raise"):
        def one(b, s, n):
            op = lambda: self._ops.GenerationMLA("a", 1, int(n), self._q("KVCacheQuantMode", kv))  # noqa: E731
            return self._point(("gmla", kv, b, s, n), op, is_context=False, batch_size=int(b), s=int(s))

        return self._map(one, batch, seq, heads, missing=missing)

    def mla_bmm_ms(self, which, quant, tokens, heads, missing="raise"):
        def one(t, n):
            def op():
                return self._ops.MLABmm(
                    "b",
                    1,
                    int(n),
                    self._q("GEMMQuantMode", quant),
                    if_pre=(which == "pre"),
                )

            return self._point(("bmm", which, quant, t, n), op, is_context=False, batch_size=int(t), s=1)

        return self._map(one, tokens, heads, missing=missing)

    def mla_module_ms(
        self, phase, gemm_quant, kv_quant, batch, seq, prefix, heads, fmha_quant="float16", missing="raise"
    ):
        def one(b, s, p, n):
            def op():
                return self._ops.MLAModule(
                    "m",
                    1,
                    phase == "context",
                    int(n),
                    self._q("KVCacheQuantMode", kv_quant),
                    self._q("FMHAQuantMode", fmha_quant),
                    self._q("GEMMQuantMode", gemm_quant),
                    native_num_heads=128,
                )

            return self._point(
                ("mod", phase, gemm_quant, kv_quant, fmha_quant, b, s, p, n),
                op,
                is_context=phase == "context",
                batch_size=int(b),
                s=int(s),
                prefix=int(p),
            )

        return self._map(one, batch, seq, prefix, heads, missing=missing)
