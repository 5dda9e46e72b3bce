"""GEMM latency kernels: per-(n, k) measured curves in m, nearest-site utilization transfer for
uncollected (n, k), and the 2-D (m, k) grids of the fp8 activation-quantization overheads.

Semantics (the reference peer's, re-derived from its description and checked against its answers):

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
# Slots of the per-call memo of (n, k) resolutions (open addressing; a power of two). It is
# cleared when half full, so a batch with more distinct shapes just resolves some twice.
MEMO_SLOTS = 1024


class GemmSites(NamedTuple):
    """One GEMM dtype's measured data, as the kernels take it.

    site_n, site_k: (S,) float64, sites sorted by (n, k).
    site_log2_n, site_log2_k: (S,) float64, log2(max(site, 1)).
    site_rank: (S,) int64, tie order among equidistant donor sites (lower first): the order in
        which a walk of the measurement table (m, then n, then k, each in first-listed order)
        first meets each site (see ``servopt.perf_db.gemm._walk_positions``).
    site_axis: (S,) int64, sites with equal ids were measured at exactly the same m values.
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
    site_axis: np.ndarray
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


# Helpers take plain arrays: reading a namedtuple field inside a loop costs reference counting.


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _bracket(cm, lo, hi, q):
    """Where q sits on the ascending curve entries cm[lo:hi]: (j, where), where 0 = exactly at j,
    1 = strictly between j - 1 and j, 2 = outside the measured range."""
    if q < cm[lo] or q > cm[hi - 1]:
        return lo, 2
    a = lo
    b = hi
    while a < b:
        mid = (a + b) >> 1
        if cm[mid] < q:
            a = mid + 1
        else:
            b = mid
    if cm[a] == q:
        return a, 0
    return a, 1


@njit(cache=True, fastmath=FASTMATH)
def _curve_hold(cm, cms, lo, hi, n, k, q, flops_per_s, mem_bw, bytes_per_elem):
    """Curve cm/cms[lo:hi] of site (n, k) beyond its measured m range: the query roofline over the
    median utilization of the ``CURVE_TAIL_POINTS`` boundary points on that side; NaN when none has
    a positive utilization."""
    tail = min(CURVE_TAIL_POINTS, hi - lo)
    start = lo if q < cm[lo] else hi - tail
    u0 = 0.0
    u1 = 0.0
    u2 = 0.0
    used = 0
    for j in range(start, start + tail):
        lat = cms[j]
        sol = gemm_roofline_ms(cm[j], n, k, flops_per_s, mem_bw, bytes_per_elem)
        if lat > 0.0 and sol > 0.0:
            u = sol / lat
            if used == 0:
                u0 = u
            elif used == 1:
                u1 = u
            else:
                u2 = u
            used += 1
    sol_q = gemm_roofline_ms(q, n, k, flops_per_s, mem_bw, bytes_per_elem)
    if used == 0 or not sol_q > 0.0:
        return np.nan
    if used == 1:
        med = u0
    elif used == 2:
        med = 0.5 * (u0 + u1)
    else:
        med = max(min(u0, u1), min(max(u0, u1), u2))
    return sol_q / med


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _curve_at(cm, cms, lo, hi, n, k, q, flops_per_s, mem_bw, bytes_per_elem):
    """Curve cm/cms[lo:hi] of site (n, k) at m = q: (latency_ms, provenance); NaN and
    ``PROV_MISS`` when nothing anchors it."""
    j, where = _bracket(cm, lo, hi, q)
    if where == 0:
        return cms[j], PROV_EXACT
    if where == 1:
        m0 = cm[j - 1]
        y0 = cms[j - 1]
        w = (q - m0) / (cm[j] - m0)
        return y0 + (cms[j] - y0) * w, PROV_INTERPOLATED
    lat = _curve_hold(cm, cms, lo, hi, n, k, q, flops_per_s, mem_bw, bytes_per_elem)
    return lat, (PROV_EXTRAPOLATED if np.isfinite(lat) else PROV_MISS)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _find_site(site_n, site_k, n, k):
    """Index of collected site (n, k) among sites sorted by (n, k), or -1."""
    a = 0
    b = site_n.shape[0]
    while a < b:
        mid = (a + b) >> 1
        if site_n[mid] < n or (site_n[mid] == n and site_k[mid] < k):
            a = mid + 1
        else:
            b = mid
    if a < site_n.shape[0] and site_n[a] == n and site_k[a] == k:
        return a
    return -1


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _cover_class(cover_breaks, q):
    """Which coverage class m = q falls in: 2i for strictly below breaks[i], 2i+1 at breaks[i]."""
    num = cover_breaks.shape[0]
    i = 0
    while i < num and cover_breaks[i] < q:
        i += 1
    if i < num and cover_breaks[i] == q:
        return 2 * i + 1
    return 2 * i


