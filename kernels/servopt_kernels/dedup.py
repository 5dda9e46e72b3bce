"""Hash deduplication of query rows: search batches repeat the same points many times, so every
batched lookup first finds the distinct rows in one O(n) pass and scatters the answers back.

The n rows to deduplicate are the columns of one C-contiguous (k, n) int64 matrix (each of the k
row fields contiguous, so callers fill it with plain copies), whatever k is: a single compiled
signature serves every caller (a tuple of columns would compile once per tuple length).
"""

import numpy as np

from servopt_kernels.jit import kernel
from servopt_kernels.primitives import free_slot, mix3

# The open-addressing table starts at this many slots and grows x4 past half full.
INITIAL_SLOTS = 4096


@kernel(
    returns="UniTuple(int64[::1], 2)",
    args=("int64[:, ::1]",),
    fastmath=False,
)
def unique_bits(bits):
    """Hash-deduplicate the n rows ``bits[:, i]`` of a C-contiguous (k, n) int64 matrix (float64
    data: pass its ``.view(np.int64)``; rows compare by bit pattern).

    Returns (first, inverse): ``first`` lists the first index of each distinct row in order of
    appearance, ``inverse[i]`` is the position of row i's representative in ``first``. O(n)
    expected; the table starts small and grows, so batches with few distinct rows stay in cache.
    """
    k, n = bits.shape
    first = np.empty(n, dtype=np.int64)
    inverse = np.empty(n, dtype=np.int64)
    if k == 0:
        # Rows without fields are all equal.
        first[:1] = 0
        inverse[:] = 0
        return first[: min(n, 1)], inverse
    # Row hashes: the first three fields in one pass (the common case, GEMM's (m, n, k), costs one
    # pass), then two more fields per streaming pass; no per-row loop over a runtime k.
    hashes = np.empty(n, dtype=np.int64)
    zero = np.int64(0)
    for i in range(n):
        hashes[i] = mix3(bits[0, i], bits[1, i] if k > 1 else zero, bits[2, i] if k > 2 else zero)
    for j in range(3, k, 2):
        for i in range(n):
            hashes[i] = mix3(hashes[i], bits[j, i], bits[j + 1, i] if j + 1 < k else zero)
    table = np.full(INITIAL_SLOTS, -1, dtype=np.int64)
    mask = INITIAL_SLOTS - 1
    m = 0
    for i in range(n):
        h = hashes[i]
        slot = h & mask
        while True:
            u = table[slot]
            if u < 0:
                table[slot] = m
                first[m] = i
                inverse[i] = m
                m += 1
                break
            r = first[u]
            same = hashes[r] == h
            j = 0
            while same and j < k:
                same = bits[j, r] == bits[j, i]
                j += 1
            if same:
                inverse[i] = u
                break
            slot = (slot + 1) & mask
        if 2 * m > table.shape[0]:
            table = np.full(4 * table.shape[0], -1, dtype=np.int64)
            mask = table.shape[0] - 1
            for u in range(m):
                table[free_slot(table, hashes[first[u]])] = u
    return first[:m], inverse


def bit_matrix(k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """An empty (k, n) int64 matrix for ``unique_bits`` and its float64 view, to fill field by
    field (``bits[j] = ints`` or ``floats[j] = values``) without a second copy."""
    bits = np.empty((k, n), dtype=np.int64)
    return bits, bits.view(np.float64)


def unique_rows(rows):
    """``unique_bits`` over the rows of a (Q, K) array, compared as float64 bit patterns."""
    rows = np.asarray(rows, dtype=np.float64)
    bits, floats = bit_matrix(rows.shape[1], rows.shape[0])
    floats[:] = rows.T
    return unique_bits(bits)


def unique_cols(cols):
    """``unique_bits`` over the rows formed by a sequence of equal-length int64 columns."""
    bits, _ = bit_matrix(len(cols), len(cols[0]) if len(cols) else 0)
    for j, c in enumerate(cols):
        bits[j] = c
    return unique_bits(bits)
