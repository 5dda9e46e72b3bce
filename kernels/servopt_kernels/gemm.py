"""GEMM latency kernels: per-(n, k) measured curves in m, nearest-site utilization transfer for
uncollected (n, k), and the 2-D (m, k) grids of the fp8 activation-quantization overheads.

Semantics (the reference peer's, re-derived; see docs/perf_db_gemm.md):

* A *site* is a collected (n, k); it owns a curve of latencies over m.
* Collected site: exact m returns the measured value; between two measured m a linear blend; beyond
  the curve the median utilization (roofline / latency) of the ``CURVE_TAIL_POINTS`` boundary points
  is held and the roofline carries the growth.
* Uncollected site: the ``SITE_NEIGHBOURS`` nearest sites in log2(n, k) space, among those whose
  curve covers m (all sites if none does) and within ``SITE_GATE_OCTAVES``, are evaluated at m; their
  utilizations are blended with 1/d^2 weights and the query's roofline is divided by the blend.
  When no site is that close but the query only overflows the collected range on one axis (a large
  LM head), the gate applies to the other axis alone. Anything else has no data to anchor on.
* Scale grids (fp8 compute-scale / scale-matrix): the query is clamped into the measured envelope,
  then resolved on the grid (exact, bilinear, ragged survivor scaled by the roofline ratio, else the
  4-nearest tapered utilization hold).

All latencies are milliseconds. Provenance codes (int8): ``PROV_*`` below.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from servopt_kernels.config import FASTMATH as _FASTMATH_FLAGS

# numba rejects a frozenset for fastmath; it takes a plain set.
FASTMATH = set(_FASTMATH_FLAGS)

PROV_EXACT = 0
PROV_INTERPOLATED = 1
# A measured neighbour carried to the query by the roofline ratio: the survivor of a ragged bracket,
# or the utilization of nearby collected (n, k) sites transferred to an uncollected one.
PROV_EDGE_CORRECTED = 2
PROV_EXTRAPOLATED = 3
PROV_SOL = 4
# Internal codes, never returned to users as provenance of a finite latency.
PROV_MISS = -1  # the data cannot answer (nothing to anchor on)
PROV_INVALID = -2  # a coordinate that is not a finite positive number

# Donor sites blended for an uncollected (n, k) (the peer's nn_sites).
SITE_NEIGHBOURS = 4
# Farthest a donor site may sit from the query in log2(n, k) distance: two octaves.
SITE_GATE_OCTAVES = 2.0
# Boundary points of a curve whose median utilization is held beyond its measured m range.
CURVE_TAIL_POINTS = 3
# Measured leaves blended by the out-of-range hold of a 2-D scale grid.
HOLD_NEIGHBOURS = 4
# Keeps inverse-distance weights finite at zero distance (the peer's regularizer).
IDW_EPS = 1e-12
# Smallest coordinate fed to log2 for distances (a zero coordinate would be -inf).
LOG_FLOOR = 1e-12
# Direct-mapped memo of site resolutions per kernel call; a power of two.
MEMO_SLOTS = 256


class GemmSites(NamedTuple):
    """One GEMM dtype's measured data, as the kernels take it.

    site_n, site_k: (S,) float64, sites sorted by (n, k).
    site_log2_n, site_log2_k: (S,) float64, log2(max(site, 1)).
    site_rank: (S,) int64, tie order among equidistant donor sites (lower first): the order in
        which the measurement table first lists each site (see ``build_gemm_tables``).
    curve_ptr: (S + 1,) int64, site s owns curve entries curve_ptr[s]:curve_ptr[s + 1].
    curve_m: (P,) float64, ascending within each site.
    curve_ms: (P,) float64, latency in ms, already floored at the roofline.
    cover_breaks: (B,) float64, sorted unique first/last m of all curves (the m values at which
        the set of sites covering m can change).
    """

    site_n: np.ndarray
    site_k: np.ndarray
    site_log2_n: np.ndarray
    site_log2_k: np.ndarray
    site_rank: np.ndarray
    curve_ptr: np.ndarray
    curve_m: np.ndarray
    curve_ms: np.ndarray
    cover_breaks: np.ndarray


@njit(cache=True, fastmath=FASTMATH, inline="always")
def gemm_roofline_ms(m, n, k, flops_per_s, mem_bw_bytes_per_s, bytes_per_elem):
    """Speed-of-light GEMM latency (ms): max(2mnk / peak FLOP/s, bytes(A, B, C) / HBM bandwidth)."""
    math_ms = 2.0 * m * n * k / flops_per_s * 1000.0
    mem_ms = bytes_per_elem * (m * n + m * k + n * k) / mem_bw_bytes_per_s * 1000.0
    return max(math_ms, mem_ms)


@njit(cache=True, fastmath=FASTMATH)
def gemm_roofline_batch_ms(m, n, k, flops_per_s, mem_bw_bytes_per_s, bytes_per_elem, out_ms):
    """``gemm_roofline_ms`` over flat (N,) float64 arrays into ``out_ms``."""
    for i in range(m.shape[0]):
        out_ms[i] = gemm_roofline_ms(m[i], n[i], k[i], flops_per_s, mem_bw_bytes_per_s, bytes_per_elem)


@njit(cache=True, fastmath=FASTMATH)
def _median_small(values, count):
    """Median of values[:count], count in 1..3 (the curve tail)."""
    if count == 1:
        return values[0]
    if count == 2:
        return 0.5 * (values[0] + values[1])
    a, b, c = values[0], values[1], values[2]
    return max(min(a, b), min(max(a, b), c))


@njit(cache=True, fastmath=FASTMATH)
def _eval_curve(sites, s, q, flops_per_s, mem_bw, bytes_per_elem, tail_buf):
    """Site s's latency at m = q: (latency_ms, provenance); NaN latency when nothing anchors it."""
    lo = sites.curve_ptr[s]
    hi = sites.curve_ptr[s + 1]
    cm = sites.curve_m
    count = hi - lo
    i = lo + np.searchsorted(cm[lo:hi], q)
    if i < hi and cm[i] == q:
        return sites.curve_ms[i], PROV_EXACT
    if count >= 2 and cm[lo] < q < cm[hi - 1]:
        m0 = cm[i - 1]
        m1 = cm[i]
        y0 = sites.curve_ms[i - 1]
        y1 = sites.curve_ms[i]
        w = (q - m0) / (m1 - m0)
        return y0 + (y1 - y0) * w, PROV_INTERPOLATED
    # Beyond the sweep: hold the median boundary utilization, the roofline carries the growth.
    n = sites.site_n[s]
    k = sites.site_k[s]
    tail = min(CURVE_TAIL_POINTS, count)
    start = lo if q < cm[lo] else hi - tail
    used = 0
    for j in range(start, start + tail):
        lat = sites.curve_ms[j]
        sol = gemm_roofline_ms(cm[j], n, k, flops_per_s, mem_bw, bytes_per_elem)
        if lat > 0.0 and sol > 0.0:
            tail_buf[used] = sol / lat
            used += 1
    if used == 0:
        return np.nan, PROV_MISS
    sol_q = gemm_roofline_ms(q, n, k, flops_per_s, mem_bw, bytes_per_elem)
    if not sol_q > 0.0:
        return np.nan, PROV_MISS
    return sol_q / _median_small(tail_buf, used), PROV_EXTRAPOLATED


