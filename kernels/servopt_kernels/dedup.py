"""Hash deduplication of query rows: search batches repeat the same points many times, so every
batched lookup first finds the distinct rows in one O(n) pass and scatters the answers back."""

import numpy as np
from numba import njit

from servopt_kernels.config import FASTMATH as _FASTMATH_FLAGS

# numba takes a plain set (not a frozenset) for fastmath.
FASTMATH = set(_FASTMATH_FLAGS)


@njit(cache=True, fastmath=FASTMATH)
def _row_hash(cols, i):
    # splitmix64 finaliser per value (float bit patterns have all-zero low bits), folded per column.
    h = np.uint64(0x9E3779B97F4A7C15)
    for j in range(len(cols)):
        z = np.uint64(cols[j][i]) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        h = (h ^ z) * np.uint64(0x100000001B3)
        h ^= h >> np.uint64(32)
    return h


@njit(cache=True, fastmath=FASTMATH)
def _same(cols, a, b):
    # An explicit loop: generator expressions do not compile in numba.
    for j in range(len(cols)):  # noqa: SIM110
        if cols[j][a] != cols[j][b]:
            return False
    return True


@njit(cache=True, fastmath=FASTMATH)
def unique_cols(cols):
    """Hash-deduplicate the rows formed by a tuple of equal-length int64 columns (pass float64
    columns as ``col.view(np.int64)``: rows compare by bit pattern).

    Returns (first, inverse): ``first`` lists the first index of each distinct row in order of
    appearance, ``inverse[i]`` is the position of row i's representative in ``first``. The open
    addressing table starts small and doubles, so batches with few distinct rows stay in cache.
    """
    n = cols[0].shape[0]
    size = 1024
    mask = size - 1
    table = np.full(size, -1, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    inverse = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        slot = np.int64(_row_hash(cols, i) & np.uint64(mask))
        while True:
            u = table[slot]
            if u < 0:
                table[slot] = m
                first[m] = i
                inverse[i] = m
                m += 1
                break
            if _same(cols, first[u], i):
                inverse[i] = u
                break
            slot = (slot + 1) & mask
        if 2 * m > size:
            size *= 2
            mask = size - 1
            table = np.full(size, -1, dtype=np.int64)
            for u in range(m):
                slot = np.int64(_row_hash(cols, first[u]) & np.uint64(mask))
                while table[slot] >= 0:
                    slot = (slot + 1) & mask
                table[slot] = u
    return first[:m], inverse


def unique_rows(rows):
    """``unique_cols`` over the rows of a (Q, K) float64 array."""
    bits = np.ascontiguousarray(rows, dtype=np.float64).view(np.int64)
    return unique_cols(tuple(np.ascontiguousarray(bits[:, j]) for j in range(bits.shape[1])))