@njit(cache=True, fastmath=FASTMATH)
def _class_envelopes(site_n, site_k, curve_ptr, curve_m, cover_breaks):
    """Per coverage class: whether candidates must be filtered by curve coverage (some, not all,
    curves cover its m values; when none does every site is a candidate), and the (n, k) envelope
    (min n, max n, min k, max k) of the candidate sites."""
    num = cover_breaks.shape[0]
    num_sites = curve_ptr.shape[0] - 1
    classes = 2 * num + 1
    must_filter = np.zeros(classes, dtype=np.bool_)
    env = np.empty((classes, 4))
    for cls in range(classes):
        i = cls // 2
        if cls % 2 == 1:
            q = cover_breaks[i]
        elif num == 0:
            q = 1.0
        elif i == 0:
            q = cover_breaks[0] - 1.0
        elif i == num:
            q = cover_breaks[num - 1] + 1.0
        else:
            q = 0.5 * (cover_breaks[i - 1] + cover_breaks[i])
        covering = 0
        for s in range(num_sites):
            if curve_m[curve_ptr[s]] <= q <= curve_m[curve_ptr[s + 1] - 1]:
                covering += 1
        must_filter[cls] = 0 < covering < num_sites
        env[cls, 0] = np.inf
        env[cls, 1] = -np.inf
        env[cls, 2] = np.inf
        env[cls, 3] = -np.inf
        for s in range(num_sites):
            if covering > 0 and not (curve_m[curve_ptr[s]] <= q <= curve_m[curve_ptr[s + 1] - 1]):
                continue
            env[cls, 0] = min(env[cls, 0], site_n[s])
            env[cls, 1] = max(env[cls, 1], site_n[s])
            env[cls, 2] = min(env[cls, 2], site_k[s])
            env[cls, 3] = max(env[cls, 3], site_k[s])
    return must_filter, env


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _closer(d, rank, other_d, other_rank):
    return d < other_d or (d == other_d and rank < other_rank)


# The donor scans keep their four best candidates in scalars (d, rank, site) x 4, sorted nearest
# first: array arguments to helpers inside a hot loop would cost reference counting per call.
# They compile without fastmath: distances must round exactly as the peer's (no fused multiply-add,
# no approximate log2), or equal distances could split and flip which site wins a tie.


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _offer(d, r, s, d0, r0, i0, d1, r1, i1, d2, r2, i2, d3, r3, i3):
    """Offer candidate (d, r, s) to the sorted four; returns the new four."""
    if _closer(d, r, d3, r3):
        d3, r3, i3 = d, r, s
        if _closer(d3, r3, d2, r2):
            d2, r2, i2, d3, r3, i3 = d3, r3, i3, d2, r2, i2
            if _closer(d2, r2, d1, r1):
                d1, r1, i1, d2, r2, i2 = d2, r2, i2, d1, r1, i1
                if _closer(d1, r1, d0, r0):
                    d0, r0, i0, d1, r1, i1 = d1, r1, i1, d0, r0, i0
    return d0, r0, i0, d1, r1, i1, d2, r2, i2, d3, r3, i3


@njit(cache=True, fastmath=FASTMATH)
def _store_donors(i0, d0, i1, d1, i2, d2, i3, d3, donor_ids, donor_d):
    count = 0
    for s, d in ((i0, d0), (i1, d1), (i2, d2), (i3, d3)):
        if s >= 0:
            donor_ids[count] = s
            donor_d[count] = d
            count += 1
    return count