@njit(cache=True, fastmath=FASTMATH)
def _find_site(sites, n, k):
    """Index of collected site (n, k), or -1."""
    lo = np.searchsorted(sites.site_n, n, side="left")
    hi = np.searchsorted(sites.site_n, n, side="right")
    if lo == hi:
        return -1
    j = lo + np.searchsorted(sites.site_k[lo:hi], k)
    if j < hi and sites.site_k[j] == k:
        return j
    return -1


@njit(cache=True, fastmath=FASTMATH)
def _cover_class(cover_breaks, q):
    """Which coverage class m = q falls in: 2i for strictly below breaks[i], 2i+1 at breaks[i]."""
    i = np.searchsorted(cover_breaks, q)
    if i < cover_breaks.shape[0] and cover_breaks[i] == q:
        return 2 * i + 1
    return 2 * i


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _closer(d, rank, other_d, other_rank):
    return d < other_d or (d == other_d and rank < other_rank)


@njit(cache=True, fastmath=FASTMATH)
def _select_donors(sites, n, k, q, dist_buf, elig_buf, donor_ids, donor_d):
    """Donor sites for uncollected (n, k) at m = q, nearest first (ties: lower site_rank first).

    Returns (count, kind): kind 1 = within the distance gate, 2 = gate waived for a one-axis
    scale-up overflow, 0 = no donor (a miss).
    """
    num_sites = sites.site_n.shape[0]
    if num_sites == 0:
        return 0, 0
    ql_n = np.log2(max(n, LOG_FLOOR))
    ql_k = np.log2(max(k, LOG_FLOOR))
    # Candidates: sites whose curve covers q; every site when none does.
    any_cover = False
    for s in range(num_sites):
        lo = sites.curve_ptr[s]
        hi = sites.curve_ptr[s + 1]
        cover = sites.curve_m[lo] <= q <= sites.curve_m[hi - 1]
        elig_buf[s] = cover
        any_cover = any_cover or cover
        dn = sites.site_log2_n[s] - ql_n
        dk = sites.site_log2_k[s] - ql_k
        dist_buf[s] = np.sqrt(dn * dn + dk * dk)
    if not any_cover:
        elig_buf[:num_sites] = True
    any_gated = False
    for s in range(num_sites):
        if elig_buf[s] and dist_buf[s] <= SITE_GATE_OCTAVES:
            any_gated = True
            break
    kind = 1
    if any_gated:
        for s in range(num_sites):
            elig_buf[s] = elig_buf[s] and dist_buf[s] <= SITE_GATE_OCTAVES
    else:
        # Gate waiver: the query exceeds the candidates on exactly one axis and is not below them on
        # any; the other axis alone must pass the gate.
        min_n = np.inf
        max_n = -np.inf
        min_k = np.inf
        max_k = -np.inf
        for s in range(num_sites):
            if elig_buf[s]:
                min_n = min(min_n, sites.site_n[s])
                max_n = max(max_n, sites.site_n[s])
                min_k = min(min_k, sites.site_k[s])
                max_k = max(max_k, sites.site_k[s])
        if n < min_n or k < min_k:
            return 0, 0
        over_n = n > max_n
        over_k = k > max_k
        if over_n == over_k:
            return 0, 0
        any_left = False
        for s in range(num_sites):
            if elig_buf[s]:
                r = sites.site_log2_k[s] - ql_k if over_n else sites.site_log2_n[s] - ql_n
                ok = np.sqrt(r * r) <= SITE_GATE_OCTAVES
                elig_buf[s] = ok
                any_left = any_left or ok
        if not any_left:
            return 0, 0
        kind = 2
    count = 0
    # Nearest first; equal distances in site_rank order (the peer's stable order).
    for s in range(num_sites):
        if not elig_buf[s]:
            continue
        d = dist_buf[s]
        rank = sites.site_rank[s]
        if count == SITE_NEIGHBOURS and not _closer(
            d, rank, donor_d[count - 1], sites.site_rank[donor_ids[count - 1]]
        ):
            continue
        pos = count if count < SITE_NEIGHBOURS else SITE_NEIGHBOURS - 1
        while pos > 0 and _closer(d, rank, donor_d[pos - 1], sites.site_rank[donor_ids[pos - 1]]):
            if pos < SITE_NEIGHBOURS:
                donor_d[pos] = donor_d[pos - 1]
                donor_ids[pos] = donor_ids[pos - 1]
            pos -= 1
        donor_d[pos] = d
        donor_ids[pos] = s
        if count < SITE_NEIGHBOURS:
            count += 1
    return count, kind


