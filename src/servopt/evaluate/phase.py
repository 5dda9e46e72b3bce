"""Price one phase's ops for a whole batch of rows: one perf-database call per op family.

A *row* is one worker candidate at one moment (a prefill, a decode trajectory, an agg mixed step);
rows of different parallel layouts are priced together. Each row carries the runtime coordinates
the ops read (:class:`PhaseCoords`): attention batch and sequence length, token count for the
token-major ops, cached prefix. A decode trajectory is a quadrature over steps: ``seq`` and
``weight`` have one column per sampled step, and only attention reads the per-step sequence
length, so every other op is priced once per row and weighted by the step count.

The Python loop runs over layouts x ops (tens); all per-row work is numpy on whole arrays, and
each family of ops is answered by one database call per categorical key (quant mode, collective).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from enum import Enum
from typing import NamedTuple

import numpy as np

from servopt.errors import ServoptError
from servopt.models.ops import Family, OpSpec, Overlap

# Activations travel in bf16 through embeddings and pipeline hops.
ACTIVATION_BYTES = 2


class PhaseCoords(NamedTuple):
    """Runtime coordinates of R rows (S quadrature steps for attention)."""

    layout: np.ndarray  # (R,) int: index into the per-layout op lists
    batch: np.ndarray  # (R,) int: attention batch (requests)
    x: np.ndarray  # (R,) int: tokens seen by token-major ops
    x_logits: np.ndarray  # (R,) int: tokens seen by the LM head
    prefix: np.ndarray  # (R,) int: cached prefix tokens (context attention)
    seq: np.ndarray  # (R, S) int: attention sequence (context: new tokens; decode: KV length)
    weight: np.ndarray  # (R, S) float: quadrature weight of each step (0 = padding)


class Select(Enum):
    """Which top-level ops a pass prices (the agg mixed step splits attention out by name)."""

    ALL = 0
    SKIP_ATTENTION = 1
    ONLY_ATTENTION = 2


class PhaseLatency(NamedTuple):
    """Per-row, per-op latency (ms, scaled and quadrature-weighted) and the phase total."""

    names: list[str]
    per_op_ms: np.ndarray  # (R, n_ops)
    total_ms: np.ndarray  # (R,)


def context_coords(layout, batch, isl, prefix) -> PhaseCoords:
    """Prefill of ``batch`` requests of ``isl`` tokens, ``prefix`` of them already cached."""
    layout, batch, isl, prefix = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.int64) for a in (layout, batch, isl, prefix))
    )
    new = isl - prefix
    if np.any(new <= 0):
        raise ServoptError("prefix", int(prefix.max()), "must be smaller than isl")
    return PhaseCoords(layout, batch, batch * new, batch, prefix, new[:, None], np.ones((len(batch), 1)))


class _Requests:
    """Query points of one family: rows, output slots, multipliers and coordinate columns."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.slots: list[np.ndarray] = []
        self.mult: list[np.ndarray] = []
        self.cols: dict[str, list[np.ndarray]] = defaultdict(list)

    def add(self, rows, slot, mult, **cols) -> None:
        n = len(rows)
        self.rows.append(rows)
        self.slots.append(np.full(n, slot, dtype=np.int64))
        self.mult.append(np.broadcast_to(np.asarray(mult, dtype=np.float64), (n,)))
        for key, value in cols.items():
            self.cols[key].append(np.broadcast_to(np.asarray(value), (n,)))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        return (
            np.concatenate(self.rows),
            np.concatenate(self.slots),
            np.concatenate(self.mult),
            {k: np.concatenate(v) for k, v in self.cols.items()},
        )


