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
"""

import numpy as np
from numba import njit

from servopt_kernels.config import FASTMATH as _FASTMATH_FLAGS

# numba takes a plain set (not a frozenset) for fastmath.
FASTMATH = set(_FASTMATH_FLAGS)

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

PROV_MISSING = -1
PROV_EXACT = 0
PROV_INTERP = 1
PROV_EDGE = 2
PROV_EXTRAP = 3

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
HOLD_NEIGHBOURS = 4
MS_PER_S = 1000.0


@njit(cache=True, fastmath=FASTMATH)
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
        tokens = np.int64(np.round(c0)) * np.int64(p[0])
        experts, hid, inter = np.int64(p[1]), np.int64(p[2]), np.int64(p[3])
        tp, ep, gemms = max(np.int64(p[4]), 1), max(np.int64(p[5]), 1), np.int64(p[6])
        ops = tokens * hid * inter * gemms * 2 // ep // tp
        mem_i = tokens // ep * hid * 2 + tokens // ep * inter * gemms // tp
        mem_i += hid * inter * gemms // tp * min(experts // ep, tokens // ep)
        return max(float(ops) / p[8] * MS_PER_S, float(mem_i) * p[7] / p[9] * MS_PER_S)
    return np.nan


@njit(cache=True, fastmath=FASTMATH)
def _sol_at(kind, p, q, axis, value):
    """SOL at the query point with one axis replaced."""
    c0, c1, c2 = q[0], q[1], q[2]
    if axis == 0:
        c0 = value
    elif axis == 1:
        c1 = value
    elif axis == 2:
        c2 = value
    return _sol(kind, p, c0, c1, c2)


@njit(cache=True, fastmath=FASTMATH)
def _bracket(axes, off, n, pres, poff, c):
    """(exact, lo, hi) positions among the keys present at this level; exact = -1 if not a key;
    lo = hi = -1 when c lies outside the present keys."""
    p = np.searchsorted(axes[off : off + n], c)
    if p < n and axes[off + p] == c:
        if pres[poff + p]:
            return p, p, p
        hi = p + 1
    else:
        hi = p
    lo = p - 1
    while lo >= 0 and not pres[poff + lo]:
        lo -= 1
    while hi < n and not pres[poff + hi]:
        hi += 1
    if lo < 0 or hi >= n:
        return -1, -1, -1
    return -1, lo, hi


@njit(cache=True, fastmath=FASTMATH)
def _blend(axis, taxis, kind, p, q, c, k_lo, k_hi, st_lo, v_lo, pr_lo, st_hi, v_hi, pr_hi):
    """Combine the two bracket branches of one axis -> (status, latency, provenance)."""
    if st_lo == _OK and st_hi == _OK:
        w = (c - k_lo) / (k_hi - k_lo)
        if axis == taxis:
            a = np.sqrt(v_lo) if v_lo > 0.0 else 0.0
            b = np.sqrt(v_hi) if v_hi > 0.0 else 0.0
            r = a + (b - a) * w
            return _OK, r * r, max(PROV_INTERP, max(pr_lo, pr_hi))
        return _OK, v_lo + (v_hi - v_lo) * w, max(PROV_INTERP, max(pr_lo, pr_hi))
    if st_lo == _OK or st_hi == _OK:
        k_s, v_s, pr_s = (k_lo, v_lo, pr_lo) if st_lo == _OK else (k_hi, v_hi, pr_hi)
        sol_q = _sol_at(kind, p, q, axis, c)
        sol_s = _sol_at(kind, p, q, axis, k_s)
        if np.isfinite(sol_q) and np.isfinite(sol_s) and sol_q > 0.0 and sol_s > 0.0:
            v_s = v_s * (sol_q / sol_s)
        return _OK, v_s, max(PROV_EDGE, pr_s)
    return _OUT, np.nan, PROV_EXTRAP


@njit(cache=True, fastmath=FASTMATH)
def _last(s, axis, prefix, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis):
    """Resolve the innermost axis of slice ``s`` below the flat ``prefix`` index."""
    n = ax_len[s, axis]
    off = ax_off[s, axis]
    base = prefix * n
    c = q[axis]
    ex, lo, hi = _bracket(axes, off, n, pres, pres_off[s, axis] + base, c)
    if ex >= 0:
        return _OK, vals[val_off[s] + base + ex], PROV_EXACT
    if lo < 0:
        return _OUT, np.nan, PROV_EXTRAP
    v_lo = vals[val_off[s] + base + lo]
    v_hi = vals[val_off[s] + base + hi]
    return _blend(axis, taxis, kind, p, q, c, axes[off + lo], axes[off + hi], _OK, v_lo, 0, _OK, v_hi, 0)


@njit(cache=True, fastmath=FASTMATH)
def _mid(s, axis, prefix, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis):
    """Resolve an axis whose children are innermost-axis rows."""
    n = ax_len[s, axis]
    off = ax_off[s, axis]
    base = prefix * n
    c = q[axis]
    ex, lo, hi = _bracket(axes, off, n, pres, pres_off[s, axis] + base, c)
    if ex >= 0:
        return _last(
            s, axis + 1, base + ex, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis
        )
    if lo < 0:
        return _OUT, np.nan, PROV_EXTRAP
    st_lo, v_lo, pr_lo = _last(
        s, axis + 1, base + lo, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis
    )
    st_hi, v_hi, pr_hi = _last(
        s, axis + 1, base + hi, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis
    )
    return _blend(
        axis, taxis, kind, p, q, c, axes[off + lo], axes[off + hi], st_lo, v_lo, pr_lo, st_hi, v_hi, pr_hi
    )


@njit(cache=True, fastmath=FASTMATH)
def _top(s, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis):
    """Resolve the outermost axis of a 3-axis slice."""
    n = ax_len[s, 0]
    off = ax_off[s, 0]
    c = q[0]
    ex, lo, hi = _bracket(axes, off, n, pres, pres_off[s, 0], c)
    if ex >= 0:
        return _mid(s, 1, ex, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis)
    if lo < 0:
        return _OUT, np.nan, PROV_EXTRAP
    st_lo, v_lo, pr_lo = _mid(
        s, 1, lo, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis
    )
    st_hi, v_hi, pr_hi = _mid(
        s, 1, hi, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis
    )
    return _blend(
        0, taxis, kind, p, q, c, axes[off + lo], axes[off + hi], st_lo, v_lo, pr_lo, st_hi, v_hi, pr_hi
    )


@njit(cache=True, fastmath=FASTMATH)
def _offer(best_d, best_u, count, d, u):
    """Insert (squared distance d, util u) into the ascending best list; returns the new count."""
    k = best_d.shape[0]
    if count == k and d >= best_d[k - 1]:
        return count
    j = min(count, k - 1)
    while j > 0 and best_d[j - 1] > d:
        best_d[j] = best_d[j - 1]
        best_u[j] = best_u[j - 1]
        j -= 1
    best_d[j] = d
    best_u[j] = u
    return min(count + 1, k)


@njit(cache=True, fastmath=FASTMATH)
def _blend_anchors(best_d, best_u, count, sol_q):
    """Tapered inverse-distance blend of the anchors' utilisation -> latency at the query."""
    if count == 0:
        return np.nan
    n_pick = min(count, HOLD_NEIGHBOURS)
    radius = np.sqrt(best_d[HOLD_NEIGHBOURS]) if count > HOLD_NEIGHBOURS else np.inf
    wsum = 0.0
    usum = 0.0
    for j in range(n_pick):
        d = np.sqrt(best_d[j])
        if np.isinf(radius):
            w = 1.0 / (d * d + 1e-12)
        else:
            t = max(radius - d, 0.0) / (radius * d + 1e-12)
            w = t * t
        wsum += w
        usum += w * best_u[j]
    if wsum <= 0.0:
        # Every anchor sits on the support radius: equal weights.
        wsum = 0.0
        usum = 0.0
        for j in range(n_pick):
            wsum += 1.0
            usum += best_u[j]
    return sol_q / (usum / wsum)