@njit(cache=True, fastmath=FASTMATH)
def _memo_slot(n, k, cls):
    hn = np.int64(min(n, 1e15))
    hk = np.int64(min(k, 1e15))
    h = (hn * 1000003) ^ (hk * 998244353) ^ (np.int64(cls) * 7919)
    return h & (MEMO_SLOTS - 1)


@njit(cache=True, fastmath=FASTMATH)
def gemm_latency_ms(m, n, k, sites, flops_per_s, mem_bw_bytes_per_s, bytes_per_elem, out_ms, out_prov):
    """GEMM latency (ms) of each query (m[i], n[i], k[i]) against one dtype's sites.

    m, n, k: (N,) float64. out_ms: (N,) float64; out_prov: (N,) int8 (``PROV_*``; a miss writes
    NaN and ``PROV_MISS``, a non-finite or non-positive coordinate NaN and ``PROV_INVALID``).
    """
    num_sites = sites.site_n.shape[0]
    dist_buf = np.empty(max(num_sites, 1))
    elig_buf = np.empty(max(num_sites, 1), dtype=np.bool_)
    tail_buf = np.empty(CURVE_TAIL_POINTS)
    # Site resolution depends on (n, k) and, for uncollected sites, on which curves cover m.
    memo_n = np.full(MEMO_SLOTS, np.nan)
    memo_k = np.full(MEMO_SLOTS, np.nan)
    memo_cls = np.full(MEMO_SLOTS, -1, dtype=np.int64)
    memo_kind = np.zeros(MEMO_SLOTS, dtype=np.int64)  # -1 collected site, 0 miss, 1/2 donors
    memo_count = np.zeros(MEMO_SLOTS, dtype=np.int64)
    memo_ids = np.zeros((MEMO_SLOTS, SITE_NEIGHBOURS), dtype=np.int64)
    memo_d = np.zeros((MEMO_SLOTS, SITE_NEIGHBOURS))
    for i in range(m.shape[0]):
        q = m[i]
        qn = n[i]
        qk = k[i]
        if not (np.isfinite(q) and np.isfinite(qn) and np.isfinite(qk) and q > 0 and qn > 0 and qk > 0):
            out_ms[i] = np.nan
            out_prov[i] = PROV_INVALID
            continue
        cls = _cover_class(sites.cover_breaks, q)
        slot = _memo_slot(qn, qk, cls)
        if not (memo_n[slot] == qn and memo_k[slot] == qk and memo_cls[slot] == cls):
            memo_n[slot] = qn
            memo_k[slot] = qk
            memo_cls[slot] = cls
            site = _find_site(sites, qn, qk)
            if site >= 0:
                memo_kind[slot] = -1
                memo_ids[slot, 0] = site
            else:
                cnt, kind = _select_donors(sites, qn, qk, q, dist_buf, elig_buf, memo_ids[slot], memo_d[slot])
                memo_kind[slot] = kind
                memo_count[slot] = cnt
        kind = memo_kind[slot]
        if kind == -1:
            lat, prov = _eval_curve(
                sites, memo_ids[slot, 0], q, flops_per_s, mem_bw_bytes_per_s, bytes_per_elem, tail_buf
            )
            out_ms[i] = lat
            out_prov[i] = prov
            continue
        if kind == 0:
            out_ms[i] = np.nan
            out_prov[i] = PROV_MISS
            continue
        wsum = 0.0
        util = 0.0
        prov_i = PROV_EDGE_CORRECTED if kind == 1 else PROV_EXTRAPOLATED
        for j in range(memo_count[slot]):
            s = memo_ids[slot, j]
            lat, prov = _eval_curve(sites, s, q, flops_per_s, mem_bw_bytes_per_s, bytes_per_elem, tail_buf)
            sol = gemm_roofline_ms(
                q, sites.site_n[s], sites.site_k[s], flops_per_s, mem_bw_bytes_per_s, bytes_per_elem
            )
            if not (np.isfinite(lat) and lat > 0.0 and np.isfinite(sol) and sol > 0.0):
                continue
            d = memo_d[slot, j]
            w = 1.0 / (d * d + IDW_EPS)
            util += w * (sol / lat)
            wsum += w
            if prov == PROV_EXTRAPOLATED:
                prov_i = PROV_EXTRAPOLATED
        sol_q = gemm_roofline_ms(q, qn, qk, flops_per_s, mem_bw_bytes_per_s, bytes_per_elem)
        if wsum <= 0.0 or not sol_q > 0.0:
            out_ms[i] = np.nan
            out_prov[i] = PROV_MISS
            continue
        out_ms[i] = sol_q / (util / wsum)
        out_prov[i] = prov_i


