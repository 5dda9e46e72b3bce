"""The kernels' shared building blocks against plain-Python references: binary search (numpy's
searchsorted), the nearest-point list (a full sort) and the tapered inverse-distance blend (its
formula written out)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servopt_kernels import primitives as pk


@pytest.mark.parametrize("seed", range(5))
def test_search_left_matches_searchsorted_on_every_subrange(seed):
    rng = np.random.default_rng(seed)
    axis = np.sort(rng.choice([1.0, 2.0, 2.0, 3.5, 8.0, 8.0, 100.0], 12))
    for lo in range(len(axis)):
        for hi in range(lo, len(axis) + 1):
            for x in (0.5, 1.0, 2.0, 3.0, 8.0, 100.0, 1e9, np.nan):
                want = lo + int(np.searchsorted(axis[lo:hi], x))
                assert pk.search_left(axis, np.int64(lo), np.int64(hi), x) == want, (lo, hi, x)


def _naive_hold(points: list[tuple[float, float]]) -> float:
    """Blend of the 4 nearest of (distance, utilisation) points; the 5th nearest is the radius."""
    if not points:
        return math.nan
    near = sorted(points, key=lambda p: p[0])[: pk.HOLD_NEIGHBOURS + 1]  # stable: earlier wins ties
    picked = near[: pk.HOLD_NEIGHBOURS]
    if len(near) > pk.HOLD_NEIGHBOURS:
        radius = near[-1][0]
        weights = [(max(radius - d, 0.0) / (radius * d + pk.IDW_EPS)) ** 2 for d, _ in picked]
    else:
        weights = [1.0 / (d * d + pk.IDW_EPS) for d, _ in picked]
    if sum(weights) <= 0.0:
        weights = [1.0] * len(picked)
    return sum(w * u for w, (_, u) in zip(weights, picked, strict=True)) / sum(weights)


@pytest.mark.parametrize("count", [0, 1, 3, 4, 5, 6, 40])
@pytest.mark.parametrize("seed", range(4))
def test_keep_nearest_and_idw_blend_match_a_sort(count, seed):
    rng = np.random.default_rng(seed * 100 + count)
    # Coarse distances so that ties (and points on the support radius) occur.
    points = [(float(rng.integers(0, 6)) / 2.0, float(rng.uniform(0.1, 1.0))) for _ in range(count)]
    best_d = np.full(pk.HOLD_NEIGHBOURS + 1, np.inf)
    best_u = np.zeros(pk.HOLD_NEIGHBOURS + 1)
    held = 0
    for d, u in points:
        if held == len(best_d) and d >= best_d[-1]:
            continue  # the callers' skip: no nearer than a full list's last
        held = pk.keep_nearest(best_d, best_u, np.int64(held), d, u)
    assert held == min(count, pk.HOLD_NEIGHBOURS + 1)
    want = sorted(points, key=lambda p: p[0])[:held]
    assert list(zip(best_d[:held], best_u[:held], strict=True)) == want
    got = pk.idw_blend(best_d, best_u, np.int64(held))
    expected = _naive_hold(points)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12)


def test_mix3_spreads_float_bit_patterns_over_the_low_bits():
    """Float keys have all-zero low bits; the slots they hash to must still spread."""
    keys = np.arange(1.0, 4097.0).view(np.int64)
    slots = {int(pk.mix3(k, np.int64(0), np.int64(0))) & 1023 for k in keys}
    assert len(slots) > 900
