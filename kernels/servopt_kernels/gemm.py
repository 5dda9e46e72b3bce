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

All latencies are milliseconds. Provenance codes (int8): ``servopt_kernels.primitives.PROV_*``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from servopt_kernels.jit import kernel
from servopt_kernels.primitives import (
    HOLD_NEIGHBOURS,
    IDW_EPS,
    PROV_EDGE_CORRECTED,
    PROV_EXACT,
    PROV_EXTRAPOLATED,
    PROV_INTERPOLATED,
    PROV_INVALID,
    PROV_MISSING,
    idw_blend,
    keep_nearest,
    mix3,
    search_left,
)

# Donor sites blended for an uncollected (n, k) (the peer's nn_sites).
SITE_NEIGHBOURS = 4
# Farthest a donor site may sit from the query in log2(n, k) distance: two octaves.
SITE_GATE_OCTAVES = 2.0
# Boundary points of a curve whose median utilization is held beyond its measured m range.
CURVE_TAIL_POINTS = 3
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


@kernel(inline="always")
def gemm_roofline_ms(m, n, k, flops_per_s, mem_bw_bytes_per_s, bytes_per_elem):
    """Speed-of-light GEMM latency (ms): max(2mnk / peak FLOP/s, bytes(A, B, C) / HBM bandwidth)."""
    math_ms = 2.0 * m * n * k / flops_per_s * 1000.0
    mem_ms = bytes_per_elem * (m * n + m * k + n * k) / mem_bw_bytes_per_s * 1000.0
    return max(math_ms, mem_ms)


@kernel(
    returns="none",
    args=(
        "float64[::1]",
        "float64[::1]",
        "float64[::1]",
        "float64",
        "float64",
        "float64",
        "float64[::1]",
    ),
)
def gemm_roofline_batch_ms(m, n, k, flops_per_s, mem_bw_bytes_per_s, bytes_per_elem, out_ms):
    """``gemm_roofline_ms`` over flat (N,) float64 arrays into ``out_ms``."""
    for i in range(m.shape[0]):
        out_ms[i] = gemm_roofline_ms(m[i], n[i], k[i], flops_per_s, mem_bw_bytes_per_s, bytes_per_elem)


# The batch path compiles as three functions (the batch loop, the donor selection, the curve hold):
# cold start is dominated by numba compilation, which grows with every inlined copy of a helper and
# every extra function or signature. So each step is written once, scratch arrays are 1-D float64 /
# int64 ``np.empty`` (the forms the grid kernels compile anyway), the per-call tables that need no
# loop (coverage classes, runs of equal n) are numpy in the plain-Python entry point, and no argument
# is a compile-time literal. Helpers take plain arrays: a namedtuple field read inside a loop costs
# reference counting.


@kernel
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


# Which distance the donor gate applies to.
GATE_BOTH = 0  # the (n, k) distance: the normal gate
GATE_K = 1  # k alone: the waiver for a query beyond every candidate's n
GATE_N = 2  # n alone: the waiver for a query beyond every candidate's k
# Rank of an empty donor slot: after every real site.
_RANK_NONE = np.iinfo(np.int64).max