class _Gather:
    """Collects every op's query points, grouped by (family, categorical key)."""

    def __init__(self, coords: PhaseCoords) -> None:
        self.c = coords
        self.weight_sum = coords.weight.sum(axis=1)
        self.groups: dict[tuple, _Requests] = defaultdict(_Requests)
        # Latencies known without a grouped call (whole-module tables):
        # (rows, slot, ms already scaled and weighted).
        self.fixed: list[tuple[np.ndarray, int, np.ndarray]] = []

    def token_op(self, key: tuple, rows, slot, scale, **cols) -> None:
        """A point per row, weighted by the row's total step weight."""
        self.groups[key].add(rows, slot, scale * self.weight_sum[rows], **cols)

    def step_op(self, key: tuple, rows, slot, scale, **cols) -> None:
        """A point per (row, step) of nonzero weight. ``cols`` hold per-row arrays or scalars;
        the per-step sequence length is added as ``seq``."""
        w = self.c.weight[rows]
        r_idx, s_idx = np.nonzero(w)
        per_point = {k: (v[r_idx] if np.ndim(v) else v) for k, v in cols.items()}
        per_point["seq"] = self.c.seq[rows[r_idx], s_idx]
        self.groups[key].add(rows[r_idx], slot, scale * w[r_idx, s_idx], **per_point)

    def zigzag_op(self, key: tuple, tail_key: tuple, rows, slot, scale, cp: int, **cols) -> None:
        """Context attention over ``cp`` context-parallel ranks, priced as rank 0 of SGLang's zigzag
        split: each prompt of n new tokens is cut into 2 cp chunks of c = ceil(n / 2cp) and rank 0
        holds the first and the last, so it attends c tokens after the cached prefix p and c
        tokens after p + n - c. The two kernel calls are one op: the fused side-ops (rope, KV
        write, qk-norm) count once (``tail_key`` prices the second call without them), as the
        peer prices its ``cp_size`` attention (checked against it in
        tests/evaluate/test_fidelity_context_parallel.py)."""
        w = self.c.weight[rows]
        r_idx, s_idx = np.nonzero(w)
        per_point = {k: (v[r_idx] if np.ndim(v) else v) for k, v in cols.items()}
        new = self.c.seq[rows[r_idx], s_idx]
        chunk = -(-new // (2 * cp))
        prefix = per_point.pop("prefix")
        mult = scale * w[r_idx, s_idx]
        self.groups[key].add(rows[r_idx], slot, mult, seq=chunk, prefix=prefix, **per_point)
        self.groups[tail_key].add(
            rows[r_idx], slot, mult, seq=chunk, prefix=prefix + new - chunk, **per_point
        )


class _TableQuery(NamedTuple):
    """A family answered by one database method of the shape ``method(*categorical, *columns, **flags)``.

    ``categorical`` and ``flags`` are OpSpec fields (they split the groups); each of ``columns`` is
    an OpSpec field or a row coordinate (``tokens``: global tokens, the row's tokens times attention
    dp; ``rank_tokens``; ``batch``; ``prefix``; ``seq``, the per-step sequence length of a step op).
    """

    kind: str
    method: str
    categorical: tuple[str, ...]
    flags: tuple[str, ...]
    columns: tuple[str, ...]
    per_step: bool
    fixed: tuple[tuple[str, object], ...] = ()  # keyword arguments every call of this kind passes


_TABLE_QUERIES = {
    Family.MOE: _TableQuery(
        "moe",
        "moe_ms",
        ("quant", "distribution"),
        ("gated",),
        ("topk", "experts", "hidden", "inter", "moe_tp", "moe_ep", "tokens"),
        per_step=False,
    ),
    # All-to-all phases see per-rank tokens (TRT-LLM shards nothing by attention tp here).
    Family.MOE_A2A: _TableQuery(
        "moe_a2a",
        "moe_a2a_ms",
        ("a2a_backend", "a2a_phase", "a2a_dtype"),
        ("sms",),
        ("moe_ep", "nodes", "hidden", "topk", "experts", "rank_tokens"),
        per_step=False,
    ),
    Family.MOE_EP: _TableQuery(
        "moe_ep",
        "moe_expert_compute_ms",
        ("quant", "distribution"),
        ("gated", "kernel"),
        ("topk", "experts", "slots", "hidden", "inter", "moe_ep", "tokens"),
        per_step=False,
    ),
    # The database adds the fused rope / KV-write / qk-norm extras of the peer's op.
    Family.CONTEXT_ATTENTION: _TableQuery(
        "ctx_attn",
        "context_attention_ms",
        ("fmha_quant", "kv_quant"),
        ("qk_norm",),
        ("batch", "seq", "prefix", "heads", "kv_heads", "head_dim", "window"),
        per_step=True,
    ),
    Family.GENERATION_ATTENTION: _TableQuery(
        "gen_attn",
        "generation_attention_ms",
        ("kv_quant",),
        (),
        ("batch", "seq", "heads", "kv_heads", "head_dim", "window"),
        per_step=True,
    ),
    Family.CONTEXT_MLA: _TableQuery(
        "ctx_mla",
        "context_mla_ms",
        ("fmha_quant", "kv_quant"),
        (),
        ("batch", "seq", "prefix", "heads"),
        per_step=True,
    ),
    Family.GENERATION_MLA: _TableQuery(
        "gen_mla", "generation_mla_ms", ("kv_quant",), (), ("batch", "seq", "heads"), per_step=True
    ),
    # SGLang wide-EP MLA: ``kernel`` is the attention lane, ``fmha_quant`` the table's MLA dtype.
    Family.WIDEEP_CONTEXT_MLA: _TableQuery(
        "wideep_ctx_mla",
        "wideep_context_mla_ms",
        ("kernel", "fmha_quant", "kv_quant"),
        (),
        ("batch", "seq", "prefix", "heads"),
        per_step=True,
    ),
    Family.WIDEEP_GENERATION_MLA: _TableQuery(
        "wideep_gen_mla",
        "wideep_generation_mla_ms",
        ("kernel", "fmha_quant", "kv_quant"),
        (),
        ("batch", "seq", "heads"),
        per_step=True,
    ),
}
# The second chunk of a context-parallel zigzag pair: the attention kernel without its fused side-ops.
_ZIGZAG_TAIL = _TABLE_QUERIES[Family.CONTEXT_ATTENTION]._replace(
    kind="ctx_attn_tail", fixed=(("fused_extras", False),)
)
_TABLE_BY_KIND = {q.kind: q for q in (*_TABLE_QUERIES.values(), _ZIGZAG_TAIL)}


def _cp_split(tokens: np.ndarray, op: OpSpec) -> np.ndarray:
    """The tokens one context-parallel rank handles (ceil, the peer's ``seq_split``)."""
    return -(-tokens // op.seq_split) if op.seq_split > 1 else tokens


def _split(tokens: np.ndarray, op: OpSpec) -> np.ndarray:
    """The tokens one rank handles when the op splits them: over context-parallel ranks, then over
    SGLang wide-EP attention-TP ranks (floor, as the peer)."""
    tokens = _cp_split(tokens, op)
    return tokens // op.token_split if op.token_split > 1 else tokens


def _row_column(c: PhaseCoords, op: OpSpec, name: str, rows: np.ndarray):
    if name == "tokens":
        return c.x[rows] * op.dp
    if name == "rank_tokens":
        return _split(c.x[rows], op)
    if name == "batch":
        return c.batch[rows]
    if name == "prefix":
        return c.prefix[rows]
    return getattr(op, name)


def _add_table_op(g: _Gather, query: _TableQuery, op: OpSpec, rows: np.ndarray, slot: int) -> None:
    key = (query.kind, *(getattr(op, f) for f in query.categorical), *(getattr(op, f) for f in query.flags))
    cols = {name: _row_column(g.c, op, name, rows) for name in query.columns if name != "seq"}
    if query.per_step and op.cp > 1:
        if op.family is not Family.CONTEXT_ATTENTION:  # pragma: no cover - the graphs never build it
            raise AssertionError(f"{op.name}: context parallelism prices GQA context attention only")
        g.zigzag_op(key, (_ZIGZAG_TAIL.kind, *key[1:]), rows, slot, op.scale, op.cp, **cols)
    elif query.per_step:
        g.step_op(key, rows, slot, op.scale, **cols)
    else:
        g.token_op(key, rows, slot, op.scale, **cols)


def _add_op(g: _Gather, db, op: OpSpec, rows: np.ndarray, slot: int) -> None:
    """Append one op's query points for ``rows`` (all of one layout)."""
    c = g.c
    f = op.family
    scale = op.scale
    if scale == 0:
        return
    if f is Family.GEMM:
        # The LM head reads the last token of each request (over cp ranks too: ceil(batch / cp)).
        m = _cp_split(c.x_logits[rows], op) if op.logits else _split(c.x[rows], op)
        g.token_op(("gemm", op.quant, op.low_precision_input), rows, slot, scale, m=m, n=op.n, k=op.k)
    elif f is Family.ELEMENTWISE:
        tokens = _split(c.x[rows], op).astype(np.float64)
        g.token_op(("mem",), rows, slot, scale, bytes=op.bytes_per_token * tokens)
    elif f is Family.EMBEDDING:
        tokens = _split(c.x[rows], op).astype(np.float64)
        g.token_op(("mem",), rows, slot, scale, bytes=float(ACTIVATION_BYTES * op.hidden) * tokens)
    elif f is Family.P2P:
        if op.num_gpus > 1:
            tokens = _split(c.x[rows], op).astype(np.float64)
            g.token_op(("p2p",), rows, slot, scale, bytes=float(ACTIVATION_BYTES * op.hidden) * tokens)
    elif f is Family.ALLREDUCE:
        if op.num_gpus > 1:
            elems = _split(c.x[rows], op) * op.hidden
            g.token_op(("allreduce",), rows, slot, scale, num_gpus=op.num_gpus, elems=elems)
    elif f is Family.NCCL:
        # A collective over all of the row's tokens (``hidden`` elements each): the context-parallel
        # KV all-gather moves every rank's KV to every rank.
        if op.num_gpus > 1:
            elems = c.x[rows].astype(np.float64) * op.hidden
            g.token_op(("nccl", op.collective), rows, slot, scale, num_gpus=op.num_gpus, elems=elems)
    elif f is Family.MOE_DISPATCH:
        for term in op.terms:
            elems = c.x[rows].astype(np.float64) * term.token_multiplier * op.hidden * term.element_factor
            if term.collective == "all_reduce":
                g.token_op(("allreduce",), rows, slot, scale, num_gpus=term.num_gpus, elems=elems)
            else:
                g.token_op(("nccl", term.collective), rows, slot, scale, num_gpus=term.num_gpus, elems=elems)
    elif f is Family.MLA_BMM:
        g.token_op(
            ("mla_bmm", "pre" if op.pre else "post", op.quant),
            rows,
            slot,
            scale,
            tokens=c.batch[rows],
            heads=op.heads,
        )
    elif f in _TABLE_QUERIES:
        _add_table_op(g, _TABLE_QUERIES[f], op, rows, slot)
    else:  # pragma: no cover - MLA_MODULE is handled by the caller
        raise AssertionError(f)


def _run_group(db, key: tuple, cols: dict[str, np.ndarray]) -> np.ndarray:
    """One database call for all points of one family and categorical key (misses -> NaN)."""
    kind = key[0]
    nan = {"missing": "nan"}
    if kind == "gemm":
        _, quant, low_precision = key
        # Only fp8_static reads the flag (it skips the scale-matrix overhead for quantized inputs).
        extra = {"low_precision_input": True} if low_precision and quant == "fp8_static" else {}
        return db.gemm_ms(quant, cols["m"], cols["n"], cols["k"], **extra, **nan)
    if kind == "mem":
        return db.mem_op_ms(cols["bytes"])
    if kind == "p2p":
        return db.p2p_ms(cols["bytes"])
    if kind == "allreduce":
        return db.custom_allreduce_ms(cols["num_gpus"], cols["elems"], **nan)
    if kind == "nccl":
        return db.nccl_ms(key[1], "half", cols["num_gpus"], cols["elems"], **nan)
    if kind == "mla_bmm":
        return db.mla_bmm_ms(key[1], key[2], cols["tokens"], cols["heads"], **nan)
    if kind == "mla_module":
        _, phase, gemm_quant, kv_quant, fmha_quant = key
        return db.mla_module_ms(
            phase,
            gemm_quant,
            kv_quant,
            cols["batch"],
            cols["seq"],
            cols["prefix"],
            cols["heads"],
            fmha_quant=fmha_quant,
            **nan,
        )
    query = _TABLE_BY_KIND[kind]
    n_cat = len(query.categorical)
    flags = dict(zip(query.flags, key[1 + n_cat :], strict=True))
    method = getattr(db, query.method)
    return method(
        *key[1 : 1 + n_cat], *(cols[name] for name in query.columns), **flags, **dict(query.fixed), **nan
    )


def _selected(op: OpSpec, select: Select) -> bool:
    if select is Select.ALL:
        return True
    return op.is_attention_slot == (select is Select.ONLY_ATTENTION)


def evaluate_phase(
    db,
    phase_ops: Sequence[Sequence[OpSpec]],
    coords: PhaseCoords,
    select: Select = Select.ALL,
) -> PhaseLatency:
    """Latency of every op of one phase for every row (``phase_ops[layout]`` lists a layout's ops)."""
    n_rows = len(coords.batch)
    names: list[str] = []
    slot_of: dict[str, int] = {}
    ops_of_layout: list[list[tuple[OpSpec, int]]] = []
    for ops in phase_ops:
        chosen = []
        for op in ops:
            if not _selected(op, select):
                continue
            if op.name not in slot_of:
                slot_of[op.name] = len(names)
                names.append(op.name)
            chosen.append((op, slot_of[op.name]))
        ops_of_layout.append(chosen)
    n_slots = len(names)
    # Overlap membership is per layout: one name can sit in an overlap block in one graph and not in
    # another (the fused MoE decode overlaps its routed and shared experts, large-EP graphs do not).
    overlap = np.zeros((max(len(phase_ops), 1), n_slots), dtype=np.int8)
    for layout_id, ops in enumerate(ops_of_layout):
        for op, slot in ops:
            overlap[layout_id, slot] = int(op.overlap)

    g = _Gather(coords)
    # Rows with no step weight (e.g. a decode step of zero requests) cost nothing and are not queried.
    active = g.weight_sum > 0
    rows_of_layout = [rows[active[rows]] for rows in _rows_by_layout(coords.layout, len(phase_ops))]
    modules: list[tuple[OpSpec, np.ndarray, int]] = []
    for layout_id, ops in enumerate(ops_of_layout):
        rows = rows_of_layout[layout_id]
        if len(rows) == 0:
            continue
        for op, slot in ops:
            if op.family is Family.MLA_MODULE:
                modules.append((op, rows, slot))
            else:
                _add_op(g, db, op, rows, slot)
    # Whole-module tables answer where they cover the query; other rows take the granular ops.
    missed = _price_modules(g, db, modules, n_rows)
    for op, rows, slot in modules:
        uncovered = rows[missed[rows]]
        if len(uncovered):
            for inner in op.fallback:
                _add_op(g, db, inner, uncovered, slot)

    flat = np.zeros(n_rows * n_slots, dtype=np.float64)
    for key, req in g.groups.items():
        rows, slots, mult, cols = req.arrays()
        lat = np.asarray(_run_group(db, key, cols), dtype=np.float64)
        flat += np.bincount(
            rows * n_slots + slots, weights=np.maximum(lat, 0.0) * mult, minlength=n_rows * n_slots
        )
    for rows, slot, values in g.fixed:
        flat += np.bincount(rows * n_slots + slot, weights=values, minlength=n_rows * n_slots)
    per_op = flat.reshape(n_rows, n_slots)
    return PhaseLatency(names, per_op, _compose_by_layout(per_op, overlap, coords.layout))


def _price_modules(g: _Gather, db, modules: list[tuple[OpSpec, np.ndarray, int]], n_rows: int) -> np.ndarray:
    """Price whole-module ops (one call per key over all layouts); returns rows the table missed."""
    gm = _Gather(g.c)
    for op, rows, slot in modules:
        phase = "context" if op.name.startswith("context") else "generation"
        gm.step_op(
            ("mla_module", phase, op.quant, op.kv_quant, op.fmha_quant),
            rows,
            slot,
            op.scale,
            batch=g.c.batch[rows],
            prefix=g.c.prefix[rows],
            heads=op.heads,
        )
    missed = np.zeros(n_rows, dtype=bool)
    priced = []
    for key, req in gm.groups.items():
        rows, slots, mult, cols = req.arrays()
        try:
            lat = np.asarray(_run_group(db, key, cols), dtype=np.float64)
        except ServoptError:  # no module table at all for this key
            lat = np.full(len(rows), np.nan)
        np.logical_or.at(missed, rows, np.isnan(lat))
        priced.append((rows, slots, mult, lat))
    for rows, slots, mult, lat in priced:
        ok = ~missed[rows]
        for slot in np.unique(slots[ok]):
            sel = ok & (slots == slot)
            g.fixed.append((rows[sel], int(slot), np.maximum(lat[sel], 0.0) * mult[sel]))
    return missed


def _rows_by_layout(layout: np.ndarray, n_layouts: int) -> list[np.ndarray]:
    order = np.argsort(layout, kind="stable")
    bounds = np.searchsorted(layout[order], np.arange(n_layouts + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(n_layouts)]


def _compose_by_layout(per_op: np.ndarray, overlap: np.ndarray, layout: np.ndarray) -> np.ndarray:
    """``_compose`` over the rows of each distinct overlap pattern (layouts that share one share a
    call)."""
    if len(per_op) == 0:
        return np.zeros(0)
    patterns, pattern_of_layout = np.unique(overlap, axis=0, return_inverse=True)
    if len(patterns) == 1:
        return _compose(per_op, patterns[0])
    total = np.empty(len(per_op))
    row_pattern = pattern_of_layout.reshape(-1)[layout]
    for i, pattern in enumerate(patterns):
        rows = row_pattern == i
        total[rows] = _compose(per_op[rows], pattern)
    return total


def _compose(per_op: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """Sum of the ops, with each overlap block costing the slower of its two groups."""

    def group(g: Overlap) -> np.ndarray:
        return per_op[:, overlap == g].sum(axis=1)

    plain = group(Overlap.NONE)
    block1 = np.maximum(group(Overlap.GROUP_A), group(Overlap.GROUP_B))
    block2 = np.maximum(group(Overlap.GROUP_C), group(Overlap.GROUP_D))
    return plain + block1 + block2
