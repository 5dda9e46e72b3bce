"""Hash deduplication against a plain-Python reference (first appearance, bit-pattern equality)."""

from __future__ import annotations

import numpy as np
import pytest

from servopt_kernels import dedup


def _naive(rows: list[tuple]) -> tuple[list[int], list[int]]:
    seen: dict[tuple, int] = {}
    first, inverse = [], []
    for i, row in enumerate(rows):
        if row not in seen:
            seen[row] = len(first)
            first.append(i)
        inverse.append(seen[row])
    return first, inverse


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("n", [0, 1, 5000])
def test_unique_bits_matches_naive(k, n):
    rng = np.random.default_rng(k * 100 + n)
    bits = rng.integers(-3, 3, size=(k, n)).astype(np.int64)
    first, inverse = dedup.unique_bits(bits)
    ref_first, ref_inverse = _naive([tuple(bits[:, i]) for i in range(n)])
    assert first.tolist() == ref_first
    assert inverse.tolist() == ref_inverse


@pytest.mark.parametrize("distinct", [1, 7, dedup.INITIAL_SLOTS, 5 * dedup.INITIAL_SLOTS])
def test_float_rows_in_first_occurrence_order(distinct):
    rng = np.random.default_rng(distinct)
    pool = rng.integers(1, 10_000, size=(distinct, 3)).astype(np.float64)
    rows = pool[rng.integers(0, distinct, size=3 * distinct + 5)]
    first, inverse = dedup.unique_rows(rows)
    ref_first, ref_inverse = _naive([tuple(r) for r in rows.view(np.int64)])
    assert first.tolist() == ref_first
    assert inverse.tolist() == ref_inverse
    np.testing.assert_array_equal(rows[first][inverse], rows)


def test_table_growth_keeps_every_row():
    # More distinct rows than the initial table holds: the table grows several times.
    n = 20 * dedup.INITIAL_SLOTS
    bits = np.stack([np.arange(n) % 7919, np.arange(n) // 3]).astype(np.int64)
    first, inverse = dedup.unique_bits(bits)
    ref_first, ref_inverse = _naive([tuple(bits[:, i]) for i in range(n)])
    assert first.tolist() == ref_first
    assert inverse.tolist() == ref_inverse


def test_rows_without_fields_are_one_row():
    first, inverse = dedup.unique_bits(np.empty((0, 4), dtype=np.int64))
    assert first.tolist() == [0]
    assert inverse.tolist() == [0, 0, 0, 0]


def test_floats_compare_by_bit_pattern():
    rows = np.array([[0.0, 1.0], [-0.0, 1.0], [np.nan, 2.0], [np.nan, 2.0], [0.0, 1.0]])
    first, inverse = dedup.unique_rows(rows)
    assert first.tolist() == [0, 1, 2]  # -0.0 differs from 0.0; one NaN payload equals itself
    assert inverse.tolist() == [0, 1, 2, 2, 0]


def test_columns_rows_and_matrix_agree():
    rng = np.random.default_rng(3)
    rows = rng.integers(0, 4, size=(300, 3)).astype(np.float64)
    by_rows = dedup.unique_rows(rows)
    by_cols = dedup.unique_cols([np.ascontiguousarray(rows[:, j]).view(np.int64) for j in range(3)])
    bits, floats = dedup.bit_matrix(3, 300)
    floats[:] = rows.T
    by_matrix = dedup.unique_bits(bits)
    for a, b in ((by_rows, by_cols), (by_rows, by_matrix)):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("distinct", [1, 7, dedup.INITIAL_SLOTS, 5 * dedup.INITIAL_SLOTS])
def test_three_columns_without_a_matrix_match_naive(distinct):
    rng = np.random.default_rng(distinct + 1)
    pool = rng.integers(1, 10_000, size=(distinct, 3)).astype(np.float64)
    rows = pool[rng.integers(0, distinct, size=3 * distinct + 5)]
    a, b, c = (np.ascontiguousarray(rows[:, j]).view(np.int64) for j in range(3))
    first, inverse = dedup.unique_bits3(a, b, c)
    ref_first, ref_inverse = _naive([tuple(r) for r in rows.view(np.int64)])
    assert first.tolist() == ref_first
    assert inverse.tolist() == ref_inverse
