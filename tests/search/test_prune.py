"""Exact pruning against its definition (plain O(n^2) dominance)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from servopt.search.options import WorkerOptions
from servopt.search.prune import prune_agg, prune_decode, prune_prefill


def _table(rng, n, keys=False):
    return WorkerOptions.from_arrays(
        gpus=rng.choice([1, 2, 4], n),
        rate_per_s=rng.choice([1.0, 2.0, 3.0, 5.0], n),
        ttft_ms=rng.choice([100.0, 300.0, 900.0], n),
        tpot_ms=rng.choice([10.0, 20.0, 40.0], n),
        pair_key=rng.choice([0, 1, -1], n) if keys else None,
    )


def _naive_pareto(t, ok, key):
    """Rows not dominated within (gpus, key): no other with rate >= and TPOT <= (strict somewhere,
    or identical and earlier in (gpus, key, tpot, -rate, row) order)."""
    idx = [i for i in range(len(t)) if ok[i]]

    def order(i):
        return (t.gpus[i], key[i], t.tpot_ms[i], -t.rate_per_s[i], t.row[i])

    keep = []
    for i in idx:
        dominated = any(
            t.gpus[j] == t.gpus[i]
            and key[j] == key[i]
            and t.rate_per_s[j] >= t.rate_per_s[i]
            and t.tpot_ms[j] <= t.tpot_ms[i]
            and (t.rate_per_s[j] > t.rate_per_s[i] or t.tpot_ms[j] < t.tpot_ms[i] or order(j) < order(i))
            for j in idx
            if j != i
        )
        if not dominated:
            keep.append(i)
    return sorted(keep, key=order)


@pytest.mark.parametrize("seed", range(10))
def test_decode_and_agg_pareto_sets(seed):
    rng = np.random.default_rng(seed)
    t = _table(rng, 40, keys=True)
    got = prune_decode(t, max_gpus=2)
    assert got.tolist() == _naive_pareto(t, t.gpus <= 2, t.pair_key)
    got = prune_decode(t, max_gpus=4, tpot_ms=20.0)
    assert got.tolist() == _naive_pareto(t, t.tpot_ms <= 20.0, t.pair_key)
    # Agg ignores pair keys and filters TTFT.
    got = prune_agg(t, ttft_ms=300.0, max_gpus=4)
    assert got.tolist() == _naive_pareto(t, t.ttft_ms <= 300.0, np.zeros(len(t), dtype=np.int64))


@pytest.mark.parametrize("seed", range(10))
def test_prefill_keeps_fastest_feasible_per_group(seed):
    rng = np.random.default_rng(seed)
    t = _table(rng, 30, keys=True)
    got = prune_prefill(t, ttft_ms=500.0, ttft_factor=1.8, max_gpus=4)
    expect = []
    for g in sorted(set(t.gpus.tolist())):
        for k in sorted(set(t.pair_key.tolist())):
            cand = [
                i
                for i in range(len(t))
                if t.gpus[i] == g and t.pair_key[i] == k and 1.8 * t.ttft_ms[i] <= 500
            ]
            if cand:
                expect.append(min(cand, key=lambda i: (-t.rate_per_s[i], t.ttft_ms[i], t.row[i])))
    assert got.tolist() == expect


def test_empty_and_inclusive_sla():
    t = WorkerOptions.from_arrays(
        gpus=[1, 2], rate_per_s=[1.0, 2.0], ttft_ms=[100.0, 200.0], tpot_ms=[10.0, 20.0]
    )
    assert prune_agg(t, ttft_ms=99.0, max_gpus=8).size == 0
    assert prune_agg(t, ttft_ms=100.0, max_gpus=8).tolist() == [0]  # TTFT == target is allowed
    assert prune_prefill(t, ttft_ms=180.0, ttft_factor=1.8, max_gpus=8).tolist() == [0]
    assert prune_decode(t, max_gpus=1, tpot_ms=math.inf).tolist() == [0]
