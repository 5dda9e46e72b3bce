"""Kernels of servopt_kernels.xpyd_enum against plain-Python restatements."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from tests.search.oracle_kernels import best_identical, best_packing, enumerate_replicas

from servopt_kernels.xpyd_enum import staircase


def _naive_staircase(units, level):
    kept = []
    for s in range(len(units)):
        if units[s] >= 0 and not any(units[t] >= units[s] and level[t] <= level[s] for t in kept):
            kept.append(s)
    return kept


@pytest.mark.parametrize("seed", range(20))
def test_staircase(seed):
    rng = np.random.default_rng(seed)
    units = rng.integers(-1, 6, 30)
    level = rng.integers(0, 4, 30)
    assert np.flatnonzero(staircase(units, level)).tolist() == _naive_staircase(units, level)


def _naive_best(size, units, level, cap, G, K):
    best = None
    rows = [r for r in range(len(size)) if level[r] <= cap]
    for k in range(1, K + 1):
        for combo in itertools.combinations(rows, k):
            for counts in itertools.product(*[range(1, G // size[r] + 1) for r in combo]):
                g = sum(n * size[r] for n, r in zip(counts, combo, strict=True))
                if g <= G:
                    v = sum(n * units[r] for n, r in zip(counts, combo, strict=True))
                    key = (v, -max(level[r] for r in combo), -g)
                    best = key if best is None or key > best else best
    return best


@pytest.mark.parametrize("seed", range(25))
def test_best_packing_and_identical(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    size, units, level = rng.integers(1, 6, n), rng.integers(1, 9, n), rng.integers(0, 3, n)
    G, cap = int(rng.integers(1, 14)), int(rng.integers(0, 3))
    for K in (1, 2, 3):
        got = best_packing(size, units, level, cap, G, K)
        expect = _naive_best(size, units, level, cap, G, K)
        assert (None if got[3] < 0 else (got[0], -got[1], -got[2])) == expect
        if K == 1:
            ident = best_identical(size, units, level, cap, G)
            assert ident[:3] == got[:3]


def test_enumerate_replicas_counts_every_allowed_shape():
    allowed = np.zeros(11, dtype=np.bool_)
    allowed[[3, 4, 6]] = True
    out = enumerate_replicas(
        np.array([1, 2]),
        np.array([5, 9]),
        np.array([0, 0]),
        np.array([1, 2]),
        np.array([2, 4]),
        np.array([0, 1]),
        np.array([0, -1]),
        2,
        3,
        allowed,
        0,
        4,
    )
    size, units, _level, i, x, j, y = out
    expect = [
        (pi, xx, dj, yy)
        for pi, xx, dj, yy in itertools.product(range(2), range(1, 3), range(2), range(1, 4))
        if allowed[xx * [1, 2][pi] + yy * [1, 2][dj]] and yy * [1, 2][dj] <= 4
    ]
    assert sorted(zip(i.tolist(), x.tolist(), j.tolist(), y.tolist(), strict=True)) == sorted(expect)
    assert np.all(units == np.minimum(x * np.array([5, 9])[i], y * np.array([2, 4])[j]))
    assert np.all(size == x * np.array([1, 2])[i] + y * np.array([1, 2])[j])
