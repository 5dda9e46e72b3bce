"""Grid resolver kernels: batched lookups in ragged measured grids with roofline-anchored tails.

A grid family (e.g. context attention) is a set of *slices* (one per categorical key); each slice
is a dense row-major array over up to three numeric axes with NaN where nothing was measured
(ragged, corner-truncated tables). Per query:

1. exact hit: every coordinate is a measured key -> the measured value;
2. inside: per axis (outer -> inner) bracket the coordinate between the neighbouring keys that have
   data below them, resolve both sub-grids and blend (sqrt space along ``transform_axis``, raw
   elsewhere); if only one bracket side resolves (ragged edge), scale the survivor by the roofline
   ratio SOL(query) / SOL(query snapped to the survivor's key);
3. outside anywhere: hold utilisation (SOL / latency) of the 4 nearest measured points in joint
   log2 space with tapered inverse-distance weights (support radius = the 5th point's distance);
   1-D curves hold the boundary point's utilisation instead.

Provenance codes: 0 exact, 1 interpolated, 2 edge-corrected, 3 extrapolated; -1 = slice missing.
The roofline (SOL) formulas the tails need live here too (``_sol``), selected by ``sol_kind`` and a
per-query parameter row; ``sol_batch`` exposes them for the pure-roofline mode.

Cold start is dominated by compiling these kernels, so they are shaped for compile time: few
functions (each compiled callee is re-optimised inside every caller), one specialisation each
(typed, never literal, arguments; 1-D scratch allocations), loops instead of per-depth recursion,
and small hand-written searches instead of numba's generic sort/searchsorted. The budget is
pinned by tests/kernels/test_compile_budget.py.
"""

import numpy as np

from servopt_kernels.jit import kernel
from servopt_kernels.primitives import (
    HOLD_NEIGHBOURS,
    PROV_EDGE_CORRECTED,
    PROV_EXACT,
    PROV_EXTRAPOLATED,
    PROV_INTERPOLATED,
    PROV_MISSING,
    idw_blend,
    keep_nearest,
    search_left,
)

# Roofline kinds (``sol_kind``) and their parameter rows.
SOL_CTX_ATTN = (
    0  # coords (heads, full_seq, batch); p = n_kv(0: MHA), head_dim, window, kv_bytes, flops, mem_bw, prefix
)
SOL_GEN_ATTN = 1  # coords (heads, batch, kv_len); p = n_kv(0: MHA), head_dim, window, kv_bytes, flops, mem_bw
SOL_CTX_MLA = 2  # coords (heads, full_seq, batch); p = kv_bytes, flops, mem_bw, prefix
SOL_GEN_MLA = 3  # coords (heads, batch, kv_len); p = kv_bytes, flops, mem_bw
SOL_GEN_MLA_MODULE = (
    4  # coords (heads, batch, kv_len); p = kv_bytes, attn_flops, mem_bw, gemm_bytes, bmm_flops
)
SOL_MLA_BMM = 5  # coords (tokens,); p = heads, quant_bytes, flops, mem_bw
SOL_MOE = (
    6  # coords (tokens,); p = topk, experts, hidden, inter, moe_tp, moe_ep, num_gemms, bytes, flops, mem_bw
)
SOL_LINEAR = 7  # coords (x,); SOL = x (collectives: latency ~ message size within one slice)
# SGLang's wide-EP MLA kernels: the MLA rooflines plus the head-sharded projections (q_b, kv_b,
# o_proj) the measured kernel runs; p as SOL_CTX_MLA / SOL_GEN_MLA, then gemm_bytes.
SOL_WIDEEP_CTX_MLA = 8  # coords (heads, full_seq, batch); p = kv_bytes, flops, mem_bw, prefix, gemm_bytes
SOL_WIDEEP_GEN_MLA = 9  # coords (heads, batch, kv_len); p = kv_bytes, flops, mem_bw, gemm_bytes

_OK = 0
_OUT = 1

