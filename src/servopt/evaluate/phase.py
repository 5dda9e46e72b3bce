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
from collections.abc import Callable, Sequence
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
    """Query points of one group: rows, output slots, multipliers and the query's columns."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []
        self.slots: list[np.ndarray] = []
        self.mult: list[np.ndarray] = []
        self.cols: list[list[np.ndarray]] = []

    def add(self, rows, slot, mult, cols: Sequence) -> None:
        n = len(rows)
        self.rows.append(rows)
        self.slots.append(np.full(n, slot, dtype=np.int64))
        self.mult.append(np.broadcast_to(np.asarray(mult, dtype=np.float64), (n,)))
        if not self.cols:
            self.cols = [[] for _ in cols]
        for j, value in enumerate(cols):
            self.cols[j].append(np.broadcast_to(np.asarray(value), (n,)))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        return (
            np.concatenate(self.rows),
            np.concatenate(self.slots),
            np.concatenate(self.mult),
            [np.concatenate(v) for v in self.cols],
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

    def token_op(self, key: tuple, rows, slot, scale, cols: Sequence) -> None:
        """A point per row, weighted by the row's total step weight."""
        self.groups[key].add(rows, slot, scale * self.weight_sum[rows], cols)

    def step_op(self, key: tuple, rows, slot, scale, cols: Sequence) -> None:
        """A point per (row, step) of nonzero weight. ``cols`` hold per-row arrays or scalars, and
        ``_STEP_SEQ`` where the per-step sequence length goes."""
        w = self.c.weight[rows]
        r_idx, s_idx = np.nonzero(w)
        per_point = [
            self.c.seq[rows[r_idx], s_idx] if v is _STEP_SEQ else (v[r_idx] if np.ndim(v) else v)
            for v in cols
        ]
        self.groups[key].add(rows[r_idx], slot, scale * w[r_idx, s_idx], per_point)

    def zigzag_op(
        self, key: tuple, tail_key: tuple, rows, slot, scale, cp: int, names, cols: Sequence
    ) -> None:
        """Context attention over ``cp`` context-parallel ranks, priced as rank 0 of SGLang's zigzag
        split: each prompt of n new tokens is cut into 2 cp chunks of c = ceil(n / 2cp) and rank 0
        holds the first and the last, so it attends c tokens after the cached prefix p and c
        tokens after p + n - c. The two kernel calls are one op: the fused side-ops (rope, KV
        write, qk-norm) count once (``tail_key`` prices the second call without them), as the
        peer prices its ``cp_size`` attention (checked against it in
        tests/evaluate/test_fidelity_context_parallel.py)."""
        w = self.c.weight[rows]
        r_idx, s_idx = np.nonzero(w)
        new = self.c.seq[rows[r_idx], s_idx]
        chunk = -(-new // (2 * cp))
        head = [None if v is _STEP_SEQ else (v[r_idx] if np.ndim(v) else v) for v in cols]
        at_seq, at_prefix = names.index(SEQ), names.index("prefix")
        head[at_seq] = chunk
        tail = list(head)
        tail[at_prefix] = head[at_prefix] + new - chunk
        mult = scale * w[r_idx, s_idx]
        self.groups[key].add(rows[r_idx], slot, mult, head)
        self.groups[tail_key].add(rows[r_idx], slot, mult, tail)


def _cp_split(tokens: np.ndarray, op: OpSpec) -> np.ndarray:
    """The tokens one context-parallel rank handles (ceil, the peer's ``seq_split``)."""
    return -(-tokens // op.seq_split) if op.seq_split > 1 else tokens


def _split(tokens: np.ndarray, op: OpSpec) -> np.ndarray:
    """The tokens one rank handles when the op splits them: over context-parallel ranks, then over
    SGLang wide-EP attention-TP ranks (floor, as the peer)."""
    tokens = _cp_split(tokens, op)
    return tokens // op.token_split if op.token_split > 1 else tokens


# The per-step sequence length of a step op (context: new tokens; decode: KV length): its name in
# a family's columns, and the marker ``_value`` leaves for ``step_op`` to fill per point.
SEQ = "seq"
_STEP_SEQ = object()

# Values a family's query reads that are not OpSpec fields, by name: per-row coordinates (given the
# phase coordinates, the op and its rows) and values derived from the op. Any other name is the
# OpSpec field of that name.
_DERIVED: dict[str, Callable[[PhaseCoords, OpSpec, np.ndarray], object]] = {
    # global tokens: the row's tokens times attention dp (MoE expert compute)
    "tokens": lambda c, op, rows: c.x[rows] * op.dp,
    # tokens per attention-TP rank (all-to-all phases)
    "rank_tokens": lambda c, op, rows: _split(c.x[rows], op),
    "batch": lambda c, op, rows: c.batch[rows],
    "prefix": lambda c, op, rows: c.prefix[rows],
    # GEMM m: the LM head sees the context phase's last tokens only (over cp ranks: ceil(batch / cp))
    "gemm_m": lambda c, op, rows: _cp_split(c.x_logits[rows], op) if op.logits else _split(c.x[rows], op),
    "elementwise_bytes": lambda c, op, rows: op.bytes_per_token * _split(c.x[rows], op).astype(np.float64),
    # embedding and pipeline hand-off: the activations of a context-parallel rank's tokens
    "activation_bytes": lambda c, op, rows: float(ACTIVATION_BYTES * op.hidden) * _cp_split(c.x[rows], op),
    # the all-reduce of a context-parallel rank's tokens
    "rank_hidden_elems": lambda c, op, rows: _cp_split(c.x[rows], op) * op.hidden,
    # a collective over all of the row's tokens: the context-parallel KV all-gather moves every
    # rank's KV to every rank
    "hidden_elems": lambda c, op, rows: c.x[rows] * op.hidden,
    # Only fp8_static reads the flag (it skips the scale-matrix overhead for quantized inputs).
    "low_precision_input": lambda c, op, rows: op.low_precision_input and op.quant == "fp8_static",
    "bmm_phase": lambda c, op, rows: "pre" if op.pre else "post",
    "module_phase": lambda c, op, rows: "context" if op.name.startswith("context") else "generation",
}


def _value(c: PhaseCoords, op: OpSpec, rows: np.ndarray, name: str):
    if name == SEQ:
        return _STEP_SEQ
    derived = _DERIVED.get(name)
    return derived(c, op, rows) if derived is not None else getattr(op, name)


def _always(op: OpSpec) -> bool:
    return True


def _multi_gpu(op: OpSpec) -> bool:
    return op.num_gpus > 1


class OpFamily(NamedTuple):
    """How the ops of one family are priced: the database query that answers them and its arguments.

    The query is called as ``query(db)(*categorical, *constants, *columns, **flags)`` (plus
    ``missing="nan"`` where it takes it) once per phase and group: ``categorical`` and ``flags``
    values split the groups, ``columns`` are per point. Names resolve through ``_DERIVED``, else
    as OpSpec fields; ``SEQ`` is the per-step sequence length (``per_step``: a point per
    quadrature step, else per row).
    """

    query: Callable[[object], Callable] | None
    categorical: tuple[str, ...]
    columns: tuple[str, ...]
    flags: tuple[str, ...] = ()
    constants: tuple = ()
    per_step: bool = False
    nan: bool = True  # the query takes missing="nan" (the analytic ones answer everything)
    priced: Callable[[OpSpec], bool] = _always  # ops it skips cost nothing
    group: Family | None = None  # price with another family's query, in its groups
    module: bool = False  # a whole-module table: priced first, its misses by the op's fallback
    # Ops whose points belong to other families' queries: ``points(gather, op, rows, slot)``.
    points: Callable | None = None
    fixed: tuple[tuple[str, object], ...] = ()  # keyword arguments every call passes


def _dispatch_points(g: _Gather, op: OpSpec, rows: np.ndarray, slot: int) -> None:
    """MoE dispatch/combine: each collective term is a point of the all-reduce or NCCL family."""
    for term in op.terms:
        elems = g.c.x[rows].astype(np.float64) * term.token_multiplier * op.hidden * term.element_factor
        if term.collective == "all_reduce":
            g.token_op((Family.ALLREDUCE,), rows, slot, op.scale, [term.num_gpus, elems])
        else:
            g.token_op((Family.NCCL, term.collective), rows, slot, op.scale, [term.num_gpus, elems])


OP_FAMILIES: dict[Family, OpFamily] = {
    Family.GEMM: OpFamily(
        lambda db: db.gemm_ms, ("quant",), ("gemm_m", "n", "k"), flags=("low_precision_input",)
    ),
    Family.ELEMENTWISE: OpFamily(lambda db: db.mem_op_ms, (), ("elementwise_bytes",), nan=False),
    # Memory-bound like the element-wise ops: one call prices both.
    Family.EMBEDDING: OpFamily(
        lambda db: db.mem_op_ms, (), ("activation_bytes",), nan=False, group=Family.ELEMENTWISE
    ),
    Family.P2P: OpFamily(lambda db: db.p2p_ms, (), ("activation_bytes",), nan=False, priced=_multi_gpu),
    Family.ALLREDUCE: OpFamily(
        lambda db: db.custom_allreduce_ms, (), ("num_gpus", "rank_hidden_elems"), priced=_multi_gpu
    ),
    Family.NCCL: OpFamily(
        lambda db: db.nccl_ms, ("collective",), ("num_gpus", "hidden_elems"), constants=("half",)
    ),
    # A sum of collective terms, each priced as an all-reduce or NCCL op (``_dispatch_points``).
    Family.MOE_DISPATCH: OpFamily(None, (), (), points=_dispatch_points),
    Family.MLA_BMM: OpFamily(lambda db: db.mla_bmm_ms, ("bmm_phase", "quant"), ("batch", "heads")),
    Family.MLA_MODULE: OpFamily(
        lambda db: db.mla_module_ms,
        ("module_phase", "quant", "kv_quant"),
        ("batch", SEQ, "prefix", "heads"),
        flags=("fmha_quant",),
        per_step=True,
        module=True,
    ),
    Family.MOE: OpFamily(
        lambda db: db.moe_ms,
        ("quant", "distribution"),
        ("topk", "experts", "hidden", "inter", "moe_tp", "moe_ep", "tokens"),
        flags=("gated",),
    ),
    # All-to-all phases see per-rank tokens (TRT-LLM shards nothing by attention tp here).
    Family.MOE_A2A: OpFamily(
        lambda db: db.moe_a2a_ms,
        ("a2a_backend", "a2a_phase", "a2a_dtype"),
        ("moe_ep", "nodes", "hidden", "topk", "experts", "rank_tokens"),
        flags=("sms",),
    ),
    Family.MOE_EP: OpFamily(
        lambda db: db.moe_expert_compute_ms,
        ("quant", "distribution"),
        ("topk", "experts", "slots", "hidden", "inter", "moe_ep", "tokens"),
        flags=("gated", "kernel"),
    ),
    # The database adds the fused rope / KV-write / qk-norm extras of the peer's op.
    Family.CONTEXT_ATTENTION: OpFamily(
        lambda db: db.context_attention_ms,
        ("fmha_quant", "kv_quant"),
        ("batch", SEQ, "prefix", "heads", "kv_heads", "head_dim", "window"),
        flags=("qk_norm",),
        per_step=True,
    ),
    Family.GENERATION_ATTENTION: OpFamily(
        lambda db: db.generation_attention_ms,
        ("kv_quant",),
        ("batch", SEQ, "heads", "kv_heads", "head_dim", "window"),
        per_step=True,
    ),
    Family.CONTEXT_MLA: OpFamily(
        lambda db: db.context_mla_ms,
        ("fmha_quant", "kv_quant"),
        ("batch", SEQ, "prefix", "heads"),
        per_step=True,
    ),
    Family.GENERATION_MLA: OpFamily(
        lambda db: db.generation_mla_ms, ("kv_quant",), ("batch", SEQ, "heads"), per_step=True
    ),
    # SGLang wide-EP MLA: ``kernel`` is the attention lane, ``fmha_quant`` the table's MLA dtype.
    Family.WIDEEP_CONTEXT_MLA: OpFamily(
        lambda db: db.wideep_context_mla_ms,
        ("kernel", "fmha_quant", "kv_quant"),
        ("batch", SEQ, "prefix", "heads"),
        per_step=True,
    ),
    Family.WIDEEP_GENERATION_MLA: OpFamily(
        lambda db: db.wideep_generation_mla_ms,
        ("kernel", "fmha_quant", "kv_quant"),
        ("batch", SEQ, "heads"),
        per_step=True,
    ),
}


# The second chunk of a context-parallel zigzag pair (``_Gather.zigzag_op``): the context-attention
# query without its fused side-ops, in groups of its own.
_ZIGZAG_TAIL = "context_attention_zigzag_tail"
# The attention kernels priced as a zigzag pair under cp (``OpSpec.cp``).
_ZIGZAG_FAMILIES = frozenset({Family.CONTEXT_ATTENTION, Family.CONTEXT_MLA, Family.WIDEEP_CONTEXT_MLA})
_PRICING: dict[object, OpFamily] = {
    **OP_FAMILIES,
    _ZIGZAG_TAIL: OP_FAMILIES[Family.CONTEXT_ATTENTION]._replace(fixed=(("fused_extras", False),)),
}


def _add_points(g: _Gather, op: OpSpec, rows: np.ndarray, slot: int) -> None:
    """Append the query points of one op for ``rows``, keyed by its family's query and groups."""
    spec = OP_FAMILIES[op.family]
    if not spec.priced(op):
        return
    c = g.c
    key = (
        spec.group or op.family,
        *(_value(c, op, rows, name) for name in spec.categorical),
        *(_value(c, op, rows, name) for name in spec.flags),
    )
    cols = [_value(c, op, rows, name) for name in spec.columns]
    if spec.per_step and op.cp > 1:
        if op.family not in _ZIGZAG_FAMILIES:  # pragma: no cover - the graphs never build it
            raise AssertionError(f"{op.name}: context parallelism prices context attention kernels only")
        # GQA's second call drops the fused side-ops; the MLA kernels have none: the same query.
        tail = (_ZIGZAG_TAIL, *key[1:]) if op.family is Family.CONTEXT_ATTENTION else key
        g.zigzag_op(key, tail, rows, slot, op.scale, op.cp, spec.columns, cols)
    elif spec.per_step:
        g.step_op(key, rows, slot, op.scale, cols)
    else:
        g.token_op(key, rows, slot, op.scale, cols)


def _add_op(g: _Gather, op: OpSpec, rows: np.ndarray, slot: int) -> None:
    """Append one op's query points for ``rows`` (all of one layout)."""
    if op.scale == 0:
        return
    (OP_FAMILIES[op.family].points or _add_points)(g, op, rows, slot)


def _run_group(db, key: tuple, cols: list[np.ndarray]) -> np.ndarray:
    """One database call for all points of one family and categorical key (misses -> NaN)."""
    spec = _PRICING[key[0]]
    n_cat = len(spec.categorical)
    flags = dict(zip(spec.flags, key[1 + n_cat :], strict=True))
    if spec.nan:
        flags["missing"] = "nan"
    return spec.query(db)(*key[1 : 1 + n_cat], *spec.constants, *cols, **flags, **dict(spec.fixed))


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
            if OP_FAMILIES[op.family].module:
                modules.append((op, rows, slot))
            else:
                _add_op(g, op, rows, slot)
    # Whole-module tables answer where they cover the query; other rows take the granular ops.
    missed = _price_modules(g, db, modules, n_rows)
    for op, rows, slot in modules:
        uncovered = rows[missed[rows]]
        if len(uncovered):
            for inner in op.fallback:
                _add_op(g, inner, uncovered, slot)

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
        _add_points(gm, op, rows, slot)
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