# ---------------------------------------------------------------------------------------------
# 2-D (m, k) scale grids: fp8 compute-scale and scale-matrix overheads
# ---------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def _grid_row(values, r, k_axis, k):
    """Resolve row r of a (M, K) NaN-holed grid at k: (latency, status, prov).

    status 0 = resolved, 1 = out of the row's measured range.
    """
    num_k = k_axis.shape[0]
    j = np.searchsorted(k_axis, k)
    if j < num_k and k_axis[j] == k and not np.isnan(values[r, j]):
        return values[r, j], 0, PROV_EXACT
    lo = -1
    for c in range(min(j, num_k) - 1, -1, -1):
        if not np.isnan(values[r, c]):
            lo = c
            break
    hi = -1
    start = j if j < num_k and k_axis[j] != k else j + 1
    for c in range(start, num_k):
        if not np.isnan(values[r, c]):
            hi = c
            break
    if lo < 0 or hi < 0:
        return np.nan, 1, PROV_MISS
    w = (k - k_axis[lo]) / (k_axis[hi] - k_axis[lo])
    y0 = values[r, lo]
    return y0 + (values[r, hi] - y0) * w, 0, PROV_INTERPOLATED


@njit(cache=True, fastmath=FASTMATH)
def _grid_hold(values, m_axis, k_axis, m, k, sol_bytes_per_mk, mem_bw):
    """Out-of-range hold: utilization of the 4 nearest measured leaves in log2(m, k) space,
    tapered by the distance of the next one (weights ((R - d) / (R d))^2), over the query roofline."""
    num_m = m_axis.shape[0]
    num_k = k_axis.shape[0]
    lm = np.log2(max(m, LOG_FLOOR))
    lk = np.log2(max(k, LOG_FLOOR))
    best_d = np.full(HOLD_NEIGHBOURS + 1, np.inf)
    best_u = np.zeros(HOLD_NEIGHBOURS + 1)
    found = 0
    for r in range(num_m):
        for c in range(num_k):
            lat = values[r, c]
            if np.isnan(lat):
                continue
            sol = sol_bytes_per_mk * m_axis[r] * k_axis[c] / mem_bw * 1000.0
            if not (np.isfinite(lat) and lat > 0.0 and np.isfinite(sol) and sol > 0.0):
                continue
            dm = np.log2(max(m_axis[r], LOG_FLOOR)) - lm
            dk = np.log2(max(k_axis[c], LOG_FLOOR)) - lk
            d = np.sqrt(dm * dm + dk * dk)
            if found == HOLD_NEIGHBOURS + 1 and d >= best_d[HOLD_NEIGHBOURS]:
                continue
            pos = found if found <= HOLD_NEIGHBOURS else HOLD_NEIGHBOURS
            while pos > 0 and best_d[pos - 1] > d:
                if pos <= HOLD_NEIGHBOURS:
                    best_d[pos] = best_d[pos - 1]
                    best_u[pos] = best_u[pos - 1]
                pos -= 1
            best_d[pos] = d
            best_u[pos] = sol / lat
            if found <= HOLD_NEIGHBOURS:
                found += 1
    if found == 0:
        return np.nan
    picked = min(found, HOLD_NEIGHBOURS)
    radius = best_d[HOLD_NEIGHBOURS] if found > HOLD_NEIGHBOURS else np.inf
    wsum = 0.0
    usum = 0.0
    for j in range(picked):
        d = best_d[j]
        if np.isinf(radius):
            w = 1.0 / (d * d + IDW_EPS)
        else:
            t = max(radius - d, 0.0) / (radius * d + IDW_EPS)
            w = t * t
        wsum += w
        usum += w * best_u[j]
    if wsum <= 0.0:
        # Every pick sits exactly on the support radius: equal weights.
        wsum = 0.0
        usum = 0.0
        for j in range(picked):
            wsum += 1.0
            usum += best_u[j]
    sol_q = sol_bytes_per_mk * m * k / mem_bw * 1000.0
    if not sol_q > 0.0:
        return np.nan
    return sol_q / (usum / wsum)