@njit(cache=True, fastmath=FASTMATH)
def _valid_util(kind, p, c0, c1, c2, lat):
    sol_i = _sol(kind, p, c0, c1, c2)
    if np.isfinite(lat) and lat > 0.0 and np.isfinite(sol_i) and sol_i > 0.0:
        return sol_i / lat
    return -1.0


@njit(cache=True, fastmath=FASTMATH)
def _hold3(s, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, best_d, best_u):
    """Nearest valid leaves of a 3-axis slice in joint log2 space, pruned axis by axis: keys are
    visited nearest-first per axis and a branch stops once its partial distance reaches the current
    5th-best (a leaf exactly on that radius has zero weight, so pruning it changes nothing)."""
    n0, n1, n2 = ax_len[s, 0], ax_len[s, 1], ax_len[s, 2]
    o0, o1, o2 = ax_off[s, 0], ax_off[s, 1], ax_off[s, 2]
    ql0, ql1, ql2 = np.log2(max(q[0], 1e-12)), np.log2(max(q[1], 1e-12)), np.log2(max(q[2], 1e-12))
    d0 = np.empty(n0)
    for i in range(n0):
        t = np.log2(max(axes[o0 + i], 1e-12)) - ql0
        d0[i] = t * t
    d1 = np.empty(n1)
    for i in range(n1):
        t = np.log2(max(axes[o1 + i], 1e-12)) - ql1
        d1[i] = t * t
    d2 = np.empty(n2)
    for i in range(n2):
        t = np.log2(max(axes[o2 + i], 1e-12)) - ql2
        d2[i] = t * t
    ord0 = np.argsort(d0)
    ord1 = np.argsort(d1)
    split = np.searchsorted(axes[o2 : o2 + n2], q[2])
    k = best_d.shape[0]
    count = 0
    for a in range(n0):
        i0 = ord0[a]
        if count == k and d0[i0] >= best_d[k - 1]:
            break
        if not pres[pres_off[s, 0] + i0]:
            continue
        for b in range(n1):
            i1 = ord1[b]
            d01 = d0[i0] + d1[i1]
            if count == k and d01 >= best_d[k - 1]:
                break
            row = i0 * n1 + i1
            if not pres[pres_off[s, 1] + row]:
                continue
            base = val_off[s] + row * n2
            for j in range(split - 1, -1, -1):
                d = d01 + d2[j]
                if count == k and d >= best_d[k - 1]:
                    break
                lat = vals[base + j]
                if np.isnan(lat):
                    continue
                u = _valid_util(kind, p, axes[o0 + i0], axes[o1 + i1], axes[o2 + j], lat)
                if u > 0.0:
                    count = _offer(best_d, best_u, count, d, u)
            for j in range(split, n2):
                d = d01 + d2[j]
                if count == k and d >= best_d[k - 1]:
                    break
                lat = vals[base + j]
                if np.isnan(lat):
                    continue
                u = _valid_util(kind, p, axes[o0 + i0], axes[o1 + i1], axes[o2 + j], lat)
                if u > 0.0:
                    count = _offer(best_d, best_u, count, d, u)
    return count


