"""xPyD enumeration kernels: the exact replica composition table.

A disaggregated replica is x prefill workers of one prefill option and y decode workers of one
decode option; its rate is ``min(x * p_units, y * d_units)`` in integer rate units (degradations
already folded into the units), its size ``x * p_gpus + y * d_gpus`` GPUs, its TPOT level the
decode option's level. Aggregated serving is the special case of one worker per replica.

``best_replica_per_size`` is the production kernel: over small per-size menus it finds, for every
replica size, the best replica. The brute-force oracle the tests hold it to (every replica, every
deployment, no pruning) is ``tests/search/oracle_kernels.py``: test code, not shipped.

Ordering of replicas everywhere (the canonical tie-break): rate units descending, TPOT level
ascending, then y, x, prefill index, decode index ascending.
"""

from __future__ import annotations

import numpy as np

from servopt_kernels.jit import kernel


@kernel(
    returns="none",
    args=(
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64",
        "int64",
        "boolean[::1]",
        "int64",
        "int64",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
    ),
)
def best_replica_per_size(
    p_gpus,
    p_units,
    p_key,
    c_gpus,
    c_key,
    c_start,
    c_end,
    d_units,
    d_level,
    max_x,
    max_y,
    allowed,
    max_p_pool_gpus,
    max_d_pool_gpus,
    out_units,
    out_level,
    out_i,
    out_x,
    out_j,
    out_y,
):
    """Best xPyD replica of every allowed size under a TPOT cap.

    Decode options come in classes (equal GPUs and pairing key), each a chain sorted by TPOT
    level with non-decreasing rate units; only the chain's prefix ``[c_start, c_end)`` meets the
    cap. For a prefill choice (i, x) and y decode workers of class c the best replica is found
    without scanning the chain: its rate is ``min(x*p_units[i], y*d_units[j])``, so the best j is
    the first chain entry reaching ``min(max units, ceil(x*p_units[i]/y))`` -- the highest rate
    the replica can use at the lowest TPOT that delivers it. (Taking the chain's fastest entry
    instead would lose equal-rate replicas at lower TPOT when prefill is the bottleneck.)

    Parameters
    ----------
    p_gpus, p_units, p_key : (P,) int64
        Prefill options: GPUs per worker, degraded rate units per worker, pairing key.
    c_gpus, c_key, c_start, c_end : (C,) int64
        Decode classes: GPUs per worker, pairing key, chain start, chain end under the cap.
        Options pair iff their keys are equal or either is negative.
    d_units, d_level : (D,) int64
        Decode options: degraded rate units per worker and TPOT level, chained by class.
    max_x, max_y : int
        Worker caps per replica.
    allowed : (S+1,) bool
        ``allowed[s]``: a replica of s GPUs may be deployed (sizes above S never are).
    max_p_pool_gpus, max_d_pool_gpus : int
        Caps on ``x*p_gpus`` and ``y*d_gpus`` inside one replica; 0 means no cap.
    out_units, out_level, out_i, out_x, out_j, out_y : (S+1,) int64
        Filled per size: best rate units (-1 where no replica has that size), its TPOT level,
        prefill index, x, decode option index, y.
    """
    # Compile time matters here (cold start): one init loop instead of six slice fills, and the
    # chain search and canonical order written in place rather than as helper calls.
    limit = allowed.shape[0] - 1
    for s in range(out_units.shape[0]):
        out_units[s] = -1
        out_level[s] = -1
        out_i[s] = -1
        out_x[s] = 0
        out_j[s] = -1
        out_y[s] = 0
    for i in range(p_gpus.shape[0]):
        for x in range(1, max_x + 1):
            p_pool = x * p_gpus[i]
            if p_pool >= limit:
                break
            if max_p_pool_gpus > 0 and p_pool > max_p_pool_gpus:
                break
            p_rate = x * p_units[i]
            for c in range(c_gpus.shape[0]):
                lo, hi = c_start[c], c_end[c]
                if lo == hi:
                    continue
                if p_key[i] != c_key[c] and p_key[i] >= 0 and c_key[c] >= 0:
                    continue
                top = d_units[hi - 1]
                for y in range(1, max_y + 1):
                    d_pool = y * c_gpus[c]
                    size = p_pool + d_pool
                    if size > limit:
                        break
                    if max_d_pool_gpus > 0 and d_pool > max_d_pool_gpus:
                        break
                    if not allowed[size]:
                        continue
                    target = (p_rate + y - 1) // y
                    if top < target:
                        target = top
                    # First chain entry reaching the target (units ascend along the chain).
                    j = lo
                    end = hi
                    while j < end:
                        mid = (j + end) // 2
                        if d_units[mid] < target:
                            j = mid + 1
                        else:
                            end = mid
                    rate = y * d_units[j]
                    if p_rate < rate:
                        rate = p_rate
                    # Canonical order against the size's current best (see the module docstring).
                    if rate != out_units[size]:
                        better = rate > out_units[size]
                    elif d_level[j] != out_level[size]:
                        better = d_level[j] < out_level[size]
                    elif y != out_y[size]:
                        better = y < out_y[size]
                    elif x != out_x[size]:
                        better = x < out_x[size]
                    elif i != out_i[size]:
                        better = i < out_i[size]
                    else:
                        better = j < out_j[size]
                    if better:
                        out_units[size] = rate
                        out_level[size] = d_level[j]
                        out_i[size] = i
                        out_x[size] = x
                        out_j[size] = j
                        out_y[size] = y


@kernel(
    returns="int64[::1]",
    args=(
        "int64[::1]",
        "int64[::1]",
    ),
)
def _staircase_sizes(units, level):
    """Ascending sizes kept by ``staircase`` (int64 scratch only: a cheap compile)."""
    n = units.shape[0]
    kept = np.empty(n, dtype=np.int64)
    n_kept = 0
    for s in range(n):
        if units[s] < 0:
            continue
        dominated = False
        for k in range(n_kept):
            t = kept[k]
            if units[t] >= units[s] and level[t] <= level[s]:
                dominated = True
                break
        if not dominated:
            kept[n_kept] = s
            n_kept += 1
    return kept[:n_kept]


def staircase(units, level):
    """Sizes not dominated by a smaller size with rate >= and TPOT level <= (exact for packing).

    Parameters
    ----------
    units, level : (S+1,) int64
        Per size (index = GPUs): best rate units (-1: no replica) and its TPOT level.

    Returns
    -------
    keep : (S+1,) bool
    """
    units = np.ascontiguousarray(units, dtype=np.int64)
    keep = np.zeros(units.shape[0], dtype=np.bool_)
    keep[_staircase_sizes(units, np.ascontiguousarray(level, dtype=np.int64))] = True
    return keep