# DeepSeek MLA dimensions the peer's MLA rooflines are written for.
MLA_QK_DIM = 192.0  # nope 128 + rope 64
MLA_V_DIM = 128.0
MLA_GEN_DIM = 1088.0  # latent 512 + rope 64 per head, q and output (2 x 544)
MLA_KV_LATENT = 576.0  # kv_lora_rank 512 + rope 64
MLA_BMM_N = 128.0
MLA_BMM_K = 512.0
MLA_BMM_TOKEN_ELEMS = 640.0  # 128 + 512 elements per token and head
# q_b (1536 x 192), kv_b (512 x 256) and o_proj (128 x 7168) weights per head (DeepSeek-V3).
MLA_PROJ_PER_HEAD = 1536.0 * 192.0 + 512.0 * 256.0 + 128.0 * 7168.0
WIDEEP_GEN_BYTES_PER_HEAD = 4608.0
WIDEEP_GEN_BYTES_PER_SEQ = 17040.0
MS_PER_S = 1000.0


@kernel
def _sol_wideep_mla(kind, p, c0, c1, c2):
    """SGLang's wide-EP MLA kernels: the MLA rooflines plus the head-sharded projections (q_b, kv_b,
    o_proj) the measured kernel runs. A function of its own so the other kinds' code (compiled with
    reassociation and contraction) is untouched."""
    if kind == SOL_WIDEEP_CTX_MLA:
        n, full_s, b = c0, c1, c2
        prefix = p[3]
        qkv = MLA_QK_DIM + MLA_V_DIM
        ops = b * n * 2.0 / 2.0 * qkv * (full_s * full_s - prefix * prefix)
        ops += b * (full_s - prefix) * n * MLA_PROJ_PER_HEAD
        mem = b * n * (p[0] * full_s * qkv + 2.0 * (full_s - prefix) * qkv) + n * MLA_PROJ_PER_HEAD * p[4]
        return max(ops / p[1] * MS_PER_S, mem / p[2] * MS_PER_S)
    # SOL_WIDEEP_GEN_MLA, fitted to the peer's roofline of this op (its SOL mode, DeepSeek-V3 at
    # 32/64/128 heads): projections read once, absorbed attention at twice the op-level MLA FLOPs,
    # and per-sequence activations of 4608 B per head + 17040 B besides a 2 x 576-element KV read.
    n, b, s = c0, c1, c2
    ops = 2.0 * b * n * MLA_PROJ_PER_HEAD + 4.0 * b * n * MLA_GEN_DIM * s
    per_seq = (
        n * WIDEEP_GEN_BYTES_PER_HEAD + WIDEEP_GEN_BYTES_PER_SEQ + 2.0 * (s - 1.0) * MLA_KV_LATENT * p[0]
    )
    mem = n * MLA_PROJ_PER_HEAD * p[3] + b * per_seq
    return max(ops / p[1] * MS_PER_S, mem / p[2] * MS_PER_S)