@kernel(fastmath=False)
def _select_donors(
    site_log2_n,
    site_log2_k,
    site_rank,
    n_runs,
    curve_ptr,
    cm,
    n,
    k,
    q,
    must_filter,
    gate_axis,
    donor_ids,
    donor_d,
    donor_rank,
):
    """The ``SITE_NEIGHBOURS`` sites nearest (n, k) in log2 space that pass the gate on
    ``gate_axis`` (``GATE_*``), nearest first (ties: lower site_rank), among the sites whose curve
    covers m = q when ``must_filter``. Writes donor_ids / donor_d (donor_rank is scratch) and
    returns the donor count.

    Under the full gate a site is also within it on each axis separately, so only the sites within
    reach in the (n, k)-sorted runs of equal n (``n_runs``) are scanned; a waived gate scans all.
    Compiled without fastmath: distances must round exactly as the peer's (no fused multiply-add,
    no approximate log2), or equal distances could split and flip which site wins a tie.
    """
    ql_n = np.log2(max(n, LOG_FLOOR))
    ql_k = np.log2(max(k, LOG_FLOOR))
    # Slack keeps every site whose rounded distance could still pass the gate inside the window.
    reach = SITE_GATE_OCTAVES + 1e-9
    windowed = gate_axis == GATE_BOTH
    last = SITE_NEIGHBOURS - 1
    for j in range(SITE_NEIGHBOURS):
        donor_ids[j] = -1
        donor_d[j] = np.inf
        donor_rank[j] = _RANK_NONE
    for r in range(n_runs.shape[0] - 1):
        b = n_runs[r + 1]
        j = n_runs[r]
        dn = site_log2_n[j] - ql_n
        if windowed:
            if dn < -reach:
                continue
            if dn > reach:
                break
            j = search_left(site_log2_k, j, b, ql_k - reach)
        while j < b:
            dk = site_log2_k[j] - ql_k
            if windowed and dk > reach:
                break
            if not must_filter or cm[curve_ptr[j]] <= q <= cm[curve_ptr[j + 1] - 1]:
                d = np.sqrt(dn * dn + dk * dk)
                if gate_axis == GATE_K:
                    gated = np.sqrt(dk * dk)
                elif gate_axis == GATE_N:
                    gated = np.sqrt(dn * dn)
                else:
                    gated = d
                # Most sites are farther than the current last donor: one compare rejects them.
                if gated <= SITE_GATE_OCTAVES and d <= donor_d[last]:
                    rank = site_rank[j]
                    pos = last + 1
                    while pos > 0 and (
                        d < donor_d[pos - 1] or (d == donor_d[pos - 1] and rank < donor_rank[pos - 1])
                    ):
                        if pos <= last:
                            donor_ids[pos] = donor_ids[pos - 1]
                            donor_d[pos] = donor_d[pos - 1]
                            donor_rank[pos] = donor_rank[pos - 1]
                        pos -= 1
                    if pos <= last:
                        donor_ids[pos] = j
                        donor_d[pos] = d
                        donor_rank[pos] = rank
            j += 1
    count = 0
    while count < SITE_NEIGHBOURS and donor_ids[count] >= 0:
        count += 1
    return count


# How a memoized (n, k) resolves.
KIND_SITE = -1  # a collected site: its own curve
KIND_NONE = 0  # nothing to anchor on
KIND_GATED = 1  # donors within the gate
KIND_WAIVED = 2  # donors under the gate waiver
# Memo rows in two flat scratch arrays: MEMO_INTS int64 (coverage class, kind, donor count, whether
# the donors share one m axis, donor ids) and MEMO_FLOATS float64 (n, k, donor weights) per slot.
_MI_CLS, _MI_KIND, _MI_COUNT, _MI_SHARED, _MI_IDS = 0, 1, 2, 3, 4
MEMO_INTS = _MI_IDS + SITE_NEIGHBOURS
_MF_N, _MF_K, _MF_W = 0, 1, 2
MEMO_FLOATS = _MF_W + SITE_NEIGHBOURS


