"""Per-size rate bounds: never below the best replica of a size (else the cuts would be wrong)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.search.oracle_kernels import enumerate_replicas

from servopt.search.rate_bounds import agg_rate_bounds, disagg_rate_bounds


def _best_per_size(sizes, kw):
    """Plain enumeration: the best min(x pu, y du) per size, over every allowed replica."""
    allowed = np.zeros(int(sizes.max()) + 1, dtype=np.bool_)
    allowed[sizes] = True
    p_ok, d_ok = kw["p_ok"], kw["d_ok"]
    size, units, *_ = enumerate_replicas(
        kw["p_gpus"][p_ok],
        kw["p_units"][p_ok],
        kw["p_key"][p_ok],
        kw["d_gpus"][d_ok],
        kw["d_units"][d_ok],
        np.zeros(int(d_ok.sum()), dtype=np.int64),
        kw["d_key"][d_ok],
        kw["max_x"],
        kw["max_y"],
        allowed,
        kw["max_p_pool"],
        kw["max_d_pool"],
    )
    best = np.zeros(allowed.size, dtype=np.int64)
    np.maximum.at(best, size, units)
    return best[sizes]


@pytest.mark.parametrize("seed", range(40))
def test_disagg_bounds_are_valid_and_tight_enough(seed):
    rng = np.random.default_rng(seed)
    P, D = int(rng.integers(1, 5)), int(rng.integers(1, 12))
    kw = dict(
        p_gpus=rng.choice([1, 2, 4, 8], P),
        p_units=rng.integers(0, 5_000_000, P),
        p_key=rng.choice([0, 0, 1, -1], P),
        p_ok=rng.random(P) < 0.8,
        d_gpus=rng.choice([1, 2, 4, 8], D),
        d_units=rng.integers(0, 3_000_000, D),
        d_key=rng.choice([0, 0, 1, -1], D),
        d_ok=rng.random(D) < 0.8,
        max_x=int(rng.integers(1, 8)),
        max_y=int(rng.integers(1, 12)),
        max_p_pool=int(rng.choice([0, 0, 4, 8])),
        max_d_pool=int(rng.choice([0, 0, 6, 16])),
    )
    sizes = np.arange(1, 65, dtype=np.int64)
    bounds = disagg_rate_bounds(sizes, **kw)
    exact = _best_per_size(sizes, kw)
    assert np.all(bounds >= exact)
    # And never looser than both pools fractional: s times the best balanced rate per GPU.
    pu, du = kw["p_units"][:, None], kw["d_units"][None, :]
    pk, dk = kw["p_key"][:, None], kw["d_key"][None, :]
    pairs = ((pk == dk) | (pk < 0) | (dk < 0)) & kw["p_ok"][:, None] & kw["d_ok"][None, :]
    per_gpu = pu * du / np.maximum(kw["p_gpus"][:, None] * du + kw["d_gpus"][None, :] * pu, 1)
    balanced = sizes * (per_gpu[pairs].max() if pairs.any() else 0.0)
    assert np.all(bounds <= np.ceil(balanced) + 1)


def test_disagg_bound_by_hand():
    # Prefill 2 GPUs/10 units, decode 1 GPU/4 units. Size 9: prefill whole x=2 (4 GPUs, 20 units)
    # leaves 5 decode GPUs = 20 units -> 20; decode whole y=5 likewise -> 20 (exact: 2P5D).
    # Size 4: x=1 leaves 2 GPUs -> min(10, 8) = 8; y=2 leaves 2 GPUs -> min(8, 10) = 8 (1P2D).
    kw = dict(
        p_gpus=np.array([2]),
        p_units=np.array([10]),
        p_key=np.array([0]),
        p_ok=np.array([True]),
        d_gpus=np.array([1]),
        d_units=np.array([4]),
        d_key=np.array([0]),
        d_ok=np.array([True]),
        max_x=4,
        max_y=8,
    )
    assert disagg_rate_bounds(np.array([4, 9, 2]), **kw).tolist() == [8, 20, 0]
    # Size 5 with y <= 2: x=1 (2 GPUs) leaves 3 decode GPUs but only 2 workers -> min(10, 8) = 8.
    assert disagg_rate_bounds(np.array([5]), **(kw | dict(max_y=2))).tolist() == [8]
    # Keys that never pair: nothing.
    assert disagg_rate_bounds(np.array([9]), **(kw | dict(d_key=np.array([1])))).tolist() == [0]


def test_agg_bounds_are_the_best_worker_per_size():
    gpus, units = np.array([1, 2, 2, 4]), np.array([5, 7, 9, 30])
    ok = np.array([True, True, False, True])
    assert agg_rate_bounds(np.array([1, 2, 3, 4]), gpus=gpus, units=units, ok=ok).tolist() == [5, 7, 0, 30]
