"""Plain-Python reference for the batched evaluator: one candidate, one op, one step at a time.

Written straight from the peer's composition rules (reference §3.2, §4.1, §4.2), with scalar
database calls and explicit loops, so that the vectorised code in ``servopt.evaluate`` can be
checked against it on random small cases.
"""

from __future__ import annotations

import math

from servopt.models.ops import Family, OpSpec, Overlap


def _f(value) -> float:
    return float(value.ravel()[0]) if hasattr(value, "ravel") else float(value)


def op_ms(
    db, op: OpSpec, batch: int, x: int, x_logits: int, prefix: int, steps: list[tuple[int, float]]
) -> float:
    """Latency of one op summed over the quadrature steps [(seq, weight)], times its scale."""
    total_w = sum(w for _, w in steps)
    if op.scale == 0 or total_w == 0:
        return 0.0
    f = op.family
    if f is Family.MLA_MODULE:
        phase = "context" if op.name.startswith("context") else "generation"
        lats = [
            _f(
                db.mla_module_ms(
                    phase, op.quant, op.kv_quant, batch, s, prefix, op.heads, fmha_quant=op.fmha_quant
                )
            )
            for s, _ in steps
        ]
        if all(math.isfinite(v) for v in lats):
            return op.scale * sum(max(v, 0.0) * w for v, (_, w) in zip(lats, steps, strict=True))
        return sum(op_ms(db, inner, batch, x, x_logits, prefix, steps) for inner in op.fallback)
    per_step = f in (
        Family.CONTEXT_ATTENTION,
        Family.GENERATION_ATTENTION,
        Family.CONTEXT_MLA,
        Family.GENERATION_MLA,
    )
    if per_step:
        total = 0.0
        for s, w in steps:
            if w == 0:
                continue
            if f is Family.CONTEXT_ATTENTION and op.cp > 1:
                # Context parallel: rank 0's zigzag chunks (the first and the last of 2 cp), the
                # fused side-ops once.
                c = math.ceil(s / (2 * op.cp))
                args = (op.fmha_quant, op.kv_quant, batch, c)
                heads = (op.heads, op.kv_heads, op.head_dim, op.window)
                v = _f(db.context_attention_ms(*args, prefix, *heads, qk_norm=op.qk_norm)) + _f(
                    db.context_attention_ms(
                        *args, prefix + s - c, *heads, qk_norm=op.qk_norm, fused_extras=False
                    )
                )
            elif f is Family.CONTEXT_ATTENTION:
                v = db.context_attention_ms(
                    op.fmha_quant, op.kv_quant, batch, s, prefix, op.heads, op.kv_heads, op.head_dim, op.window,
                    qk_norm=op.qk_norm,
                )  # fmt: skip
            elif f is Family.GENERATION_ATTENTION:
                v = db.generation_attention_ms(
                    op.kv_quant, batch, s, op.heads, op.kv_heads, op.head_dim, op.window
                )
            elif f is Family.CONTEXT_MLA:
                v = db.context_mla_ms(op.fmha_quant, op.kv_quant, batch, s, prefix, op.heads)
            else:
                v = db.generation_mla_ms(op.kv_quant, batch, s, op.heads)
            total += max(_f(v), 0.0) * w
        return op.scale * total
    # Token-major ops of a context-parallel prefill see ceil(tokens / cp) on each rank.
    full_x = x
    x, x_logits = math.ceil(x / op.seq_split), math.ceil(x_logits / op.seq_split)
    if f is Family.GEMM:
        v = db.gemm_ms(op.quant, x_logits if op.logits else x, op.n, op.k)
    elif f is Family.ELEMENTWISE:
        v = db.mem_op_ms(op.bytes_per_token * x)
    elif f is Family.EMBEDDING:
        v = db.mem_op_ms(2 * op.hidden * x)
    elif f is Family.P2P:
        v = db.p2p_ms(2 * op.hidden * x) if op.num_gpus > 1 else 0.0
    elif f is Family.ALLREDUCE:
        v = db.custom_allreduce_ms(op.num_gpus, x * op.hidden) if op.num_gpus > 1 else 0.0
    elif f is Family.NCCL:
        v = db.nccl_ms(op.collective, "half", op.num_gpus, full_x * op.hidden) if op.num_gpus > 1 else 0.0
    elif f is Family.MOE_DISPATCH:
        v = 0.0
        for t in op.terms:
            elems = full_x * t.token_multiplier * op.hidden * t.element_factor
            if t.collective == "all_reduce":
                v += max(_f(db.custom_allreduce_ms(t.num_gpus, elems)), 0.0)
            else:
                v += max(_f(db.nccl_ms(t.collective, "half", t.num_gpus, elems)), 0.0)
    elif f is Family.MOE:
        v = db.moe_ms(
            op.quant, op.distribution, op.topk, op.experts, op.hidden, op.inter, op.moe_tp, op.moe_ep, full_x * op.dp,
            gated=op.gated,
        )  # fmt: skip
    elif f is Family.MLA_BMM:
        v = db.mla_bmm_ms("pre" if op.pre else "post", op.quant, batch, op.heads)
    else:  # pragma: no cover
        raise AssertionError(f)
    return op.scale * max(_f(v), 0.0) * total_w