@kernel(
    returns="none",
    args=(
        "float64[::1]",
        "float64[::1]",
        "float64[::1]",
        "float64[::1]",
        "float64[::1]",
        "float64[::1]",
        "float64[::1]",
        "int64[::1]",
        "int64[::1]",
        "int64[::1]",
        "float64[::1]",
        "float64[::1]",
        "float64[::1]",
        "int64[::1]",
        "float64[::1]",
        "int64[::1]",
        "float64",
        "float64",
        "float64",
        "float64[::1]",
        "int8[::1]",
    ),
)
def _gemm_batch(
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
    class_filter,
    class_env,
    n_runs,
    flops,
    bw,
    mu,
    out_ms,
    out_prov,
):
    """``gemm_latency_ms`` on plain arrays, plus the per-call tables: class_filter (C,) int64 and
    class_env (4C,) float64 from ``_class_envelopes``, n_runs from ``_n_runs``."""
    num_sites = site_n.shape[0]
    num_breaks = cover_breaks.shape[0]
    # The resolution of (n, k) (and, for an uncollected one, of which curves cover m) is memoized.
    memo_i = np.empty(MEMO_SLOTS * MEMO_INTS, dtype=np.int64)
    memo_f = np.empty(MEMO_SLOTS * MEMO_FLOATS)
    for slot in range(MEMO_SLOTS):
        memo_i[slot * MEMO_INTS + _MI_CLS] = -1
    memo_used = 0
    donor_ids = np.empty(SITE_NEIGHBOURS, dtype=np.int64)
    donor_rank = np.empty(SITE_NEIGHBOURS, dtype=np.int64)
    donor_d = np.empty(SITE_NEIGHBOURS)
    for i in range(m.shape[0]):
        q = m[i]
        qn = n[i]
        qk = k[i]
        if not (np.isfinite(q) and np.isfinite(qn) and np.isfinite(qk) and q > 0 and qn > 0 and qk > 0):
            out_ms[i] = np.nan
            out_prov[i] = PROV_INVALID
            continue
        # Coverage class of q: 2c strictly below cover_breaks[c], 2c + 1 at it.
        c = 0
        while c < num_breaks and cover_breaks[c] < q:
            c += 1
        cls = 2 * c + 1 if c < num_breaks and cover_breaks[c] == q else 2 * c
        h = mix3(np.int64(min(qn, 1e15)), np.int64(min(qk, 1e15)), np.int64(cls))
        slot = h & (MEMO_SLOTS - 1)
        while memo_i[slot * MEMO_INTS + _MI_CLS] >= 0 and not (
            memo_f[slot * MEMO_FLOATS + _MF_N] == qn
            and memo_f[slot * MEMO_FLOATS + _MF_K] == qk
            and memo_i[slot * MEMO_INTS + _MI_CLS] == cls
        ):
            slot = (slot + 1) & (MEMO_SLOTS - 1)
        row_i = slot * MEMO_INTS
        row_f = slot * MEMO_FLOATS
        if memo_i[row_i + _MI_CLS] < 0:
            if 2 * memo_used >= MEMO_SLOTS:
                # Half full: start over (a batch with more distinct shapes resolves some twice).
                for s in range(MEMO_SLOTS):
                    memo_i[s * MEMO_INTS + _MI_CLS] = -1
                memo_used = 0
                slot = h & (MEMO_SLOTS - 1)
                row_i = slot * MEMO_INTS
                row_f = slot * MEMO_FLOATS
            memo_used += 1
            memo_i[row_i + _MI_CLS] = cls
            memo_f[row_f + _MF_N] = qn
            memo_f[row_f + _MF_K] = qk
            # A collected site: binary search of the (n, k)-sorted sites.
            a = 0
            b = num_sites
            while a < b:
                mid = (a + b) >> 1
                if site_n[mid] < qn or (site_n[mid] == qn and site_k[mid] < qk):
                    a = mid + 1
                else:
                    b = mid
            if a < num_sites and site_n[a] == qn and site_k[a] == qk:
                kind = KIND_SITE
                cnt = 1
                donor_ids[0] = a
            else:
                kind = KIND_NONE
                cnt = 0
                # np.int64: a bare constant would first type as a literal and compile twice.
                axis = np.int64(GATE_BOTH)
                while num_sites > 0:
                    cnt = _select_donors(
                        site_log2_n,
                        site_log2_k,
                        site_rank,
                        n_runs,
                        curve_ptr,
                        cm,
                        qn,
                        qk,
                        q,
                        class_filter[cls] != 0,
                        axis,
                        donor_ids,
                        donor_d,
                        donor_rank,
                    )
                    if cnt > 0:
                        kind = KIND_GATED if axis == GATE_BOTH else KIND_WAIVED
                        break
                    if axis != GATE_BOTH:
                        break
                    # Nothing within the gate: waive it for a query beyond the candidates' (n, k)
                    # envelope on exactly one axis and below it on none, gating on the other alone.
                    env = 4 * cls
                    over_n = qn > class_env[env + 1]
                    over_k = qk > class_env[env + 3]
                    if not (qn >= class_env[env] and qk >= class_env[env + 2]) or over_n == over_k:
                        break
                    axis = GATE_K if over_n else GATE_N
            memo_i[row_i + _MI_KIND] = kind
            memo_i[row_i + _MI_COUNT] = cnt
            shared = 1
            for j in range(cnt):
                memo_i[row_i + _MI_IDS + j] = donor_ids[j]
                memo_f[row_f + _MF_W + j] = 1.0 / (donor_d[j] * donor_d[j] + IDW_EPS)
                if site_axis[donor_ids[j]] != site_axis[donor_ids[0]]:
                    shared = 0
            memo_i[row_i + _MI_SHARED] = shared
        kind = memo_i[row_i + _MI_KIND]
        if kind == KIND_NONE:
            out_ms[i] = np.nan
            out_prov[i] = PROV_MISSING
            continue
        # Each curve (the site's own, or each donor's) at m = q. Donor curves measured at the same m
        # values share one bracket search: where 0 exactly at lo + j, 1 strictly between lo + j - 1
        # and lo + j (weight t), 2 outside the measured range.
        shared = memo_i[row_i + _MI_SHARED] != 0
        where = 2
        j = 0
        t = 0.0
        lat = np.nan
        prov = PROV_MISSING
        wsum = 0.0
        util = 0.0
        prov_i = PROV_EDGE_CORRECTED if kind == KIND_GATED else PROV_EXTRAPOLATED
        for d in range(memo_i[row_i + _MI_COUNT]):
            s = memo_i[row_i + _MI_IDS + d]
            lo = curve_ptr[s]
            hi = curve_ptr[s + 1]
            if d == 0 or not shared:
                if q < cm[lo] or q > cm[hi - 1]:
                    where = 2
                else:
                    a = search_left(cm, lo, hi, q)
                    j = a - lo
                    if cm[a] == q:
                        where = 0
                    else:
                        where = 1
                        m0 = cm[a - 1]
                        t = (q - m0) / (cm[a] - m0)
            sn = site_n[s]
            sk = site_k[s]
            if where == 0:
                lat = cms[lo + j]
                prov = PROV_EXACT
            elif where == 1:
                y0 = cms[lo + j - 1]
                lat = y0 + (cms[lo + j] - y0) * t
                prov = PROV_INTERPOLATED
            else:
                lat = _curve_hold(cm, cms, lo, hi, sn, sk, q, flops, bw, mu)
                prov = PROV_EXTRAPOLATED if np.isfinite(lat) else PROV_MISSING
            if kind == KIND_SITE:
                break
            sol = gemm_roofline_ms(q, sn, sk, flops, bw, mu)
            if not (np.isfinite(lat) and lat > 0.0 and np.isfinite(sol) and sol > 0.0):
                continue
            if prov == PROV_EXTRAPOLATED:
                prov_i = PROV_EXTRAPOLATED
            w = memo_f[row_f + _MF_W + d]
            util += w * (sol / lat)
            wsum += w
        if kind == KIND_SITE:
            out_ms[i] = lat
            out_prov[i] = prov
            continue
        sol_q = gemm_roofline_ms(q, qn, qk, flops, bw, mu)
        if wsum <= 0.0 or not sol_q > 0.0:
            out_ms[i] = np.nan
            out_prov[i] = PROV_MISSING
            continue
        out_ms[i] = sol_q / (util / wsum)
        out_prov[i] = prov_i


