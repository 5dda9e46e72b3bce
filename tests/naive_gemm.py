"""Plain-Python reference of the GEMM lookup semantics, one query at a time, for testing the kernels.

Written straight from the rules (docs: servopt_kernels.gemm module docstring), with dicts, sorts and
no shared code with the kernels.
"""

from __future__ import annotations

import itertools
import math

EXACT, INTERPOLATED, EDGE, EXTRAPOLATED = 0, 1, 2, 3
MISS = None


def roofline_ms(m, n, k, flops, bw, bytes_per_elem):
    return max(2.0 * m * n * k / flops * 1000.0, bytes_per_elem * (m * n + m * k + n * k) / bw * 1000.0)


def build_sites(rows, flops, bw, bytes_per_elem):
    """rows: iterable of (m, n, k, latency) for one dtype, in priority order (first wins).
    Returns {(n, k): [(m, latency floored at the roofline), ...] sorted by m}, its keys in the order
    a walk of the insertion-ordered table m -> n -> k first meets them (the donor tie order)."""
    table = {}
    for m, n, k, lat in rows:
        table.setdefault(m, {}).setdefault(n, {}).setdefault(k, lat)
    sites = {}
    for m, by_n in table.items():
        for n, by_k in by_n.items():
            for k, lat in by_k.items():
                floor = roofline_ms(m, n, k, flops, bw, bytes_per_elem) if flops else 0.0
                sites.setdefault((n, k), []).append((m, max(lat, floor)))
    return {key: sorted(curve) for key, curve in sites.items()}


def _median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def curve_at(curve, n, k, q, sol):
    """(latency, provenance) of one site's curve at m = q, or (None, None)."""
    ms = [c for c, _ in curve]
    for c, lat in curve:
        if c == q:
            return lat, EXACT
    if len(curve) >= 2 and ms[0] < q < ms[-1]:
        for (c0, y0), (c1, y1) in itertools.pairwise(curve):
            if c0 < q < c1:
                return y0 + (y1 - y0) * (q - c0) / (c1 - c0), INTERPOLATED
    tail = curve[:3] if q < ms[0] else curve[-3:]
    utils = [sol(c, n, k) / lat for c, lat in tail if lat > 0 and sol(c, n, k) > 0]
    if not utils or not sol(q, n, k) > 0:
        return None, None
    return sol(q, n, k) / _median(utils), EXTRAPOLATED


def gemm_at(sites, m, n, k, sol, gate=2.0, neighbours=4):
    """(latency, provenance) for one query, or (None, None) when nothing anchors it."""
    if (n, k) in sites:
        return curve_at(sites[(n, k)], n, k, m, sol)
    keys = list(sites)
    if not keys:
        return None, None

    def dist(key):
        dn = math.log2(max(key[0], 1)) - math.log2(max(n, 1e-12))
        dk = math.log2(max(key[1], 1)) - math.log2(max(k, 1e-12))
        return math.sqrt(dn * dn + dk * dk)

    cands = [i for i, key in enumerate(keys) if sites[key][0][0] <= m <= sites[key][-1][0]]
    if not cands:
        cands = list(range(len(keys)))
    gated = [i for i in cands if dist(keys[i]) <= gate]
    prov = EDGE
    if not gated:
        lo_n = min(keys[i][0] for i in cands)
        hi_n = max(keys[i][0] for i in cands)
        lo_k = min(keys[i][1] for i in cands)
        hi_k = max(keys[i][1] for i in cands)
        if n < lo_n or k < lo_k:
            return None, None
        over = [n > hi_n, k > hi_k]
        if sum(over) != 1:
            return None, None
        axis = 1 if over[0] else 0  # the axis that must still pass the gate
        q_other = k if axis == 1 else n
        gated = [
            i for i in cands if abs(math.log2(max(keys[i][axis], 1)) - math.log2(max(q_other, 1e-12))) <= gate
        ]
        if not gated:
            return None, None
        prov = EXTRAPOLATED
    # Equal distances: the site met first in the table walk first.
    chosen = sorted(gated, key=lambda i: (dist(keys[i]), i))[:neighbours]
    wsum = util = 0.0
    for i in chosen:
        key = keys[i]
        lat, p = curve_at(sites[key], key[0], key[1], m, sol)
        s = sol(m, key[0], key[1])
        if lat is None or not (lat > 0 and s > 0):
            continue
        w = 1.0 / (dist(key) ** 2 + 1e-12)
        util += w * s / lat
        wsum += w
        if p == EXTRAPOLATED:
            prov = EXTRAPOLATED
    if wsum <= 0 or not sol(m, n, k) > 0:
        return None, None
    return sol(m, n, k) / (util / wsum), prov


def scale_at(grid, m, k, sol, sol_ratio_beyond):
    """grid: {(m, k): latency} (a ragged 2-D table). (latency, provenance) or (None, None)."""
    rows = {}
    for (gm, gk), lat in grid.items():
        rows.setdefault(gm, {})[gk] = lat
    ms = sorted(rows)
    k_lo = min(min(r) for r in rows.values())
    k_hi = max(max(r) for r in rows.values())
    cm = min(max(m, ms[0]), ms[-1])
    ck = min(max(k, k_lo), k_hi)

    def row_at(gm):
        row = rows[gm]
        if ck in row:
            return row[ck], EXACT
        keys = sorted(row)
        if ck < keys[0] or ck > keys[-1]:
            return None, None
        lo = max(x for x in keys if x < ck)
        hi = min(x for x in keys if x > ck)
        return row[lo] + (row[hi] - row[lo]) * (ck - lo) / (hi - lo), INTERPOLATED

    lat = prov = None
    if cm in rows:
        lat, prov = row_at(cm)
    else:
        lo = max(x for x in ms if x < cm)
        hi = min(x for x in ms if x > cm)
        (l0, _), (l1, _) = row_at(lo), row_at(hi)
        if l0 is not None and l1 is not None:
            lat, prov = l0 + (l1 - l0) * (cm - lo) / (hi - lo), INTERPOLATED
        elif l0 is not None or l1 is not None:
            surv, val = (lo, l0) if l0 is not None else (hi, l1)
            lat, prov = val * sol(cm, ck) / sol(surv, ck), EDGE
    if lat is None:
        # Hold: four nearest valid leaves in log2 space, tapered by the fifth's distance.
        leaves = []
        for (gm, gk), val in grid.items():
            if val > 0 and sol(gm, gk) > 0:
                dm, dk = math.log2(gm) - math.log2(cm), math.log2(gk) - math.log2(ck)
                d = math.sqrt(dm * dm + dk * dk)
                leaves.append((d, sol(gm, gk) / val))
        leaves.sort(key=lambda t: t[0])
        if not leaves:
            return None, None
        radius = leaves[4][0] if len(leaves) > 4 else math.inf
        picked = leaves[:4]

        def weight(d):
            if math.isinf(radius):
                return 1.0 / (d * d + 1e-12)
            return (max(radius - d, 0.0) / (radius * d + 1e-12)) ** 2

        weights = [weight(d) for d, _ in picked]
        if sum(weights) <= 0:
            weights = [1.0] * len(picked)
        util = sum(w * u for w, (_, u) in zip(weights, picked, strict=True)) / sum(weights)
        lat, prov = sol(cm, ck) / util, EXTRAPOLATED
    if (cm, ck) != (m, k):
        if sol_ratio_beyond:
            lat = lat * sol(m, k) / sol(cm, ck)
        prov = EXTRAPOLATED
    return lat, prov
