"""Building blocks the grid, GEMM and dedup kernels share: provenance codes, the hash of the
open-addressing tables, binary search over a sorted range, and the nearest-neighbour utilisation
hold (keep the nearest measured points, blend their utilisations with tapered inverse-distance
weights).

These are ``@kernel`` helpers called from the entry kernels, never from Python: numba compiles
them once (one argument-type specialisation each) and links them into every caller, and the AOT
build compiles them into the extension module with the entry kernels that call them.
"""

import numpy as np

from servopt_kernels.jit import kernel

# Provenance of a latency (int8), from most to least trusted; negative codes have no latency.
PROV_INVALID = -2  # a coordinate that is not a finite positive number (GEMM queries)
PROV_MISSING = -1  # the data cannot answer (no slice, nothing to anchor on)
PROV_EXACT = 0  # a measured point
PROV_INTERPOLATED = 1  # between measured points
# A measured neighbour carried to the query by the roofline ratio: the survivor of a ragged
# bracket, or the utilization of nearby collected GEMM sites transferred to an uncollected one.
PROV_EDGE_CORRECTED = 2
PROV_EXTRAPOLATED = 3  # a utilisation hold beyond the measured range
PROV_SOL = 4  # the roofline alone

# Measured points blended by the out-of-range utilisation hold (the peer's 4 nearest).
HOLD_NEIGHBOURS = 4
# Keeps inverse-distance weights finite at zero distance (the peer's regularizer).
IDW_EPS = 1e-12


@kernel(inline="always", fastmath=False)
def mix3(a, b, c):
    """Hash of three int64 values (multiply-xorshift; int64 arithmetic wraps). Float bit patterns
    have all-zero low bits: the shifts bring the well-mixed high bits down to the slot bits."""
    h = a * np.int64(-7046029254386353131) + b * np.int64(-4417276706812531889)
    h = (h ^ (h >> 29)) + c * np.int64(1609587929392839161)
    h = h ^ (h >> 32)
    h = h * np.int64(-4658895280553007687)
    return h ^ (h >> 29)


@kernel
def free_slot(table, h):
    """The slot of hash ``h`` in an open-addressing table (power-of-two size, -1 = empty) where
    linear probing finds the first empty entry: where a rebuilt table re-inserts a known key."""
    mask = table.shape[0] - 1
    slot = h & mask
    while table[slot] >= 0:
        slot = (slot + 1) & mask
    return slot


@kernel
def search_left(axis, lo, hi, x):
    """lo + np.searchsorted(axis[lo:hi], x): the first position in [lo, hi) whose key is >= x (hi
    if none); a NaN x sorts after every key, as in numpy. A hand-written search compiles far faster than numba's generic one,
    and one routine serves every sorted range, so it compiles once."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if axis[mid] < x or x != x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@kernel
def keep_nearest(best_d, best_u, count, d, u):
    """Insert (distance d, utilisation u) into the ascending list of the ``best_d.shape[0]`` nearest
    points held so far (``count`` of them); a point tying one already held goes after it. Returns
    the new count. Callers skip a point no nearer than a full list's last before computing u."""
    k = best_d.shape[0]
    m = min(count, k - 1)
    while m > 0 and best_d[m - 1] > d:
        best_d[m] = best_d[m - 1]
        best_u[m] = best_u[m - 1]
        m -= 1
    best_d[m] = d
    best_u[m] = u
    return min(count + 1, k)


@kernel
def idw_blend(best_d, best_u, count):
    """Blend of the utilisations of the ``HOLD_NEIGHBOURS`` nearest points held by
    ``keep_nearest`` (distances, ascending): weights ((R - d) / (R d))^2 tapered to zero at the
    support radius R, the distance of the next point, or 1 / d^2 when there is none; equal weights
    when every point sits on the radius. NaN when no point is held."""
    if count == 0:
        return np.nan
    picked = min(count, HOLD_NEIGHBOURS)
    radius = best_d[HOLD_NEIGHBOURS] if count > HOLD_NEIGHBOURS else np.inf
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
        wsum = 0.0
        usum = 0.0
        for j in range(picked):
            wsum += 1.0
            usum += best_u[j]
    return usum / wsum