def _class_envelopes(sites: GemmSites) -> tuple[np.ndarray, np.ndarray]:
    """Per coverage class of m (``_gemm_batch``): whether donor candidates must be filtered by curve
    coverage (some, not all, curves cover its m values; when none does every site is a candidate),
    as (C,) int64, and the (min n, max n, min k, max k) envelope of the candidates, as (4C,)."""
    breaks = sites.cover_breaks
    num = breaks.shape[0]
    # One m value standing for each class: the breaks themselves, and a point in each gap.
    q = np.empty(2 * num + 1)
    q[1::2] = breaks
    if num:
        q[0] = breaks[0] - 1.0
        q[-1] = breaks[-1] + 1.0
        q[2:-1:2] = 0.5 * (breaks[:-1] + breaks[1:])
    else:
        q[0] = 1.0
    first_m = sites.curve_m[sites.curve_ptr[:-1]]
    last_m = sites.curve_m[sites.curve_ptr[1:] - 1]
    covers = (first_m <= q[:, None]) & (q[:, None] <= last_m)
    covering = covers.sum(axis=1)
    must_filter = ((covering > 0) & (covering < first_m.shape[0])).astype(np.int64)
    candidate = covers | (covering == 0)[:, None]
    env = np.empty((q.shape[0], 4))
    for col, (coord, pick) in enumerate(
        ((sites.site_n, np.min), (sites.site_n, np.max), (sites.site_k, np.min), (sites.site_k, np.max))
    ):
        start = np.inf if pick is np.min else -np.inf
        env[:, col] = pick(np.where(candidate, coord, start), axis=1, initial=start)
    return must_filter, env.reshape(-1)


