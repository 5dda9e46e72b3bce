"""Step-time tables of one engine instance: servopt's per-op latency model, priced once over grids.

The simulator needs the duration of any forward pass: some prefill chunks (new tokens, cached
prefix) and some decoding requests (count, KV lengths). Pricing every pass through the perf
database would cost milliseconds each; instead every quantity a pass depends on is priced in one
batched :func:`servopt.evaluate.phase.evaluate_phase` call per table over a grid, and the loop
interpolates (linear in tokens, bilinear in (requests, KV length) and (new tokens, prefix)).

Grids are integer-exact where it matters: every decode batch size up to 64 and every prompt
length the workload uses are grid points, so a lone request's prefill and a steady decode batch
are priced exactly as ``cli estimate`` prices them (tests compare the two).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from servopt.errors import ServoptError
from servopt.evaluate.candidates import LayoutOps
from servopt.evaluate.phase import PhaseCoords, Select, evaluate_phase

# Decode batch sizes priced exactly up to this count, then geometrically.
EXACT_BATCH = 64
GEOMETRIC_STEP = 1.04
# Points along the KV-length and prefix axes (attention is close to linear in both).
KV_POINTS = 33
PREFIX_POINTS = 17
# Distinct prompt lengths added to the chunk axis as exact points (more are interpolated).
MAX_EXACT_LENGTHS = 64


class StepTables(NamedTuple):
    """One instance kind's step-time tables (ms); axes are float64 ascending."""

    tok_axis: np.ndarray  # tokens of a pass
    tok_ms: np.ndarray  # non-attention ops at that many tokens (context op list)
    dec_axis: np.ndarray  # decoding requests
    kv_axis: np.ndarray  # mean KV length of the decoding requests
    gen_full_ms: np.ndarray  # (dec, kv): a decode-only pass
    gen_attn_ms: np.ndarray  # (dec, kv): decode attention inside a mixed pass
    new_axis: np.ndarray  # new tokens of one request's prefill chunk
    pre_axis: np.ndarray  # cached prefix of that chunk
    ctx_full_ms: np.ndarray  # (new, prefix): a pass of that one chunk alone
    ctx_attn_ms: np.ndarray  # (new, prefix): context attention of the chunk inside a larger pass


def _geometric(lo: int, hi: int, step: float = GEOMETRIC_STEP) -> list[int]:
    out, x = [], float(lo)
    while x < hi:
        out.append(round(x))
        x = max(x * step, x + 1)
    out.append(hi)
    return out


def batch_axis(max_batch: int) -> np.ndarray:
    """1..min(64, max) exactly, then geometric to ``max_batch``."""
    exact = list(range(1, min(EXACT_BATCH, max_batch) + 1))
    tail = _geometric(EXACT_BATCH, max_batch) if max_batch > EXACT_BATCH else []
    return np.unique(np.array(exact + tail, dtype=np.float64))


def token_axis(max_tokens: int, exact: np.ndarray) -> np.ndarray:
    """1..64 exactly, geometric to ``max_tokens``, plus the workload's own lengths."""
    pts = list(range(1, min(EXACT_BATCH, max_tokens) + 1))
    if max_tokens > EXACT_BATCH:
        pts += _geometric(EXACT_BATCH, max_tokens)
    pts += [int(v) for v in exact if 1 <= v <= max_tokens]
    return np.unique(np.array(pts, dtype=np.float64))


def linear_axis(lo: float, hi: float, points: int, exact: np.ndarray | None = None) -> np.ndarray:
    """``points`` evenly spaced in [lo, hi] (rounded to integers), plus ``exact`` values inside."""
    base = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    exact = np.zeros(0) if exact is None else exact
    return np.unique(np.round(np.concatenate([base, exact[(exact >= lo) & (exact <= hi)]])))


def _exact_lengths(values: np.ndarray) -> np.ndarray:
    uniq = np.unique(np.asarray(values, dtype=np.int64))
    if len(uniq) > MAX_EXACT_LENGTHS:
        return np.zeros(0)
    return uniq.astype(np.float64)


