"""Brute-force oracle kernels: every xPyD replica and every deployment, no pruning (test code).

The exact kernels in ``servopt_kernels.xpyd_enum`` and the CP-SAT composition are held to these
(``tests/search/enumerate.py``, ``test_xpyd_enum.py``, ``test_compose_model.py``). They are plain
numba functions: they are never AOT-built and never run in the shipped package.

Ordering of replicas and deployments (the canonical tie-break): value descending, TPOT level
ascending, GPUs used ascending.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def enumerate_replicas(
    p_gpus, p_units, p_key, d_gpus, d_units, d_level, d_key, max_x, max_y, allowed, max_p_pool, max_d_pool
):
    """Oracle: every allowed xPyD replica, no pruning.

    Parameters are those of ``best_replica_per_size``.

    Returns
    -------
    size, units, level, i, x, j, y : (R,) int64
        One entry per replica (prefill option, x, decode option, y) whose size is allowed.
    """
    limit = allowed.shape[0] - 1
    count = 0
    for _pass in range(2):
        if _pass == 1:
            size_out = np.empty(count, dtype=np.int64)
            units_out = np.empty(count, dtype=np.int64)
            level_out = np.empty(count, dtype=np.int64)
            i_out = np.empty(count, dtype=np.int64)
            x_out = np.empty(count, dtype=np.int64)
            j_out = np.empty(count, dtype=np.int64)
            y_out = np.empty(count, dtype=np.int64)
            count = 0
        for i in range(p_gpus.shape[0]):
            for x in range(1, max_x + 1):
                for j in range(d_gpus.shape[0]):
                    if p_key[i] != d_key[j] and p_key[i] >= 0 and d_key[j] >= 0:
                        continue
                    for y in range(1, max_y + 1):
                        p_pool = x * p_gpus[i]
                        d_pool = y * d_gpus[j]
                        size = p_pool + d_pool
                        if size > limit or not allowed[size]:
                            continue
                        if max_p_pool > 0 and p_pool > max_p_pool:
                            continue
                        if max_d_pool > 0 and d_pool > max_d_pool:
                            continue
                        if _pass == 1:
                            size_out[count] = size
                            units_out[count] = min(x * p_units[i], y * d_units[j])
                            level_out[count] = d_level[j]
                            i_out[count] = i
                            x_out[count] = x
                            j_out[count] = j
                            y_out[count] = y
                        count += 1
    return size_out, units_out, level_out, i_out, x_out, j_out, y_out


@njit(cache=True)
def _better(value, tmax, gpus, b_value, b_tmax, b_gpus):
    if value != b_value:
        return value > b_value
    if tmax != b_tmax:
        return tmax < b_tmax
    return gpus < b_gpus


@njit(cache=True)
def best_identical(size, units, level, cap_level, total_gpus):
    """Oracle: the best floor(G/s) identical replicas of one replica with TPOT level <= cap.

    Returns
    -------
    (value, tmax, gpus_used, index) : int64 tuple
        Ordered by value desc, TPOT level asc, GPUs used asc; index -1 if nothing fits.
    """
    b_value, b_tmax, b_gpus, b_idx = -1, -1, -1, -1
    for r in range(size.shape[0]):
        if level[r] > cap_level or size[r] > total_gpus:
            continue
        n = total_gpus // size[r]
        value = n * units[r]
        if b_idx < 0 or _better(value, level[r], n * size[r], b_value, b_tmax, b_gpus):
            b_value, b_tmax, b_gpus, b_idx = value, level[r], n * size[r], r
    return b_value, b_tmax, b_gpus, b_idx


@njit(cache=True)
def best_packing(size, units, level, cap_level, total_gpus, max_types):
    """Oracle: the best deployment of up to ``max_types`` (1..3) distinct replicas, any counts >= 1.

    For fixed chosen replicas and all counts but the last, the last count is as large as the
    remaining GPUs allow (every replica has positive rate), so only the leading counts are looped.

    Returns
    -------
    (value, tmax, gpus_used, a, b, c, n_a, n_b, n_c) : int64 tuple
        Ordered by value desc, TPOT level asc, GPUs used asc; unused slots have index -1.
    """
    G = total_gpus
    bv, bt, bg = -1, -1, -1
    ba, bb, bc, bna, bnb, bnc = -1, -1, -1, 0, 0, 0
    R = size.shape[0]
    for a in range(R):
        if level[a] > cap_level or size[a] > G:
            continue
        # one type
        n_a = G // size[a]
        if ba < 0 or _better(n_a * units[a], level[a], n_a * size[a], bv, bt, bg):
            bv, bt, bg = n_a * units[a], level[a], n_a * size[a]
            ba, bb, bc, bna, bnb, bnc = a, -1, -1, n_a, 0, 0
        if max_types < 2:
            continue
        for b in range(a + 1, R):
            if level[b] > cap_level or size[a] + size[b] > G:
                continue
            tab = max(level[a], level[b])
            for na in range(1, (G - size[b]) // size[a] + 1):
                rest = G - na * size[a]
                nb = rest // size[b]
                v = na * units[a] + nb * units[b]
                g = na * size[a] + nb * size[b]
                if _better(v, tab, g, bv, bt, bg):
                    bv, bt, bg = v, tab, g
                    ba, bb, bc, bna, bnb, bnc = a, b, -1, na, nb, 0
                if max_types < 3:
                    continue
                for c in range(b + 1, R):
                    if level[c] > cap_level or rest < size[b] + size[c]:
                        continue
                    tabc = max(tab, level[c])
                    for nb2 in range(1, (rest - size[c]) // size[b] + 1):
                        rest2 = rest - nb2 * size[b]
                        nc = rest2 // size[c]
                        v = na * units[a] + nb2 * units[b] + nc * units[c]
                        g = G - rest2 + nc * size[c]
                        if _better(v, tabc, g, bv, bt, bg):
                            bv, bt, bg = v, tabc, g
                            ba, bb, bc, bna, bnb, bnc = a, b, c, na, nb2, nc
    return bv, bt, bg, ba, bb, bc, bna, bnb, bnc