@njit(cache=True, fastmath=FASTMATH)
def _hold(
    s, ndim, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, leaf_off, leaf_coord, leaf_lat, kind, p
):
    """Utilisation hold past the data: nearest measured points in joint log2 space."""
    lo, hi = leaf_off[s], leaf_off[s + 1]
    if hi <= lo:
        return np.nan
    sol_q = _sol(kind, p, q[0], q[1], q[2])
    if ndim == 1:
        # 1-D curve: the boundary point on the query's side anchors the utilisation.
        i = hi - 1 if q[0] > leaf_coord[hi - 1, 0] else lo
        sol_b = _sol(kind, p, leaf_coord[i, 0], 0.0, 0.0)
        if not (leaf_lat[i] > 0.0 and sol_b > 0.0 and sol_q > 0.0):
            return np.nan
        return sol_q / (sol_b / leaf_lat[i])
    if not (sol_q > 0.0):
        return np.nan
    # The HOLD_NEIGHBOURS nearest valid leaves anchor; the next one's distance is the support radius.
    best_d = np.full(HOLD_NEIGHBOURS + 1, np.inf)
    best_u = np.zeros(HOLD_NEIGHBOURS + 1)
    if ndim == 3:
        count = _hold3(s, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, best_d, best_u)
        return _blend_anchors(best_d, best_u, count, sol_q)
    count = 0
    for i in range(lo, hi):
        dd = 0.0
        for a in range(ndim):
            t = np.log2(max(leaf_coord[i, a], 1e-12)) - np.log2(max(q[a], 1e-12))
            dd += t * t
        if count == best_d.shape[0] and dd >= best_d[-1]:
            continue
        u = _valid_util(kind, p, leaf_coord[i, 0], leaf_coord[i, 1], leaf_coord[i, 2], leaf_lat[i])
        if u > 0.0:
            count = _offer(best_d, best_u, count, dd, u)
    return _blend_anchors(best_d, best_u, count, sol_q)


