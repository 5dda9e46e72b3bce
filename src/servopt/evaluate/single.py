"""One configuration end to end: the engine behind ``servopt cli estimate``.

Resolves names (model, system, backend, version, quant defaults), validates the layout, evaluates
the requested mode and returns plain data: metrics, the per-op breakdown per phase, and memory.
A configuration that does not fit in GPU memory, or that the measured data cannot price, is a
:class:`servopt.errors.ServoptError` with one line saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from servopt.errors import OutOfMemoryError, ServoptError, UnknownNameError
from servopt.evaluate.agg import run_agg
from servopt.evaluate.calibration import adjusted_latencies, is_neutral, schedule
from servopt.evaluate.candidates import Candidates, ModelSetup, Workload, build_layout_ops
from servopt.evaluate.memory import Memory
from servopt.evaluate.nextn import expected_accepted_tokens
from servopt.evaluate.phase import PhaseLatency
from servopt.evaluate.static import MODES, run_static
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout
from servopt.models.quant_modes import MOE_QUANTS
from servopt.perf_db import quant as perf_quant

if TYPE_CHECKING:
    from servopt.simulate.adjust import Adjustments

ESTIMATE_MODES = (*MODES, "agg")


@dataclass(frozen=True)
class OpRow:
    phase: str  # context | generation | mix_step | decode_step
    name: str
    latency_ms: float


@dataclass
class Estimate:
    """Metrics of one configuration (ms, per-second rates, GiB)."""

    config: dict
    ttft_ms: float
    tpot_ms: float
    request_latency_ms: float
    tokens_per_s: float
    tokens_per_s_per_gpu: float
    tokens_per_s_per_user: float
    seq_per_s: float
    concurrency: float
    gpus: int
    memory_gib: float
    memory: dict[str, float]
    ops: list[OpRow] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "config": self.config,
            "ttft_ms": self.ttft_ms,
            "tpot_ms": self.tpot_ms,
            "request_latency_ms": self.request_latency_ms,
            "tokens_per_s": self.tokens_per_s,
            "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
            "tokens_per_s_per_user": self.tokens_per_s_per_user,
            "seq_per_s": self.seq_per_s,
            "concurrency": self.concurrency,
            "gpus": self.gpus,
            "memory_gib": self.memory_gib,
            "memory": self.memory,
            "ops": [{"phase": o.phase, "name": o.name, "latency_ms": o.latency_ms} for o in self.ops],
            **({"schedule": self.extra} if self.extra else {}),
        }


def resolve_moe_split(
    is_moe: bool, tp: int, dp: int, moe_tp: int | None, moe_ep: int | None, cp: int = 1
) -> tuple[int, int]:
    """Fill a missing expert split: both missing -> pure expert parallelism over tp*dp*cp GPUs."""
    if not is_moe:
        return moe_tp or 1, moe_ep or 1
    width = tp * dp * cp
    what = "tp*dp" if cp == 1 else "tp*dp*cp"
    if moe_tp is None and moe_ep is None:
        return 1, width
    if moe_tp is None:
        if moe_ep <= 0 or width % moe_ep:
            raise ServoptError("moe_ep", moe_ep, f"must divide {what} = {width}")
        return width // moe_ep, moe_ep
    if moe_ep is None:
        if moe_tp <= 0 or width % moe_tp:
            raise ServoptError("moe_tp", moe_tp, f"must divide {what} = {width}")
        return moe_tp, width // moe_tp
    return moe_tp, moe_ep


def _rows(phase: str, lat: PhaseLatency | None) -> list[OpRow]:
    if lat is None:
        return []
    return [OpRow(phase, n, float(v)) for n, v in zip(lat.names, lat.per_op_ms[0], strict=True)]


def _memory_dict(mem: Memory) -> dict[str, float]:
    return {
        k: float(getattr(mem, k)[0]) for k in ("weights", "activations", "kvcache", "nccl", "others", "total")
    }


def _check_priced(rows: list[OpRow], what: str) -> None:
    bad = [r.name for r in rows if not np.isfinite(r.latency_ms)]
    if bad:
        raise ServoptError(
            "configuration", what, f"the measured data cannot price {', '.join(sorted(set(bad)))}"
        )


def estimate_config(
    db,
    setup: ModelSetup,
    layout: Layout,
    work: Workload,
    *,
    mode: str,
    batch_size: int,
    ctx_tokens: int | None = None,
    accept_rates: Sequence[float] | None = None,
    latency_correction: float = 1.0,
    check_memory: bool = True,
) -> Estimate:
    if mode not in ESTIMATE_MODES:
        raise UnknownNameError("mode", mode, "unknown mode", ESTIMATE_MODES)
    for name, value in (("isl", work.isl), ("osl", work.osl), ("batch_size", batch_size)):
        if value < 1:
            raise ServoptError(name, value, "must be >= 1")
    if not 0 <= work.prefix < work.isl:
        raise ServoptError("prefix", work.prefix, f"must be in [0, isl={work.isl})")
    role = mode if mode in ("prefill", "decode") else "agg"
    lops = build_layout_ops(setup, [layout], skip_invalid=False, db=db, role=role)
    accepted = expected_accepted_tokens(setup.nextn, accept_rates)
    what = f"{setup.arch.name} {layout.label} on {setup.system.name}/{setup.backend}"
    extra: dict[str, float] = {}
    if mode == "agg":
        ctx = ctx_tokens if ctx_tokens is not None else work.isl
        if ctx < 1:
            raise ServoptError("ctx_tokens", ctx, "must be >= 1")
        if batch_size - -(-ctx // work.isl) < (1 if batch_size > 1 else 0):
            raise ServoptError(
                "ctx_tokens", ctx, f"leaves no decoding request in a batch of {batch_size} (isl={work.isl})"
            )
        cand = Candidates(np.array([0]), np.array([batch_size]), np.array([ctx]))
        res = run_agg(db, lops, cand, work, accepted_tokens=accepted)
        ops = _rows("mix_step", res.mix) + _rows("decode_step", res.decode)
        s = res.schedule
        extra = {
            "ctx_tokens": float(ctx),
            "mix_step_ms": float(res.mix_step_ms[0]),
            "decode_step_ms": float(res.decode_step_ms[0]),
            "mix_steps": float(s.mix_steps[0]),
            "decode_steps": float(s.decode_steps[0]),
            "decode_requests_per_mix_step": float(s.riders[0]),
        }
    else:
        cand = Candidates(np.array([0]), np.array([batch_size]), np.array([0]))
        res = run_static(
            db, lops, cand, work, mode, latency_correction=latency_correction, accepted_tokens=accepted
        )
        ops = _rows("context", res.context) + _rows("generation", res.generation)
    mem = res.memory
    if check_memory and not bool(mem.fits[0]):
        total, cap = float(mem.total[0]), setup.system.gpu.mem_capacity_bytes / (1 << 30)
        reason = (
            f"needs {total:.1f} GiB per GPU, the GPU has {cap:.1f} GiB"
            if bool(mem.oom[0])
            else f"KV cache of {float(mem.kvcache[0]):.1f} GiB exceeds the {setup.backend} KV budget "
            f"(weights {float(mem.weights[0]):.1f} GiB, activations {float(mem.activations[0]):.1f} GiB)"
        )
        raise OutOfMemoryError("batch_size", batch_size, f"{what} does not fit: {reason}")
    _check_priced(ops, what)
    return Estimate(
        config={
            "model": setup.arch.name,
            "system": setup.system.name,
            "backend": setup.backend,
            "backend_version": setup.version,
            "mode": mode,
            "isl": work.isl,
            "osl": work.osl,
            "prefix": work.prefix,
            "batch_size": batch_size,
            "parallel": layout.label,
            **layout.columns(),
            "gemm_quant_mode": setup.quant.gemm,
            "moe_quant_mode": setup.quant.moe,
            "kvcache_quant_mode": setup.quant.kvcache,
            "fmha_quant_mode": setup.quant.fmha,
            "nextn": setup.nextn,
            "accepted_tokens_per_step": accepted,
        },
        ttft_ms=float(res.ttft_ms[0]),
        tpot_ms=float(res.tpot_ms[0]),
        request_latency_ms=float(res.request_latency_ms[0]),
        tokens_per_s=float(res.tokens_per_s[0]),
        tokens_per_s_per_gpu=float(res.tokens_per_s_per_gpu[0]),
        tokens_per_s_per_user=float(res.tokens_per_s_per_user[0]),
        seq_per_s=float(res.seq_per_s[0]),
        concurrency=float(res.concurrency[0]),
        gpus=int(res.gpus[0]),
        memory_gib=float(mem.total[0]),
        memory=_memory_dict(mem),
        ops=ops,
        extra=extra,
    )


def calibrated(est: Estimate, adj: Adjustments | None) -> Estimate:
    """The estimate with a calibration profile's four adjustments applied (None or neutral: as is).

    The formula of the search (``servopt.evaluate.calibration``), on one row: TTFT scaled by
    ``prefill_scale`` plus one iteration and the request overhead, TPOT scaled by ``decode_scale``
    plus one iteration per decode pass, rates following the latency. Every mode, agg included.
    """
    if is_neutral(adj):
        return est
    mode = est.config["mode"]
    steps, has_prefill = schedule(mode, est.config["osl"])
    nextn = est.config["nextn"]
    per_step = 1.0 + est.config["accepted_tokens_per_step"] if nextn > 0 and mode != "static_ctx" else 1.0
    a = adjusted_latencies(
        [est.ttft_ms],
        [est.tpot_ms],
        [est.request_latency_ms],
        adj,
        steps=steps,
        tokens_per_step=per_step,
        has_prefill=has_prefill,
    )
    ratio = float(a.rate_ratio[0])
    return replace(
        est,
        ttft_ms=float(a.ttft_ms[0]),
        tpot_ms=float(a.tpot_ms[0]),
        request_latency_ms=float(a.request_latency_ms[0]),
        tokens_per_s=est.tokens_per_s * ratio,
        tokens_per_s_per_gpu=est.tokens_per_s_per_gpu * ratio,
        tokens_per_s_per_user=float(a.tokens_per_s_per_user[0]),
        seq_per_s=est.seq_per_s * ratio,
    )


def quant_modes(
    arch,
    gemm: str | None,
    moe: str | None,
    kvcache: str | None,
    fmha: str | None,
    *,
    db=None,
    backend: str | None = None,
) -> QuantModes:
    """The checkpoint's defaults, overridden by explicit choices.

    Like the peer, an fp8 FMHA that only came from the checkpoint default falls back to bf16 where
    the data has no fp8 context-attention slice (vLLM never has one); an explicit choice is kept.
    """
    d = arch.quant
    quant = QuantModes(gemm or d.gemm, moe or d.moe, kvcache or d.kvcache, fmha or d.fmha)
    if moe is not None and db is not None and arch.is_moe:
        _check_moe_measured(db, moe)
    if (
        fmha is None
        and quant.fmha == "fp8"
        and (backend == "vllm" or (db is not None and not _has_fp8_fmha(db, arch, quant)))
    ):
        quant = quant._replace(fmha="float16")
    return quant


def _check_moe_measured(db, moe: str) -> None:
    """An explicit MoE quant mode the database has no expert table for (w4a8_mxfp4_mxfp8 on Hopper)
    is one line naming the modes it has, not an unpriceable op later."""
    measured = db.measured_moe_quants()
    if db.sol or not measured:
        return  # roofline pricing needs no table
    name = perf_quant.ALIASES.get(moe, moe)
    if name not in measured:
        names = {perf_quant.ALIASES.get(m, m): m for m in MOE_QUANTS}
        allowed = sorted(names[m] for m in measured if m in names)
        raise ServoptError("moe_quant_mode", moe, f"has no measured MoE table on {db.label()}", allowed)


def _has_fp8_fmha(db, arch, quant: QuantModes) -> bool:
    """Whether the database prices context attention with fp8 FMHA for this model's attention."""
    try:
        if arch.family == "mla_moe":
            probe = db.mla_module_ms(
                "context", quant.gemm, quant.kvcache, 1, 1024, 0, 16, fmha_quant="fp8", missing="nan"
            )
            if not np.isfinite(probe).all():
                probe = db.context_mla_ms("fp8", quant.kvcache, 1, 1024, 0, 16, missing="nan")
        else:
            heads = arch.num_heads // 8 if arch.num_heads % 8 == 0 else arch.num_heads
            kv = -(-arch.num_kv_heads // max(arch.num_heads // heads, 1))
            probe = db.context_attention_ms(
                "fp8", quant.kvcache, 1, 1024, 0, heads, kv, arch.head_dim, missing="nan"
            )
    except ServoptError:
        return False
    return bool(np.isfinite(probe).all())
