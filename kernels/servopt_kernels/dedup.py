"""Hash deduplication of query rows: search batches repeat the same points many times, so every
batched lookup first finds the distinct rows in one O(n) pass and scatters the answers back.

The n rows to deduplicate are the columns of one C-contiguous (k, n) int64 matrix (each of the k
row fields contiguous, so callers fill it with plain copies), whatever k is: a single compiled
signature serves every caller (a tuple of columns would compile once per tuple length).
"""

import numpy as np

from servopt_kernels.jit import kernel

# The open-addressing table starts at this many slots and doubles past half full.
INITIAL_SLOTS = 1024


@kernel
def _fold(h, x):
    # splitmix64 finaliser of one value (float bit patterns have all-zero low bits), folded into h.
    z = np.uint64(x) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    h = (h ^ z) * np.uint64(0x100000001B3)
    return h ^ (h >> np.uint64(32))


@kernel(
    returns="UniTuple(int64[::1], 2)",
    args=("int64[:, ::1]",),
)
def unique_bits(bits):
    """Hash-deduplicate the n rows ``bits[:, i]`` of a C-contiguous (k, n) int64 matrix (float64
    data: pass its ``.view(np.int64)``; rows compare by bit pattern).

    Returns (first, inverse): ``first`` lists the first index of each distinct row in order of
    appearance, ``inverse[i]`` is the position of row i's representative in ``first``. The table
    starts small and doubles, so batches with few distinct rows stay in cache.
    """
    k, n = bits.shape
    first = np.empty(n, dtype=np.int64)
    inverse = np.empty(n, dtype=np.int64)
    if k == 0:
        # Rows without fields are all equal.
        first[:1] = 0
        inverse[:] = 0
        return first[: min(n, 1)], inverse
    # Row hashes field by field: streaming passes, no per-row loop over a runtime k.
    hashes = np.empty(n, dtype=np.uint64)
    for i in range(n):
        hashes[i] = _fold(np.uint64(0x9E3779B97F4A7C15), bits[0, i])
    for j in range(1, k):
        for i in range(n):
            hashes[i] = _fold(hashes[i], bits[j, i])
    size = INITIAL_SLOTS
    mask = np.uint64(size - 1)
    table = np.full(size, -1, dtype=np.int64)
    m = 0
    for i in range(n):
        h = hashes[i]
        slot = np.int64(h & mask)
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
            slot = (slot + 1) & (size - 1)
        if 2 * m > size:
            size *= 2
            mask = np.uint64(size - 1)
            table = np.full(size, -1, dtype=np.int64)
            for u in range(m):
                slot = np.int64(hashes[first[u]] & mask)
                while table[slot] >= 0:
                    slot = (slot + 1) & (size - 1)
                table[slot] = u
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