@njit(cache=True, fastmath=False)
def _select_gated(
    site_log2_n, site_log2_k, site_rank, curve_ptr, cm, n_runs, n, k, q, must_filter, donor_ids, donor_d
):
    """Donors within the distance gate, nearest first (ties: lower site_rank). A site passes only if
    it is within the gate on each axis separately, so only that window of the (n, k)-sorted sites
    is scanned. Writes donor_ids/donor_d; returns the donor count (0: none within the gate)."""
    ql_n = np.log2(max(n, LOG_FLOOR))
    ql_k = np.log2(max(k, LOG_FLOOR))
    # Slack keeps every site whose rounded distance could still pass the gate inside the window.
    reach = SITE_GATE_OCTAVES + 1e-9
    big = np.iinfo(np.int64).max
    d0 = d1 = d2 = d3 = np.inf
    r0 = r1 = r2 = r3 = big
    i0 = i1 = i2 = i3 = -1
    for r in range(n_runs.shape[0] - 1):
        a = n_runs[r]
        b = n_runs[r + 1]
        dn = site_log2_n[a] - ql_n
        if dn < -reach:
            continue
        if dn > reach:
            break
        lo_k = ql_k - reach
        j = a
        hi = b
        while j < hi:
            mid = (j + hi) >> 1
            if site_log2_k[mid] < lo_k:
                j = mid + 1
            else:
                hi = mid
        while j < b:
            dk = site_log2_k[j] - ql_k
            if dk > reach:
                break
            if not must_filter or cm[curve_ptr[j]] <= q <= cm[curve_ptr[j + 1] - 1]:
                d = np.sqrt(dn * dn + dk * dk)
                # Most sites are farther than the current fourth donor: one compare rejects them.
                if d <= SITE_GATE_OCTAVES and d <= d3:
                    d0, r0, i0, d1, r1, i1, d2, r2, i2, d3, r3, i3 = _offer(
                        d, site_rank[j], j, d0, r0, i0, d1, r1, i1, d2, r2, i2, d3, r3, i3
                    )
            j += 1
    return _store_donors(i0, d0, i1, d1, i2, d2, i3, d3, donor_ids, donor_d)


@njit(cache=True, fastmath=False)
def _select_waived(
    site_log2_n, site_log2_k, site_rank, curve_ptr, cm, n, k, q, must_filter, env, donor_ids, donor_d
):
    """No candidate within the gate: waive it for a query that exceeds the candidates' envelope
    ``env`` (min n, max n, min k, max k) on exactly one axis and is below it on none, gating on the
    other axis alone. Returns the donor count."""
    if not (n >= env[0] and k >= env[2]):
        return 0
    over_n = n > env[1]
    over_k = k > env[3]
    if over_n == over_k:
        return 0
    ql_n = np.log2(max(n, LOG_FLOOR))
    ql_k = np.log2(max(k, LOG_FLOOR))
    big = np.iinfo(np.int64).max
    d0 = d1 = d2 = d3 = np.inf
    r0 = r1 = r2 = r3 = big
    i0 = i1 = i2 = i3 = -1
    for s in range(site_log2_n.shape[0]):
        if must_filter and not (cm[curve_ptr[s]] <= q <= cm[curve_ptr[s + 1] - 1]):
            continue
        dn = site_log2_n[s] - ql_n
        dk = site_log2_k[s] - ql_k
        r = dk if over_n else dn
        d = np.sqrt(dn * dn + dk * dk)
        if np.sqrt(r * r) <= SITE_GATE_OCTAVES and d <= d3:
            d0, r0, i0, d1, r1, i1, d2, r2, i2, d3, r3, i3 = _offer(
                d, site_rank[s], s, d0, r0, i0, d1, r1, i1, d2, r2, i2, d3, r3, i3
            )
    return _store_donors(i0, d0, i1, d1, i2, d2, i3, d3, donor_ids, donor_d)


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _memo_hash(n, k, cls):
    h = np.int64(min(n, 1e15)) * np.int64(-7046029254386353131)
    h = (h ^ (h >> 29)) + np.int64(min(k, 1e15)) * np.int64(-4417276706812531889)
    h = (h ^ (h >> 32)) + np.int64(cls) * np.int64(1609587929392839161)
    h = h * np.int64(-4658895280553007687)
    return h ^ (h >> 29)


@njit(cache=True, fastmath=FASTMATH)
def gemm_latency_ms(m, n, k, sites, flops_per_s, mem_bw_bytes_per_s, bytes_per_elem, out_ms, out_prov):
    """GEMM latency (ms) of each query (m[i], n[i], k[i]) against one dtype's sites (``GemmSites``).

    m, n, k: (N,) float64. out_ms: (N,) float64; out_prov: (N,) int8 (``PROV_*``; a miss writes
    NaN and ``PROV_MISS``, a non-finite or non-positive coordinate NaN and ``PROV_INVALID``).
    """
    _gemm_latency_ms(
        m,
        n,
        k,
        sites.site_n,
        sites.site_k,
        sites.site_log2_n,
        sites.site_log2_k,
        sites.site_rank,
        sites.site_axis,
        sites.curve_ptr,
        sites.curve_m,
        sites.curve_ms,
        sites.cover_breaks,
        flops_per_s,
        mem_bw_bytes_per_s,
        bytes_per_elem,
        out_ms,
        out_prov,
    )


