"""Hash deduplication of query rows: search batches repeat the same points many times, so every
batched lookup first finds the distinct rows in one O(n) pass and scatters the answers back.

Rows are the rows of one C-contiguous (n, k) int64 matrix, whatever k is: a single compiled
signature serves every caller (a tuple of columns would compile once per tuple length).
"""

import numpy as np
from numba import njit

from servopt_kernels.config import FASTMATH as _FASTMATH_FLAGS

# numba takes a plain set (not a frozenset) for fastmath.
FASTMATH = set(_FASTMATH_FLAGS)

# The open-addressing table starts at this many slots and doubles past half full.
INITIAL_SLOTS = 1024


@njit(cache=True, fastmath=FASTMATH)
def _row_hash(bits, i):
    # splitmix64 finaliser per value (float bit patterns have all-zero low bits), folded per column.
    h = np.uint64(0x9E3779B97F4A7C15)
    for j in range(bits.shape[1]):
        z = np.uint64(bits[i, j]) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
        h = (h ^ z) * np.uint64(0x100000001B3)
        h ^= h >> np.uint64(32)
    return h


@njit(cache=True, fastmath=FASTMATH)
def unique_bits(bits):
    """Hash-deduplicate the rows of a C-contiguous (n, k) int64 matrix (float64 data: pass
    ``rows.view(np.int64)``; rows compare by bit pattern).

    Returns (first, inverse): ``first`` lists the first index of each distinct row in order of
    appearance, ``inverse[i]`` is the position of row i's representative in ``first``. The table
    starts small and doubles, so batches with few distinct rows stay in cache.
    """
    n, k = bits.shape
    size = INITIAL_SLOTS
    mask = size - 1
    table = np.full(size, -1, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    inverse = np.empty(n, dtype=np.int64)
    m = 0
    for i in range(n):
        slot = np.int64(_row_hash(bits, i) & np.uint64(mask))
        while True:
            u = table[slot]
            if u < 0:
                table[slot] = m
                first[m] = i
                inverse[i] = m
                m += 1
                break
            r = first[u]
            same = True
            for j in range(k):
                if bits[r, j] != bits[i, j]:
                    same = False
                    break
            if same:
                inverse[i] = u
                break
            slot = (slot + 1) & mask
        if 2 * m > size:
            size *= 2
            mask = size - 1
            table = np.full(size, -1, dtype=np.int64)
            for u in range(m):
                slot = np.int64(_row_hash(bits, first[u]) & np.uint64(mask))
                while table[slot] >= 0:
                    slot = (slot + 1) & mask
                table[slot] = u
    return first[:m], inverse


def bit_matrix(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """An empty (n, k) int64 matrix for ``unique_bits`` and its float64 view, to fill column by
    column without a second copy."""
    bits = np.empty((n, k), dtype=np.int64)
    return bits, bits.view(np.float64)


def unique_rows(rows):
    """``unique_bits`` over the rows of a (Q, K) float64 array (compared by bit pattern)."""
    bits = np.require(rows, dtype=np.float64, requirements=["C", "W"]).view(np.int64)
    return unique_bits(bits)


def unique_cols(cols):
    """``unique_bits`` over the rows formed by a sequence of equal-length int64 columns."""
    n = len(cols[0]) if len(cols) else 0
    bits = np.empty((n, len(cols)), dtype=np.int64)
    for j, c in enumerate(cols):
        bits[:, j] = c
    return unique_bits(bits)