@njit(cache=True, fastmath=FASTMATH)
def scale_grid_latency_ms(
    m, k, m_axis, k_axis, values_ms, sol_bytes_per_mk, mem_bw_bytes_per_s, sol_ratio_beyond, out_ms, out_prov
):
    """Latency (ms) of a 2-D (m, k) overhead grid at each query.

    m, k: (N,) float64 queries. m_axis: (M,), k_axis: (K,) ascending; values_ms: (M, K), NaN where
    not measured (every row has a value). sol_bytes_per_mk: roofline bytes moved per m*k element.
    The query is clamped into the measured envelope first; beyond it the value is held flat
    (``sol_ratio_beyond`` False: a measured delta) or scaled by the roofline ratio (True).
    """
    num_m = m_axis.shape[0]
    num_k = k_axis.shape[0]
    if num_m == 0:
        for i in range(m.shape[0]):
            out_ms[i] = np.nan
            out_prov[i] = PROV_MISS
        return
    k_min = np.inf
    k_max = -np.inf
    for r in range(num_m):
        for c in range(num_k):
            if not np.isnan(values_ms[r, c]):
                k_min = min(k_min, k_axis[c])
                break
        for c in range(num_k - 1, -1, -1):
            if not np.isnan(values_ms[r, c]):
                k_max = max(k_max, k_axis[c])
                break
    for i in range(m.shape[0]):
        qm = m[i]
        qk = k[i]
        if not (np.isfinite(qm) and np.isfinite(qk) and qm > 0 and qk > 0):
            out_ms[i] = np.nan
            out_prov[i] = PROV_INVALID
            continue
        cm = min(max(qm, m_axis[0]), m_axis[num_m - 1])
        ck = min(max(qk, k_min), k_max)
        r = np.searchsorted(m_axis, cm)
        lat = np.nan
        prov = PROV_MISS
        out_of_range = False
        if m_axis[r] == cm:
            lat, status, prov = _grid_row(values_ms, r, k_axis, ck)
            out_of_range = status == 1
        else:
            lat0, st0, _pv0 = _grid_row(values_ms, r - 1, k_axis, ck)
            lat1, st1, _pv1 = _grid_row(values_ms, r, k_axis, ck)
            if st0 == 0 and st1 == 0:
                w = (cm - m_axis[r - 1]) / (m_axis[r] - m_axis[r - 1])
                lat = lat0 + (lat1 - lat0) * w
                prov = PROV_INTERPOLATED
            elif st0 == 0 or st1 == 0:
                # One bracket row lacks k: keep the survivor, carried along m by the roofline ratio.
                surv_m = m_axis[r - 1] if st0 == 0 else m_axis[r]
                lat = lat0 if st0 == 0 else lat1
                if cm > 0.0 and surv_m > 0.0:
                    lat = lat * (cm / surv_m)
                prov = PROV_EDGE_CORRECTED
            else:
                out_of_range = True
        if out_of_range:
            lat = _grid_hold(values_ms, m_axis, k_axis, cm, ck, sol_bytes_per_mk, mem_bw_bytes_per_s)
            prov = PROV_EXTRAPOLATED if np.isfinite(lat) else PROV_MISS
        if np.isfinite(lat) and (cm != qm or ck != qk):
            if sol_ratio_beyond and cm * ck > 0.0:
                lat = lat * ((qm * qk) / (cm * ck))
            prov = PROV_EXTRAPOLATED
        out_ms[i] = lat
        out_prov[i] = prov