@kernel
def _sol(kind, p, c0, c1, c2):
    """Roofline latency in ms, max(math, memory), for one point."""
    if kind == SOL_LINEAR:
        return c0
    if kind == SOL_CTX_ATTN:
        n, full_s, b = c0, c1, c2
        n_kv = n if p[0] == 0.0 else p[0]
        h, w, prefix = p[1], p[2], p[6]
        new = full_s - prefix
        if w > 0.0 and full_s > w:
            ops = 2.0 * b * new * w * n * h * 2.0
        else:
            ops = 2.0 * b * (full_s * full_s - prefix * prefix) * n * h * 2.0 / 2.0
        mem = 2.0 * b * (n * new * h + n * new * h) + p[3] * b * (2.0 * n_kv * full_s * h)
        return max(ops / p[4] * MS_PER_S, mem / p[5] * MS_PER_S)
    if kind == SOL_GEN_ATTN:
        n, b, s = c0, c1, c2
        n_kv = n if p[0] == 0.0 else p[0]
        h, w = p[1], p[2]
        kv_len = min(s - 1.0, w) if w > 0.0 else s - 1.0
        ops = 2.0 * b * n * h * 2.0 * kv_len
        mem = b * (n * h * 2.0 + 2.0 * n_kv * kv_len * h * p[3] + n * h * 2.0)
        return max(ops / p[4] * MS_PER_S, mem / p[5] * MS_PER_S)
    if kind == SOL_CTX_MLA:
        n, full_s, b = c0, c1, c2
        prefix = p[3]
        qkv = MLA_QK_DIM + MLA_V_DIM
        ops = b * n * 2.0 / 2.0 * qkv * (full_s * full_s - prefix * prefix)
        mem = b * n * (p[0] * full_s * qkv + 2.0 * (full_s - prefix) * qkv)
        return max(ops / p[1] * MS_PER_S, mem / p[2] * MS_PER_S)
    if kind == SOL_GEN_MLA or kind == SOL_GEN_MLA_MODULE:  # noqa: SIM109 - plain compares compile in numba
        n, b, s = c0, c1, c2
        ops = 2.0 * b * n * MLA_GEN_DIM * s
        mem = b * (n * MLA_GEN_DIM * 2.0 + (s - 1.0) * MLA_KV_LATENT * p[0])
        t_math = ops / p[1] * MS_PER_S
        t_mem = mem / p[2] * MS_PER_S
        if kind == SOL_GEN_MLA_MODULE:
            # The module also runs the pre/post absorption BMMs: folded in before the max.
            bmm_ops = 2.0 * 2.0 * b * n * MLA_BMM_N * MLA_BMM_K
            bmm_mem = 2.0 * n * (b * MLA_BMM_TOKEN_ELEMS + MLA_BMM_N * MLA_BMM_K) * p[3]
            t_math += bmm_ops / p[4] * MS_PER_S
            t_mem += bmm_mem / p[2] * MS_PER_S
        return max(t_math, t_mem)
    if kind == SOL_MLA_BMM:
        t = c0
        n = p[0]
        ops = 2.0 * t * n * MLA_BMM_N * MLA_BMM_K
        mem = n * (t * MLA_BMM_TOKEN_ELEMS + MLA_BMM_N * MLA_BMM_K) * p[1]
        return max(ops / p[2] * MS_PER_S, mem / p[3] * MS_PER_S)
    if kind == SOL_MOE:
        # Integer floor divisions on purpose: the peer's MoE roofline is written that way.
        # round() is half-to-even like np.round, lowered inline (np.round compiles two helpers).
        tokens = np.int64(round(c0)) * np.int64(p[0])
        experts, hid, inter = np.int64(p[1]), np.int64(p[2]), np.int64(p[3])
        tp, ep, gemms = max(np.int64(p[4]), 1), max(np.int64(p[5]), 1), np.int64(p[6])
        ops = tokens * hid * inter * gemms * 2 // ep // tp
        mem_i = tokens // ep * hid * 2 + tokens // ep * inter * gemms // tp
        mem_i += hid * inter * gemms // tp * min(experts // ep, tokens // ep)
        return max(float(ops) / p[8] * MS_PER_S, float(mem_i) * p[7] / p[9] * MS_PER_S)
    if kind == SOL_WIDEEP_CTX_MLA or kind == SOL_WIDEEP_GEN_MLA:  # noqa: SIM109 - plain compares compile in numba
        return _sol_wideep_mla(kind, p, c0, c1, c2)
    return np.nan


