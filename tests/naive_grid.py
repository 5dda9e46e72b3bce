"""Plain-Python reference for the grid resolver (``servopt_kernels.grid``): nested dicts, recursion.

Written straight from the rules (exact hit; bracket between keys that have data below them, sqrt
blend on one axis; one surviving side scaled by the SOL ratio; outside -> utilisation hold of the 4
nearest leaves in log2 space with tapered weights, or the boundary point for 1-D curves), with no
code shared with the kernels.
"""

from __future__ import annotations

import contextlib
import math


def nest(rows):
    """rows: iterable of (coords tuple, latency) -> nested dict keyed axis by axis (first wins)."""
    root: dict = {}
    for coords, lat in rows:
        node = root
        for c in coords[:-1]:
            node = node.setdefault(c, {})
        node.setdefault(coords[-1], lat)
    return root


class _Out(Exception):
    pass


def _interior(node, q, depth, sol, sqrt_axis):
    """-> (latency, provenance) or raise _Out."""
    if not isinstance(node, dict):
        return node, 0
    c = q[depth]
    if float(c).is_integer() and c >= 0 and c in node:
        return _interior(node[c], q, depth + 1, sol, sqrt_axis)
    keys = sorted(node)
    if c < keys[0] or c > keys[-1]:
        raise _Out
    lo = max(k for k in keys if k < c)
    hi = min(k for k in keys if k > c)
    got = []
    for k in (lo, hi):
        with contextlib.suppress(_Out):
            got.append((k, *_interior(node[k], q, depth + 1, sol, sqrt_axis)))
    if not got:
        raise _Out
    if len(got) == 1:
        k, v, pr = got[0]
        snapped = list(q)
        snapped[depth] = k
        sq, ss = sol(q), sol(snapped)
        if math.isfinite(sq) and math.isfinite(ss) and sq > 0 and ss > 0:
            v = v * sq / ss
        return v, max(2, pr)
    (_, v_lo, p_lo), (_, v_hi, p_hi) = got
    w = (c - lo) / (hi - lo)
    if depth == sqrt_axis:
        a, b = math.sqrt(max(v_lo, 0)), math.sqrt(max(v_hi, 0))
        v = (a + (b - a) * w) ** 2
    else:
        v = v_lo + (v_hi - v_lo) * w
    return v, max(1, p_lo, p_hi)


def _leaves(node, prefix=()):
    if not isinstance(node, dict):
        yield prefix, node
        return
    for k in sorted(node):
        yield from _leaves(node[k], (*prefix, k))


def _hold(root, q, sol, ndim):
    sol_q = sol(q)
    if ndim == 1:
        keys = sorted(root)
        k = keys[-1] if q[0] > keys[-1] else keys[0]
        return sol_q / (sol([k]) / root[k])
    ranked = []
    for i, (coords, lat) in enumerate(_leaves(root)):
        d = math.sqrt(
            sum(
                (math.log2(max(a, 1e-12)) - math.log2(max(b, 1e-12))) ** 2
                for a, b in zip(coords, q, strict=True)
            )
        )
        s = sol(list(coords))
        if lat > 0 and s > 0:
            ranked.append((d, i, s / lat))
    ranked.sort()
    picked = ranked[:4]
    radius = ranked[4][0] if len(ranked) > 4 else math.inf
    ws = []
    for d, _, _ in picked:
        if math.isinf(radius):
            ws.append(1 / (d * d + 1e-12))
        else:
            ws.append((max(radius - d, 0) / (radius * d + 1e-12)) ** 2)
    if sum(ws) <= 0:
        ws = [1.0] * len(picked)
    util = sum(w * u for w, (_, _, u) in zip(ws, picked, strict=True)) / sum(ws)
    return sol_q / util


def resolve(root, q, sol, sqrt_axis=-1):
    """Latency and provenance (0 exact, 1 interpolated, 2 edge-corrected, 3 extrapolated)."""
    try:
        return _interior(root, list(q), 0, sol, sqrt_axis)
    except _Out:
        return _hold(root, list(q), sol, len(q)), 3
