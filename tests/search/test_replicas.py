"""Replica menus: the per-size best replica and the staircase, against plain enumeration."""

from __future__ import annotations

import numpy as np
import pytest

from servopt.search.conventions import DEFAULT_CONVENTIONS
from servopt.search.encode import TpotLevels, encode_rates
from servopt.search.options import ReplicaSpec, WorkerOptions
from servopt.search.prune import prune_agg, prune_decode, prune_prefill
from servopt.search.replicas import AggMenu, DisaggMenu


def _naive_disagg(prefill, decode, replica, G, cap, levels):
    """Every replica by loops; per size the best (units, -level); then drop dominated sizes."""
    c = DEFAULT_CONVENTIONS
    pu = encode_rates(prefill.rate_per_s, c.prefill_degradation)
    du = encode_rates(decode.rate_per_s, c.decode_degradation)
    dl = levels.rank(decode.tpot_ms)
    limit = replica.size_limit(G)
    best = {}
    for i in range(len(prefill)):
        for j in range(len(decode)):
            if dl[j] > cap:
                continue
            pk, dk = prefill.pair_key[i], decode.pair_key[j]
            if pk != dk and pk >= 0 and dk >= 0:
                continue
            for x in range(1, replica.max_prefill_worker + 1):
                for y in range(1, replica.max_decode_worker + 1):
                    pp, dp = x * prefill.gpus[i], y * decode.gpus[j]
                    s = int(pp + dp)
                    if s > limit or (replica.num_gpu_per_replica and s not in replica.num_gpu_per_replica):
                        continue
                    if (replica.max_prefill_gpus and pp > replica.max_prefill_gpus) or (
                        replica.max_decode_gpus and dp > replica.max_decode_gpus
                    ):
                        continue
                    u = min(x * pu[i], y * du[j])
                    if u > 0 and (s not in best or (u, -dl[j]) > best[s]):
                        best[s] = (u, -dl[j])
    kept = []
    for s in sorted(best):
        u, neg_l = best[s]
        if not any(best[t][0] >= u and -best[t][1] <= -neg_l for t in kept):
            kept.append(s)
    return [(s, best[s][0], -best[s][1]) for s in kept]


@pytest.mark.parametrize("seed", range(15))
def test_disagg_menu_equals_enumeration(seed):
    rng = np.random.default_rng(seed)
    prefill = WorkerOptions.from_arrays(
        gpus=rng.choice([1, 2, 4], 5),
        rate_per_s=rng.uniform(0.5, 3, 5),
        ttft_ms=rng.uniform(100, 300, 5),
        pair_key=rng.choice([0, 1, -1], 5),
    )
    decode = WorkerOptions.from_arrays(
        gpus=rng.choice([1, 2, 4, 8], 12),
        rate_per_s=rng.uniform(0.2, 4, 12),
        tpot_ms=rng.choice([10.0, 20, 30], 12),
        pair_key=rng.choice([0, 1, -1], 12),
    )
    replica = ReplicaSpec(
        num_gpu_per_replica=tuple(sorted(rng.choice(np.arange(2, 30), 6, replace=False).tolist()))
        if seed % 2
        else None,
        max_gpu_per_replica=int(rng.choice([0, 16])),
        max_prefill_worker=3,
        max_decode_worker=4,
        max_prefill_gpus=int(rng.choice([0, 4])),
        max_decode_gpus=int(rng.choice([0, 8])),
    )
    G = 24
    limit = replica.size_limit(G)
    p_keep = prune_prefill(prefill, ttft_ms=1e9, ttft_factor=1.8, max_gpus=limit)
    d_keep = prune_decode(decode, max_gpus=limit)
    levels = TpotLevels(decode.tpot_ms[d_keep])
    menu = DisaggMenu(
        prefill.take(p_keep),
        decode.take(d_keep),
        replica=replica,
        total_gpus=G,
        levels=levels,
        conventions=DEFAULT_CONVENTIONS,
    )
    full_levels = TpotLevels(decode.tpot_ms)
    for cap in range(len(levels)):
        rows = menu.rows(cap)
        got = list(zip(rows.size.tolist(), rows.units.tolist(), rows.level.tolist(), strict=True))
        raw_cap = full_levels.cap(levels.ms(cap))
        expect = _naive_disagg(prefill, decode, replica, G, raw_cap, full_levels)
        # Levels differ only in numbering (pruned vs raw pools); compare them as TPOT values.
        assert [(s, u, levels.ms(lv)) for s, u, lv in got] == [
            (s, u, full_levels.ms(lv)) for s, u, lv in expect
        ]
        # Composition columns describe the row.
        p, d = menu.prefill, menu.decode
        assert np.all(rows.x * p.gpus[rows.prefill] + rows.y * d.gpus[rows.decode] == rows.size)


def test_agg_menu_best_per_size_and_staircase():
    agg = WorkerOptions.from_arrays(
        gpus=[1, 1, 2, 2, 4],
        rate_per_s=[1.0, 2.0, 1.5, 3.0, 2.5],
        ttft_ms=[1, 1, 1, 1, 1],
        tpot_ms=[10.0, 20.0, 10.0, 30.0, 5.0],
    )
    keep = prune_agg(agg, ttft_ms=10, max_gpus=8)
    levels = TpotLevels(agg.tpot_ms[keep])
    menu = AggMenu(agg.take(keep), total_gpus=8, levels=levels)
    rows = menu.rows(len(levels) - 1)  # no cap: 1 GPU rate 2 (tpot 20), 2 GPUs rate 3 (30), 4 GPUs 2.5 (5)
    assert rows.size.tolist() == [1, 2, 4]
    rows = menu.rows(levels.cap(10.0))  # 1 GPU rate 1, 2 GPUs 1.5, 4 GPUs 2.5
    assert rows.size.tolist() == [1, 2, 4] and rows.units.tolist() == [1_000_000, 1_500_000, 2_500_000]
    rows = menu.rows(levels.cap(5.0))
    assert rows.size.tolist() == [4]
    assert len(AggMenu(agg.take(keep), total_gpus=3, levels=levels).rows(levels.cap(5.0))) == 0


def test_identical_candidates_keep_every_possible_winner():
    from servopt.search.replicas import identical_candidates

    from .conftest import make_rows

    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(1, 12))
        rows = make_rows(
            np.sort(rng.choice(np.arange(1, 20), n, replace=False)),
            rng.integers(1, 30, n),
            rng.integers(0, 4, n),
        )
        G = int(rng.integers(20, 60))
        keep = identical_candidates(rows, G)
        key = [
            ((G // s) * u, -lv, -(G // s) * s)
            for s, u, lv in zip(rows.size, rows.units, rows.level, strict=True)
        ]
        assert max(key) == max(k for k, kept in zip(key, keep, strict=True) if kept)
        # Kept rows are mutually non-dominated.
        kept = [k for k, kk in zip(key, keep, strict=True) if kk]
        assert not any(a != b and all(x >= y for x, y in zip(a, b, strict=True)) for a in kept for b in kept)