@njit(cache=True, fastmath=FASTMATH)
def _gemm_latency_ms(
    m,
    n,
    k,
    site_n,
    site_k,
    site_log2_n,
    site_log2_k,
    site_rank,
    site_axis,
    curve_ptr,
    cm,
    cms,
    cover_breaks,
    flops,
    bw,
    mu,
    out_ms,
    out_prov,
):
    num_sites = site_n.shape[0]
    # Runs of equal n in the (n, k)-sorted sites: the donor search scans only nearby runs.
    n_runs = np.empty(num_sites + 1, dtype=np.int64)
    num_runs = 0
    for s in range(num_sites):
        if s == 0 or site_n[s] != site_n[s - 1]:
            n_runs[num_runs] = s
            num_runs += 1
    n_runs[num_runs] = num_sites
    n_runs = n_runs[: num_runs + 1]
    must_filter, env = _class_envelopes(site_n, site_k, curve_ptr, cm, cover_breaks)
    # Resolution of (n, k) (and, for an uncollected one, of which curves cover m) is memoized:
    # kind -1 collected site, 0 no anchor, 1 donors within the gate, 2 donors by the gate waiver.
    memo_n = np.full(MEMO_SLOTS, np.nan)
    memo_k = np.full(MEMO_SLOTS, np.nan)
    memo_cls = np.full(MEMO_SLOTS, -1, dtype=np.int64)
    memo_kind = np.zeros(MEMO_SLOTS, dtype=np.int64)
    memo_count = np.zeros(MEMO_SLOTS, dtype=np.int64)
    memo_shared = np.zeros(MEMO_SLOTS, dtype=np.bool_)
    memo_ids = np.zeros((MEMO_SLOTS, SITE_NEIGHBOURS), dtype=np.int64)
    memo_w = np.zeros((MEMO_SLOTS, SITE_NEIGHBOURS))
    memo_used = 0
    donor_ids = np.zeros(SITE_NEIGHBOURS, dtype=np.int64)
    donor_d = np.zeros(SITE_NEIGHBOURS)
    for i in range(m.shape[0]):
        q = m[i]
        qn = n[i]
        qk = k[i]
        if not (np.isfinite(q) and np.isfinite(qn) and np.isfinite(qk) and q > 0 and qn > 0 and qk > 0):
            out_ms[i] = np.nan
            out_prov[i] = PROV_INVALID
            continue
        cls = _cover_class(cover_breaks, q)
        slot = _memo_hash(qn, qk, cls) & (MEMO_SLOTS - 1)
        while memo_cls[slot] >= 0 and not (
            memo_n[slot] == qn and memo_k[slot] == qk and memo_cls[slot] == cls
        ):
            slot = (slot + 1) & (MEMO_SLOTS - 1)
        if memo_cls[slot] < 0:
            if 2 * memo_used >= MEMO_SLOTS:
                memo_cls[:] = -1
                memo_used = 0
                slot = _memo_hash(qn, qk, cls) & (MEMO_SLOTS - 1)
            memo_used += 1
            memo_n[slot] = qn
            memo_k[slot] = qk
            memo_cls[slot] = cls
            site = _find_site(site_n, site_k, qn, qk)
            if site >= 0:
                memo_kind[slot] = -1
                memo_ids[slot, 0] = site
            else:
                kind = 0
                cnt = 0
                if num_sites > 0:
                    kind = 1
                    cnt = _select_gated(
                        site_log2_n,
                        site_log2_k,
                        site_rank,
                        curve_ptr,
                        cm,
                        n_runs,
                        qn,
                        qk,
                        q,
                        must_filter[cls],
                        donor_ids,
                        donor_d,
                    )
                    if cnt == 0:
                        kind = 2
                        cnt = _select_waived(
                            site_log2_n,
                            site_log2_k,
                            site_rank,
                            curve_ptr,
                            cm,
                            qn,
                            qk,
                            q,
                            must_filter[cls],
                            env[cls],
                            donor_ids,
                            donor_d,
                        )
                memo_kind[slot] = kind if cnt > 0 else 0
                memo_count[slot] = cnt
                shared = True
                for j in range(cnt):
                    memo_ids[slot, j] = donor_ids[j]
                    memo_w[slot, j] = 1.0 / (donor_d[j] * donor_d[j] + IDW_EPS)
                    shared = shared and site_axis[donor_ids[j]] == site_axis[donor_ids[0]]
                memo_shared[slot] = shared
        kind = memo_kind[slot]
        if kind == -1:
            s = memo_ids[slot, 0]
            lat, prov = _curve_at(cm, cms, curve_ptr[s], curve_ptr[s + 1], qn, qk, q, flops, bw, mu)
            out_ms[i] = lat
            out_prov[i] = prov
            continue
        if kind == 0:
            out_ms[i] = np.nan
            out_prov[i] = PROV_MISS
            continue
        # Donor curves measured at the same m values share one bracket search.
        where = 3
        j = 0
        t = 0.0
        if memo_shared[slot]:
            s0 = memo_ids[slot, 0]
            lo = curve_ptr[s0]
            j, where = _bracket(cm, lo, curve_ptr[s0 + 1], q)
            j -= lo
            if where == 1:
                m0 = cm[lo + j - 1]
                t = (q - m0) / (cm[lo + j] - m0)
        wsum = 0.0
        util = 0.0
        prov_i = PROV_EDGE_CORRECTED if kind == 1 else PROV_EXTRAPOLATED
        for d in range(memo_count[slot]):
            s = memo_ids[slot, d]
            base = curve_ptr[s]
            sn = site_n[s]
            sk = site_k[s]
            prov = where
            if where == 0:
                lat = cms[base + j]
            elif where == 1:
                y0 = cms[base + j - 1]
                lat = y0 + (cms[base + j] - y0) * t
            elif where == 2:
                lat = _curve_hold(cm, cms, base, curve_ptr[s + 1], sn, sk, q, flops, bw, mu)
                prov = PROV_EXTRAPOLATED
            else:
                lat, prov = _curve_at(cm, cms, base, curve_ptr[s + 1], sn, sk, q, flops, bw, mu)
            sol = gemm_roofline_ms(q, sn, sk, flops, bw, mu)
            if not (np.isfinite(lat) and lat > 0.0 and np.isfinite(sol) and sol > 0.0):
                continue
            if prov == PROV_EXTRAPOLATED:
                prov_i = PROV_EXTRAPOLATED
            w = memo_w[slot, d]
            util += w * (sol / lat)
            wsum += w
        sol_q = gemm_roofline_ms(q, qn, qk, flops, bw, mu)
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