# Bracket tree of one query: level a holds up to 2**a nodes, heap-ordered (node j of level a sits
# at (2**a - 1) + j, its lo/hi branches at slots 2j and 2j + 1 of level a + 1). Nodes live in two
# flat scratch arrays, NODE_INTS int64 and NODE_FLOATS float64 fields per node.
TREE_NODES = 7  # 1 + 2 + 4 inner nodes for three axes
NODE_INTS = 4
_MODE, _PREFIX, _STATUS, _PROV = 0, 1, 2, 3
NODE_FLOATS = 5
_KLO, _KHI, _VLO, _VHI, _VALUE = 0, 1, 2, 3, 4  # bracket keys, leaf-level bracket values, result
# Node modes: unused, to bracket, result known, exact key (result = lo branch's), two branches.
_IDLE, _OPEN, _DONE, _PASS, _SPLIT = 0, 1, 2, 3, 4


@kernel
def _interior(s, ndim, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis, ni, nf):
    """Bracket-and-blend inside slice ``s`` -> (status, latency, provenance).

    The same answer as recursing axis by axis (outer -> inner), as two sweeps over an explicit tree
    (one compiled body instead of a function per depth): top-down brackets every open node among
    the keys with data below it (an exact key opens one branch, a bracket two, leaving the present
    keys closes the node as out of range); bottom-up blends each node's two branches: sqrt space
    along ``taxis``, raw elsewhere, or, when only one branch resolves (ragged edge), the survivor
    scaled by SOL(query) / SOL(query snapped to the survivor's key).
    """
    for k in range(TREE_NODES):
        ni[k * NODE_INTS + _MODE] = _IDLE
    ni[_MODE] = _OPEN
    ni[_PREFIX] = 0
    for a in range(ndim):
        n = ax_len[s, a]
        off = ax_off[s, a]
        c = q[a]
        leaf_level = a == ndim - 1
        level = (1 << a) - 1
        below = (1 << (a + 1)) - 1
        for j in range(1 << a):
            ki = (level + j) * NODE_INTS
            kf = (level + j) * NODE_FLOATS
            if ni[ki + _MODE] != _OPEN:
                continue
            base = ni[ki + _PREFIX] * n
            poff = pres_off[s, a] + base
            pos = search_left(axes, off, off + n, c) - off
            exact = -1
            hi = pos
            if pos < n and axes[off + pos] == c:
                if pres[poff + pos]:
                    exact = pos
                hi = pos + 1
            lo = pos - 1
            if exact < 0:
                while lo >= 0 and not pres[poff + lo]:
                    lo -= 1
                while hi < n and not pres[poff + hi]:
                    hi += 1
            lo_i = (below + 2 * j) * NODE_INTS
            if exact >= 0 and leaf_level:
                ni[ki + _MODE] = _DONE
                ni[ki + _STATUS] = _OK
                ni[ki + _PROV] = PROV_EXACT
                nf[kf + _VALUE] = vals[val_off[s] + base + exact]
            elif exact >= 0:
                ni[ki + _MODE] = _PASS
                ni[lo_i + _MODE] = _OPEN
                ni[lo_i + _PREFIX] = base + exact
            elif lo < 0 or hi >= n:
                ni[ki + _MODE] = _DONE
                ni[ki + _STATUS] = _OUT
                ni[ki + _PROV] = PROV_EXTRAPOLATED
                nf[kf + _VALUE] = np.nan
            else:
                ni[ki + _MODE] = _SPLIT
                nf[kf + _KLO] = axes[off + lo]
                nf[kf + _KHI] = axes[off + hi]
                if leaf_level:
                    nf[kf + _VLO] = vals[val_off[s] + base + lo]
                    nf[kf + _VHI] = vals[val_off[s] + base + hi]
                else:
                    ni[lo_i + _MODE] = _OPEN
                    ni[lo_i + _PREFIX] = base + lo
                    ni[lo_i + NODE_INTS + _MODE] = _OPEN
                    ni[lo_i + NODE_INTS + _PREFIX] = base + hi
    for a in range(ndim - 1, -1, -1):
        c = q[a]
        level = (1 << a) - 1
        below = (1 << (a + 1)) - 1
        for j in range(1 << a):
            ki = (level + j) * NODE_INTS
            kf = (level + j) * NODE_FLOATS
            lo_i = (below + 2 * j) * NODE_INTS
            lo_f = (below + 2 * j) * NODE_FLOATS
            mode = ni[ki + _MODE]
            if mode == _PASS:
                ni[ki + _STATUS] = ni[lo_i + _STATUS]
                ni[ki + _PROV] = ni[lo_i + _PROV]
                nf[kf + _VALUE] = nf[lo_f + _VALUE]
                continue
            if mode != _SPLIT:
                continue
            if a == ndim - 1:
                st_lo, v_lo, pr_lo = _OK, nf[kf + _VLO], PROV_EXACT
                st_hi, v_hi, pr_hi = _OK, nf[kf + _VHI], PROV_EXACT
            else:
                st_lo, v_lo, pr_lo = ni[lo_i + _STATUS], nf[lo_f + _VALUE], ni[lo_i + _PROV]
                hi_i = lo_i + NODE_INTS
                st_hi, v_hi, pr_hi = ni[hi_i + _STATUS], nf[lo_f + NODE_FLOATS + _VALUE], ni[hi_i + _PROV]
            k_lo = nf[kf + _KLO]
            k_hi = nf[kf + _KHI]
            if st_lo == _OK and st_hi == _OK:
                w = (c - k_lo) / (k_hi - k_lo)
                pr = max(PROV_INTERPOLATED, max(pr_lo, pr_hi))
                if a == taxis:
                    ra = np.sqrt(v_lo) if v_lo > 0.0 else 0.0
                    rb = np.sqrt(v_hi) if v_hi > 0.0 else 0.0
                    r = ra + (rb - ra) * w
                    v = r * r
                else:
                    v = v_lo + (v_hi - v_lo) * w
                st = _OK
            elif st_lo == _OK or st_hi == _OK:
                k_s, v, pr_s = (k_lo, v_lo, pr_lo) if st_lo == _OK else (k_hi, v_hi, pr_hi)
                # Hold the survivor's utilisation across this axis.
                sol_q = _sol(kind, p, q[0], q[1], q[2])
                sol_s = _sol(
                    kind, p, k_s if a == 0 else q[0], k_s if a == 1 else q[1], k_s if a == 2 else q[2]
                )
                if np.isfinite(sol_q) and np.isfinite(sol_s) and sol_q > 0.0 and sol_s > 0.0:
                    v = v * (sol_q / sol_s)
                st = _OK
                pr = max(PROV_EDGE_CORRECTED, pr_s)
            else:
                st, v, pr = _OUT, np.nan, PROV_EXTRAPOLATED
            ni[ki + _STATUS] = st
            ni[ki + _PROV] = pr
            nf[kf + _VALUE] = v
    return ni[_STATUS], nf[_VALUE], ni[_PROV]


