"""Hash deduplication of query rows: search batches repeat the same points many times, so every
batched lookup first finds the distinct rows in one O(n) pass and scatters the answers back.

The n rows to deduplicate are the columns of one C-contiguous (k, n) int64 matrix (each of the k
row fields contiguous, so callers fill it with plain copies), whatever k is: a single compiled
signature serves every caller (a tuple of columns would compile once per tuple length). Rows of up
to three fields already in separate contiguous columns skip that copy (``unique_bits3``); both run
the one loop, ``_unique``.
"""

import numpy as np

from servopt_kernels.jit import kernel
from servopt_kernels.primitives import free_slot, mix3

# The open-addressing table starts at this many slots and grows x4 past half full.
INITIAL_SLOTS = 4096


@kernel(fastmath=False)
def _unique(c0, c1, c2, bits, k):
    """Rows of k fields: fields 0-2 are the 1-D columns c0, c1, c2 (a row of fewer fields repeats
    its last one), fields 3.. are rows 3.. of the (k', n) matrix ``bits``. See ``unique_bits``.

    One pass: each row's hash (the first three fields mixed at once, two more per further mix),
    then its probe; only the distinct rows' hashes are kept (compares and table growth need no
    other)."""
    n = c0.shape[0]
    first = np.empty(n, dtype=np.int64)
    inverse = np.empty(n, dtype=np.int64)
    rep_hash = np.empty(n, dtype=np.int64)
    zero = np.int64(0)
    table = np.full(INITIAL_SLOTS, -1, dtype=np.int64)
    mask = INITIAL_SLOTS - 1
    m = 0
    for i in range(n):
        a, b, c = c0[i], c1[i], c2[i]
        h = mix3(a, b, c)
        for j in range(3, k, 2):
            h = mix3(h, bits[j, i], bits[j + 1, i] if j + 1 < k else zero)
        slot = h & mask
        while True:
            u = table[slot]
            if u < 0:
                table[slot] = m
                first[m] = i
                rep_hash[m] = h
                inverse[i] = m
                m += 1
                break
            r = first[u]
            same = rep_hash[u] == h and c0[r] == a and c1[r] == b and c2[r] == c
            j = 3
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
                table[free_slot(table, rep_hash[u])] = u
    return first[:m], inverse


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
    if k == 0:
        # Rows without fields are all equal.
        first = np.zeros(min(n, 1), dtype=np.int64)
        return first, np.zeros(n, dtype=np.int64)
    return _unique(bits[0], bits[min(1, k - 1)], bits[min(2, k - 1)], bits, k)


@kernel(
    returns="UniTuple(int64[::1], 2)",
    args=("int64[::1]", "int64[::1]", "int64[::1]"),
    fastmath=False,
)
def unique_bits3(a, b, c):
    """``unique_bits`` of the rows (a[i], b[i], c[i]) of three equal-length columns, without first
    copying them into one matrix (a million GEMM queries: the copy costs as much as the dedup)."""
    return _unique(a, b, c, a.reshape(1, a.shape[0]), np.int64(3))


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