# ---------------------------------------------------------------------------------------------
# Query deduplication: search batches repeat the same (m, n, k) many times
# ---------------------------------------------------------------------------------------------

# Initial slots of the dedup hash table (grows x4 whenever it is half full).
DEDUP_INITIAL_SLOTS = 4096


@njit(cache=True, inline="always")
def _mix_bits(a, b, c):
    """Hash of three 64-bit patterns (multiply-xorshift; int64 arithmetic wraps)."""
    h = a * np.int64(-7046029254386353131) + b * np.int64(-4417276706812531889)
    h = (h ^ (h >> 29)) + c * np.int64(1609587929392839161)
    h = h ^ (h >> 32)
    h = h * np.int64(-4658895280553007687)
    return h ^ (h >> 29)


@njit(cache=True)
def unique_rows(a_bits, b_bits, c_bits):
    """Distinct rows of (a, b, c), compared by bit pattern (pass float64 arrays viewed as int64).

    Returns (first, inverse): first (U,) int64 the index of each distinct row's first occurrence, in
    order of appearance; inverse (N,) int64 with row i == row first[inverse[i]]. O(N) expected.
    """
    size = a_bits.shape[0]
    cap = DEDUP_INITIAL_SLOTS
    table = np.full(cap, -1, dtype=np.int64)
    first = np.empty(size, dtype=np.int64)
    inverse = np.empty(size, dtype=np.int64)
    count = 0
    for i in range(size):
        a = a_bits[i]
        b = b_bits[i]
        c = c_bits[i]
        mask = cap - 1
        slot = _mix_bits(a, b, c) & mask
        while True:
            u = table[slot]
            if u < 0:
                table[slot] = count
                first[count] = i
                inverse[i] = count
                count += 1
                break
            j = first[u]
            if a_bits[j] == a and b_bits[j] == b and c_bits[j] == c:
                inverse[i] = u
                break
            slot = (slot + 1) & mask
        if 2 * count > cap:
            cap *= 4
            mask = cap - 1
            table = np.full(cap, -1, dtype=np.int64)
            for u in range(count):
                j = first[u]
                slot = _mix_bits(a_bits[j], b_bits[j], c_bits[j]) & mask
                while table[slot] >= 0:
                    slot = (slot + 1) & mask
                table[slot] = u
    return first[:count].copy(), inverse