@njit(cache=True, fastmath=FASTMATH)
def _resolve(
    s,
    ndim,
    q,
    axes,
    ax_off,
    ax_len,
    vals,
    val_off,
    pres,
    pres_off,
    leaf_off,
    leaf_coord,
    leaf_lat,
    kind,
    p,
    taxis,
):
    if leaf_off[s + 1] <= leaf_off[s]:
        return np.nan, PROV_MISSING
    if ndim == 3:
        st, v, pr = _top(s, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis)
    elif ndim == 2:
        st, v, pr = _mid(s, 0, 0, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis)
    else:
        st, v, pr = _last(s, 0, 0, q, axes, ax_off, ax_len, vals, val_off, pres, pres_off, kind, p, taxis)
    if st == _OK:
        return v, pr
    v = _hold(
        s,
        ndim,
        q,
        axes,
        ax_off,
        ax_len,
        vals,
        val_off,
        pres,
        pres_off,
        leaf_off,
        leaf_coord,
        leaf_lat,
        kind,
        p,
    )
    return v, (PROV_EXTRAP if np.isfinite(v) else PROV_MISSING)


@njit(cache=True, fastmath=FASTMATH)
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
    q = np.zeros(3)
    for i in range(slice_ids.shape[0]):
        s = slice_ids[i]
        if s < 0:
            out_ms[i] = np.nan
            out_prov[i] = PROV_MISSING
            continue
        for a in range(ndim):
            q[a] = coords[i, a]
        p = params[i]
        if avg_axis < 0:
            v, pr = _resolve(
                s,
                ndim,
                q,
                axes,
                ax_off,
                ax_len,
                vals,
                val_off,
                pres,
                pres_off,
                leaf_off,
                leaf_coord,
                leaf_lat,
                kind,
                p,
                taxis,
            )
            out_ms[i] = v
            out_prov[i] = pr
            continue
        seq = np.int64(coords[i, avg_axis])
        s_min = max(np.int64(1), np.int64(seq * 0.9))
        s_max = max(s_min, np.int64(seq * 1.1))
        total = 0.0
        prov = PROV_EXACT
        for k in range(5):
            q[avg_axis] = float(s_min + (s_max - s_min) * k // 4)
            v, pr = _resolve(
                s,
                ndim,
                q,
                axes,
                ax_off,
                ax_len,
                vals,
                val_off,
                pres,
                pres_off,
                leaf_off,
                leaf_coord,
                leaf_lat,
                kind,
                p,
                taxis,
            )
            total += v
            prov = max(prov, pr) if pr >= 0 else PROV_MISSING
            if pr < 0:
                break
        out_ms[i] = total / 5.0 if prov >= 0 else np.nan
        out_prov[i] = prov


@njit(cache=True, fastmath=FASTMATH)
def sol_batch(kind, coords, params, out_ms):
    """Roofline latency for every row: coords (Q, <=3), params (Q, P) -> out_ms (Q,)."""
    nd = coords.shape[1]
    for i in range(coords.shape[0]):
        c0 = coords[i, 0]
        c1 = coords[i, 1] if nd > 1 else 0.0
        c2 = coords[i, 2] if nd > 2 else 0.0
        out_ms[i] = _sol(kind, params[i], c0, c1, c2)