@kernel
def _hold(s, ndim, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, leaf_off, leaf_coord, leaf_lat,
          kind, p, dist, order, best_d, best_u):  # fmt: skip
    """Utilisation hold past the data -> latency at the query (NaN when nothing anchors it).

    1-D curves hold the boundary point's utilisation. Otherwise the HOLD_NEIGHBOURS nearest valid
    leaves in joint log2 space anchor, with tapered inverse-distance weights whose support radius
    is the next leaf's distance. The search is pruned axis by axis: keys are visited nearest-first
    per axis and a branch stops once its partial distance reaches the current 5th-best (a leaf on
    that radius weighs zero, so pruning it changes nothing). Scratch: ``dist`` (3 * longest),
    ``order`` (2 * longest), ``best_d`` / ``best_u`` (HOLD_NEIGHBOURS + 1 each: squared distances,
    then distances, and utilisations for ``keep_nearest`` / ``idw_blend``).
    """
    lo, hi = leaf_off[s], leaf_off[s + 1]
    if hi <= lo:
        return np.nan
    longest = dist.shape[0] // 3
    sol_q = _sol(kind, p, q[0], q[1], q[2])
    if ndim == 1:
        i = hi - 1 if q[0] > leaf_coord[hi - 1, 0] else lo
        sol_b = _sol(kind, p, leaf_coord[i, 0], 0.0, 0.0)
        if not (leaf_lat[i] > 0.0 and sol_b > 0.0 and sol_q > 0.0):
            return np.nan
        return sol_q / (sol_b / leaf_lat[i])
    if not (sol_q > 0.0):
        return np.nan
    k = HOLD_NEIGHBOURS + 1
    for j in range(k):
        best_d[j] = np.inf
        best_u[j] = 0.0
    # A 2-axis slice is a 3-axis one with a single innermost key at distance 0.
    n0, n1 = ax_len[s, 0], ax_len[s, 1]
    n2 = ax_len[s, 2] if ndim == 3 else 1
    o0, o1, o2 = ax_off[s, 0], ax_off[s, 1], ax_off[s, 2]
    for a in range(ndim):
        off = ax_off[s, a]
        ql = np.log2(max(q[a], 1e-12))
        for i in range(ax_len[s, a]):
            t = np.log2(max(axes[off + i], 1e-12)) - ql
            dist[a * longest + i] = t * t
    if ndim == 2:
        dist[2 * longest] = 0.0
    # Nearest-first key order on the two outer axes: a stable insertion sort (axes are short).
    for a in range(2):
        d_off = a * longest
        for i in range(ax_len[s, a]):
            x = dist[d_off + i]
            j = i
            while j > 0 and dist[d_off + order[d_off + j - 1]] > x:
                order[d_off + j] = order[d_off + j - 1]
                j -= 1
            order[d_off + j] = i
    split = search_left(axes, o2, o2 + n2, q[2]) - o2 if ndim == 3 else 0
    count = np.int64(0)  # not a literal 0: keep_nearest / idw_blend compile once, for int64
    for a in range(n0):
        i0 = order[a]
        if count == k and dist[i0] >= best_d[k - 1]:
            break
        if not pres[pres_off[s, 0] + i0]:
            continue
        for b in range(n1):
            i1 = order[longest + b]
            d01 = dist[i0] + dist[longest + i1]
            if count == k and d01 >= best_d[k - 1]:
                break
            row = i0 * n1 + i1
            if not pres[pres_off[s, 1] + row]:
                continue
            base = val_off[s] + row * n2
            # Innermost keys outwards from the query: below it descending, then above ascending.
            for side in range(2):
                j = split - 1 if side == 0 else split
                step = -1 if side == 0 else 1
                while 0 <= j < n2:
                    d = d01 + dist[2 * longest + j]
                    if count == k and d >= best_d[k - 1]:
                        break
                    lat = vals[base + j]
                    c2 = axes[o2 + j] if ndim == 3 else 0.0
                    sol_i = _sol(kind, p, axes[o0 + i0], axes[o1 + i1], c2) if not np.isnan(lat) else np.nan
                    if np.isfinite(lat) and lat > 0.0 and np.isfinite(sol_i) and sol_i > 0.0:
                        count = keep_nearest(best_d, best_u, count, d, sol_i / lat)
                    j += step
    # The search ran on squared distances (same order, no square roots); the blend takes distances.
    for j in range(count):
        best_d[j] = np.sqrt(best_d[j])
    return sol_q / idw_blend(best_d, best_u, count)