def _n_runs(site_n: np.ndarray) -> np.ndarray:
    """Starts of the runs of equal n in (n, k)-sorted sites, closed by the site count."""
    starts = np.flatnonzero(site_n[1:] != site_n[:-1]) + 1
    head = [0] if site_n.shape[0] else []
    return np.concatenate((head, starts, [site_n.shape[0]])).astype(np.int64)


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _i64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def gemm_latency_ms(m, n, k, sites, flops_per_s, mem_bw_bytes_per_s, bytes_per_elem, out_ms, out_prov):
    """GEMM latency (ms) of each query (m[i], n[i], k[i]) against one dtype's sites (``GemmSites``).

    m, n, k: (N,) float64. out_ms: (N,) float64; out_prov: (N,) int8 (``PROV_*``; a miss writes
    NaN and ``PROV_MISSING``, a non-finite or non-positive coordinate NaN and ``PROV_INVALID``).
    Plain Python around ``_gemm_batch``: inputs are cast to the one signature it compiles for.
    """
    class_filter, class_env = _class_envelopes(sites)
    _gemm_batch(
        _f64(m),
        _f64(n),
        _f64(k),
        _f64(sites.site_n),
        _f64(sites.site_k),
        _f64(sites.site_log2_n),
        _f64(sites.site_log2_k),
        _i64(sites.site_rank),
        _i64(sites.site_axis),
        _i64(sites.curve_ptr),
        _f64(sites.curve_m),
        _f64(sites.curve_ms),
        _f64(sites.cover_breaks),
        class_filter,
        class_env,
        _n_runs(sites.site_n),
        float(flops_per_s),
        float(mem_bw_bytes_per_s),
        float(bytes_per_elem),
        out_ms,
        out_prov,
    )


# ---------------------------------------------------------------------------------------------
# 2-D (m, k) scale grids: fp8 compute-scale and scale-matrix overheads
# ---------------------------------------------------------------------------------------------


@kernel
def _grid_row(values, r, k_axis, k):
    """Resolve row r of a (M, K) NaN-holed grid at k: (latency, status, prov).

    status 0 = resolved, 1 = out of the row's measured range.
    """
    num_k = k_axis.shape[0]
    j = search_left(k_axis, np.int64(0), num_k, k)
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
        return np.nan, 1, PROV_MISSING
    w = (k - k_axis[lo]) / (k_axis[hi] - k_axis[lo])
    y0 = values[r, lo]
    return y0 + (values[r, hi] - y0) * w, 0, PROV_INTERPOLATED


@kernel
def _grid_hold(values, m_axis, k_axis, m, k, sol_bytes_per_mk, mem_bw):
    """Out-of-range hold: utilization of the 4 nearest measured leaves in log2(m, k) space,
    tapered by the distance of the next one (weights ((R - d) / (R d))^2), over the query roofline."""
    num_m = m_axis.shape[0]
    num_k = k_axis.shape[0]
    lm = np.log2(max(m, LOG_FLOOR))
    lk = np.log2(max(k, LOG_FLOOR))
    best_d = np.empty(HOLD_NEIGHBOURS + 1)
    best_u = np.empty(HOLD_NEIGHBOURS + 1)
    best_d[:] = np.inf
    found = np.int64(0)  # not a literal 0: keep_nearest / idw_blend compile once, for int64
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
            found = keep_nearest(best_d, best_u, found, d, sol / lat)
    if found == 0:
        return np.nan
    sol_q = sol_bytes_per_mk * m * k / mem_bw * 1000.0
    if not sol_q > 0.0:
        return np.nan
    return sol_q / idw_blend(best_d, best_u, found)


@kernel(
    returns="none",
    args=(
        "float64[::1]",
        "float64[::1]",
        "float64[::1]",
        "float64[::1]",
        "float64[:, ::1]",
        "float64",
        "float64",
        "boolean",
        "float64[::1]",
        "int8[::1]",
    ),
)
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
            out_prov[i] = PROV_MISSING
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
        r = search_left(m_axis, np.int64(0), num_m, cm)
        lat = np.nan
        prov = PROV_MISSING
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
            prov = PROV_EXTRAPOLATED if np.isfinite(lat) else PROV_MISSING
        if np.isfinite(lat) and (cm != qm or ck != qk):
            if sol_ratio_beyond and cm * ck > 0.0:
                lat = lat * ((qm * qk) / (cm * ck))
            prov = PROV_EXTRAPOLATED
        out_ms[i] = lat
        out_prov[i] = prov