def build_step_tables(
    db,
    lops: LayoutOps,
    *,
    max_batch: int,
    max_tokens: int,
    max_context: int,
    prompt_lengths: np.ndarray,
    role: str,
) -> StepTables:
    """Price the grids of a single-layout :class:`LayoutOps` for one instance kind.

    ``max_tokens``: tokens in one pass (the policy's budget, at least the longest unchunked prompt);
    ``max_context``: the longest sequence (prompt + output) a request can reach;
    ``prompt_lengths``: the workload's prompt lengths (exact grid points when there are few).
    """
    if len(lops.layouts) != 1:
        raise ValueError("step tables are built for one layout")
    exact = _exact_lengths(prompt_lengths)
    nextn = lops.setup.nextn
    ctx_ops, gen_ops = lops.context_ops, lops.generation_ops

    def price(ops, batch, x, x_logits, prefix, seq, select, what) -> np.ndarray:
        n = len(batch)
        coords = PhaseCoords(
            np.zeros(n, dtype=np.int64),
            np.asarray(batch, dtype=np.int64),
            np.asarray(x, dtype=np.int64),
            np.asarray(x_logits, dtype=np.int64),
            np.asarray(prefix, dtype=np.int64),
            np.asarray(seq, dtype=np.int64)[:, None],
            np.ones((n, 1)),
        )
        ms = evaluate_phase(db, ops, coords, select).total_ms
        if not np.all(np.isfinite(ms)):
            raise ServoptError(
                "configuration",
                f"{lops.setup.arch.name} {lops.layouts[0].label}",
                f"the measured data cannot price the simulator's {what} grid",
            )
        return ms

    # Non-attention ops of a pass over x tokens (one logits row, as the peer's mixed step).
    tok_axis = token_axis(max_tokens + max_batch * (nextn + 1), exact)
    one = np.ones(len(tok_axis))
    tok_ms = (
        price(ctx_ops, one, tok_axis, one, np.zeros(len(tok_axis)), tok_axis, Select.SKIP_ATTENTION, "token")
        if role != "decode"
        else np.zeros(len(tok_axis))
    )

    # Decode passes over (requests, mean KV length).
    dec_axis = batch_axis(max_batch)
    kv_axis = linear_axis(1.0, float(max(max_context, 2)), KV_POINTS, exact + 1)
    d, kv = (g.ravel() for g in np.meshgrid(dec_axis, kv_axis, indexing="ij"))
    if role == "prefill":
        gen_full = gen_attn = np.zeros((len(dec_axis), len(kv_axis)))
    else:
        tokens = d * (nextn + 1)
        gen_full = price(gen_ops, tokens, tokens, tokens, np.zeros_like(d), kv, Select.ALL, "decode")
        gen_attn = price(
            gen_ops, tokens, tokens, tokens, np.zeros_like(d), kv, Select.ONLY_ATTENTION, "decode"
        )
        gen_full = gen_full.reshape(len(dec_axis), len(kv_axis))
        gen_attn = gen_attn.reshape(len(dec_axis), len(kv_axis))

    # Prefill chunks over (new tokens, cached prefix).
    new_axis = token_axis(max_tokens, exact)
    pre_axis = linear_axis(0.0, float(max(max_context - 1, 1)), PREFIX_POINTS)
    if role == "decode":
        ctx_full = ctx_attn = np.zeros((len(new_axis), len(pre_axis)))
    else:
        nn, qq = (g.ravel() for g in np.meshgrid(new_axis, pre_axis, indexing="ij"))
        ones = np.ones(len(nn))
        ctx_full = price(ctx_ops, ones, nn, ones, qq, nn, Select.ALL, "prefill").reshape(len(new_axis), -1)
        ctx_attn = price(ctx_ops, ones, nn, ones, qq, nn, Select.ONLY_ATTENTION, "prefill").reshape(
            len(new_axis), -1
        )
    return StepTables(
        tok_axis, tok_ms, dec_axis, kv_axis, gen_full, gen_attn, new_axis, pre_axis, ctx_full, ctx_attn
    )