# Decode-length smoothing: average this many lookups spread over [0.9 s, 1.1 s].
AVG_POINTS = 5


@kernel(
    returns="none",
    args=(
        "float64[::1]",
        "int64[:, ::1]",
        "int64[:, ::1]",
        "float64[::1]",
        "int64[::1]",
        "uint8[::1]",
        "int64[:, ::1]",
        "int64[::1]",
        "float64[:, ::1]",
        "float64[::1]",
        "int64",
        "int64",
        "int64",
        "int64",
        "int64[::1]",
        "float64[:, ::1]",
        "float64[:, ::1]",
        "float64[::1]",
        "int8[::1]",
    ),
)
def grid_lookup(
    axes, ax_off, ax_len, vals, val_off, pres, pres_off, leaf_off, leaf_coord, leaf_lat,
    ndim, kind, taxis, avg_axis, slice_ids, coords, params, out_ms, out_prov,
):  # fmt: skip
    """Batched lookup of ``Q`` queries in one grid family.

    slice_ids: (Q,) int64, -1 = no such slice; coords: (Q, ndim) float64 in the family's axis order;
    params: (Q, P) float64 roofline parameter rows; out_ms: (Q,) float64; out_prov: (Q,) int8.
    ``avg_axis`` >= 0 averages five lookups at s_i = s_min + (s_max - s_min) * i // 4 along that
    axis, s_min = max(1, floor(0.9 s)), s_max = max(s_min, floor(1.1 s)) (decode-length smoothing).
    """
    # Longest axis of any slice, for the hold's per-axis scratch (1-D curves hold without it).
    longest = 1
    if ndim > 1:
        for s in range(ax_len.shape[0]):
            for a in range(ndim):
                longest = max(longest, ax_len[s, a])
    # Scratch shared by every query (1-D allocations only: each allocation form compiles once).
    q = np.empty(3)
    q[:] = 0.0
    ni = np.empty(TREE_NODES * NODE_INTS, dtype=np.int64)
    nf = np.empty(TREE_NODES * NODE_FLOATS)
    dist = np.empty(3 * longest)
    order = np.empty(2 * longest, dtype=np.int64)
    best_d = np.empty(HOLD_NEIGHBOURS + 1)
    best_u = np.empty(HOLD_NEIGHBOURS + 1)
    reps = 1 if avg_axis < 0 else AVG_POINTS
    for i in range(slice_ids.shape[0]):
        s = slice_ids[i]
        if s < 0:
            out_ms[i] = np.nan
            out_prov[i] = PROV_MISSING
            continue
        for a in range(ndim):
            q[a] = coords[i, a]
        p = params[i]
        s_min = np.int64(0)
        s_max = np.int64(0)
        if avg_axis >= 0:
            seq = np.int64(coords[i, avg_axis])
            s_min = max(np.int64(1), np.int64(seq * 0.9))
            s_max = max(s_min, np.int64(seq * 1.1))
        total = 0.0
        prov = PROV_EXACT
        for r in range(reps):
            if avg_axis >= 0:
                q[avg_axis] = float(s_min + (s_max - s_min) * r // 4)
            v = np.nan
            pr = PROV_MISSING
            if leaf_off[s + 1] > leaf_off[s]:
                st, v, pr = _interior(
                    s, ndim, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis, ni, nf
                )
                if st != _OK:
                    v = _hold(
                        s, ndim, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, leaf_off,
                        leaf_coord, leaf_lat, kind, p, dist, order, best_d, best_u,
                    )  # fmt: skip
                    pr = PROV_EXTRAPOLATED if np.isfinite(v) else PROV_MISSING
            total += v
            prov = max(prov, pr) if pr >= 0 else PROV_MISSING
            if pr < 0:
                break
        if avg_axis < 0:
            out_ms[i] = total
            out_prov[i] = prov
        else:
            out_ms[i] = total / 5.0 if prov >= 0 else np.nan
            out_prov[i] = prov


@kernel(
    returns="none",
    args=(
        "int64",
        "float64[:, ::1]",
        "float64[:, ::1]",
        "float64[::1]",
    ),
)
def sol_batch(kind, coords, params, out_ms):
    """Roofline latency for every row: coords (Q, <=3), params (Q, P) -> out_ms (Q,)."""
    nd = coords.shape[1]
    for i in range(coords.shape[0]):
        c0 = coords[i, 0]
        c1 = coords[i, 1] if nd > 1 else 0.0
        c2 = coords[i, 2] if nd > 2 else 0.0
        out_ms[i] = _sol(kind, params[i], c0, c1, c2)