def phase_ms(db, ops, batch, x, x_logits, prefix, steps, select=None) -> tuple[dict[str, float], float]:
    """Per-op latency and the phase total (overlap block = slower group) of one row."""
    per_op: dict[str, float] = {}
    groups = {Overlap.NONE: 0.0, Overlap.GROUP_A: 0.0, Overlap.GROUP_B: 0.0}
    for op in ops:
        if select is not None and not select(op):
            continue
        v = op_ms(db, op, batch, x, x_logits, prefix, steps)
        per_op[op.name] = per_op.get(op.name, 0.0) + v
        groups[op.overlap] += v
    return per_op, groups[Overlap.NONE] + max(groups[Overlap.GROUP_A], groups[Overlap.GROUP_B])


def decode_steps(isl: int, osl: int, stride: int) -> list[tuple[int, float]]:
    return [(isl + i + 1, float(min(stride, osl - 1 - i))) for i in range(0, osl - 1, stride)]


def agg_metrics(db, ctx_ops, gen_ops, *, backend, layers, b, c, isl, osl, nextn, progress, pp, dp, tp):
    """The peer's agg schedule for one (b, C) point, written as scalar code."""
    d_iter = 1.0 + (osl - 1) / progress
    steps_ctx = math.ceil(isl * b / c)
    drain = backend in ("trtllm", "sglang")
    if b > 1:
        if backend == "vllm" or steps_ctx < d_iter:
            g = max(1, b - math.ceil(c / isl))
        else:
            g = max(1, int(b // (steps_ctx / d_iter)))
        if steps_ctx >= d_iter:
            n_mix, n_gen, gen_b, n_tpot = steps_ctx, 0.0, 0, steps_ctx
        else:
            n_mix, n_gen, gen_b = steps_ctx, d_iter - steps_ctx, b
            n_tpot = max(1, n_mix - 3) if drain else n_mix
    else:
        n_mix, g, n_gen, gen_b, n_tpot = 1, 0, max(d_iter - 1.0, 0.0), 1, 0
    combined = c + g * (nextn + 1)
    _, p1 = phase_ms(db, ctx_ops, 1, combined, 1, 0, [(combined, 1.0)], lambda op: not op.is_attention_slot)
    b2 = math.ceil(c / isl)
    _, p2 = phase_ms(db, ctx_ops, b2, b2 * isl, b2, 0, [(isl, 1.0)], lambda op: op.is_attention_slot)
    p2 /= math.ceil(isl / c)
    mid = isl + osl // 2 + 1
    p3 = 0.0
    if g > 0:
        dec = g * (nextn + 1)
        _, p3 = phase_ms(db, gen_ops, dec, dec, dec, 0, [(mid, 1.0)], lambda op: op.is_attention_slot)
    mix = p1 + p2 + p3
    gen = 0.0
    if gen_b > 0:
        dec = gen_b * (nextn + 1)
        _, gen = phase_ms(db, gen_ops, dec, dec, dec, 0, [(mid, 1.0)])
    if backend == "vllm":
        q = 1.0 if b <= 1 else min(1 + math.log2(b) / 8, 2.0)
        overhead = 0.8 * layers
    else:
        q = min(2 + (steps_ctx - 3) / 2 / 10, 4)
        overhead = 0.0
    ttft = (mix * math.ceil(isl / c) + overhead) * q
    tpot = (mix * n_tpot + gen * n_gen) / (n_tpot + n_gen) / progress if n_tpot + n_gen > 0 else 0.0
    total = n_mix * mix + n_gen * gen
    thr = 1000 / total * b * (osl - 1)
    if backend == "vllm":
        thr = min(thr, b * (osl - 1) * 1000 / (ttft + tpot * (osl - 1)))
    return {
        "ttft": ttft,
        "tpot": tpot,
        "tokens_per_s_per_gpu": thr * pp * dp / (tp * pp * dp),
        "mix": mix,
        "gen": gen,
    }
