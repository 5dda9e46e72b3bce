"""Fidelity against the peer: servopt's lookups vs aiconfigurator-core's own op queries, h200_sxm.

For every op family and backend, >= 2,000 seeded random points: exact measured points, points inside
the grids, points just past the ragged (staircase) frontier and points outside the data. Each must
agree with the peer within 1% for >= 99% of points (both unanswerable counts as agreement).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiconfigurator_core", reason="the peer (aiconfigurator-core) is the oracle")

# Loaded by path under its own name: tests/evaluate has a different peer_oracle module.
_spec = importlib.util.spec_from_file_location(
    "perf_db_peer_oracle", Path(__file__).with_name("peer_oracle.py")
)
_oracle = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_oracle)
PeerOracle = _oracle.PeerOracle

from servopt.perf_db.database import open_database  # noqa: E402

pytestmark = pytest.mark.peer
SYSTEM = "h200_sxm"
POINTS = 2000
REL_TOL = 0.01
MIN_AGREEMENT = 0.99


@pytest.fixture(scope="module", params=["trtllm", "vllm", "sglang"])
def pair(request, tmp_path_factory):
    db = open_database(SYSTEM, request.param, cache_dir=str(tmp_path_factory.mktemp("cache")))
    return db, PeerOracle(SYSTEM, request.param, db.version)


def _agreement(mine, peer) -> tuple[float, float]:
    mine, peer = np.asarray(mine, float), np.asarray(peer, float)
    both_nan = np.isnan(mine) & np.isnan(peer)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(mine - peer) / np.maximum(np.abs(peer), 1e-300)
    err = np.where(both_nan, 0.0, np.where(np.isfinite(err), err, np.inf))
    return float(np.mean(err <= REL_TOL)), float(err.max())


def _check(name, mine, peer):
    frac, worst = _agreement(mine, peer)
    print(f"{name}: {len(peer)} points, {frac:.4%} within 1%, max rel err {worst:.2e}")
    assert frac >= MIN_AGREEMENT, f"{name}: only {frac:.2%} within 1% (max err {worst:.3g})"


def _draw_coords(rng, fam, sid, count):
    """Integer query coordinates around one slice: exact, inside, past the frontier, outside."""
    lo, hi = fam.leaf_off[sid], fam.leaf_off[sid + 1]
    leaves = fam.leaf_coord[lo:hi, : fam.ndim]
    mins, maxs = leaves.min(axis=0), leaves.max(axis=0)
    out = []
    for _ in range(count):
        kind = rng.integers(4)
        if kind == 0:
            c = leaves[rng.integers(len(leaves))].copy()
        elif kind == 1:
            c = np.exp(rng.uniform(np.log(np.maximum(mins, 1)), np.log(np.maximum(maxs, 1)) + 1e-9))
        elif kind == 2:
            c = leaves[rng.integers(len(leaves))].copy()
            a = rng.integers(fam.ndim)
            c[a] = c[a] * rng.uniform(1.05, 3.0)
        else:
            c = np.exp(rng.uniform(np.log(np.maximum(mins, 1)), np.log(np.maximum(maxs, 1)) + 1e-9))
            a = rng.integers(fam.ndim)
            c[a] = (
                maxs[a] * rng.uniform(1.2, 4.0)
                if rng.random() < 0.7
                else max(1.0, mins[a] / rng.uniform(1.5, 4))
            )
        out.append(np.maximum(np.round(c), 1).astype(np.int64))
    return out


def _slices(fam):
    return [fam.key(i) for i in range(fam.num_slices)]


def _heads(n, nkv_lookup):
    """(heads, kv heads) of a slice point: kv lookup 0 is MHA (kv heads = heads); a GQA slice's
    point at heads == kv heads would key as MHA, so it is taken at twice the heads."""
    nkv = n if nkv_lookup == 0 else nkv_lookup
    if nkv_lookup and n == nkv:
        n = nkv * 2
    return n, nkv


def _prefix(rng, s):
    """A cached prefix in a quarter of the context rows."""
    return int(rng.integers(0, s)) if rng.random() < 0.25 and s > 1 else 0


def test_context_attention(pair):
    db, peer = pair
    rng = np.random.default_rng(11)
    fam = db.families["context_attention"]
    rows = []
    for _ in range(POINTS // 4):
        sid = int(rng.integers(fam.num_slices))
        fm, kv, nkv_l, hd, w = fam.key(sid)
        for n, s, b in _draw_coords(rng, fam, sid, 4):
            n, nkv = _heads(n, nkv_l)
            prefix = _prefix(rng, s)
            rows.append((fm, kv, int(b), int(s - prefix), prefix, int(n), int(nkv), hd, w))
    got = [db.context_attention_ms(*r, provenance=True, missing="nan") for r in rows]
    mine = np.ravel([g[0] for g in got])
    _check(f"{db.backend} context_attention", mine, [peer.context_attention(*r) for r in rows])
    # The draw reaches every resolution path: exact, interpolated, ragged edge, past the data.
    assert {0, 1, 2, 3} <= {int(np.ravel(g[1])[0]) for g in got}


def test_generation_attention(pair):
    db, peer = pair
    rng = np.random.default_rng(12)
    fam = db.families["generation_attention"]
    rows = []
    for _ in range(POINTS // 4):
        sid = int(rng.integers(fam.num_slices))
        kv, nkv_l, hd, w = fam.key(sid)
        for n, b, s in _draw_coords(rng, fam, sid, 4):
            n, nkv = _heads(n, nkv_l)
            rows.append((kv, int(b), int(max(s, 2)), int(n), int(nkv), hd, w))
    # One batched call per kv dtype: the slice-key arguments (kv heads, head_dim, window) as arrays.
    mine = np.empty(len(rows))
    seen: set[int] = set()
    for kv in {r[0] for r in rows}:
        idx = [i for i, r in enumerate(rows) if r[0] == kv]
        cols = [np.array([rows[i][j] for i in idx]) for j in range(1, 7)]
        mine[idx], prov = db.generation_attention_ms(kv, *cols, provenance=True, missing="nan")
        seen.update(np.unique(prov).tolist())
    _check(f"{db.backend} generation_attention", mine, [peer.generation_attention(*r) for r in rows])
    assert {1, 3} <= seen


def _mla_rows(rng, fam, make):
    rows = []
    for _ in range(POINTS // 4):
        sid = int(rng.integers(fam.num_slices))
        for c in _draw_coords(rng, fam, sid, 4):
            rows.append(make(fam.key(sid), *(int(x) for x in c)))
    return rows


def test_mla_families(pair):
    db, peer = pair
    rng = np.random.default_rng(13)

    def ctx(key, n, s, b):
        p = _prefix(rng, s)
        return (key[0], key[1], b, s - p, p, n)

    def mod_ctx(key, n, s, b):
        p = _prefix(rng, s)
        return ("context", key[2], key[1], b, s - p, p, n, key[0])

    # (family, its row from a slice key and grid coordinates, our query, the peer's)
    families = (
        ("context_mla", ctx, db.context_mla_ms, peer.context_mla),
        (
            "generation_mla",
            lambda key, n, b, s: (key[0], b, max(s, 2), n),
            db.generation_mla_ms,
            peer.generation_mla,
        ),
        ("mla_context_module", mod_ctx, db.mla_module_ms, peer.mla_module),
        (
            "mla_generation_module",
            lambda key, n, b, s: ("generation", key[1], key[0], b, max(s, 2), 0, n),
            db.mla_module_ms,
            peer.mla_module,
        ),
    )
    checked = 0
    for family, make_row, ours, theirs in families:
        if not db.families[family].num_slices:
            continue
        rows = _mla_rows(rng, db.families[family], make_row)
        _check(f"{db.backend} {family}", [ours(*r, missing="nan") for r in rows], [theirs(*r) for r in rows])
        checked += 1
    assert checked >= 2


def test_mla_bmm(pair):
    db, peer = pair
    rng = np.random.default_rng(14)
    rows = [
        (
            str(rng.choice(["pre", "post"])),
            str(rng.choice(["bfloat16", "fp8"])),
            int(np.exp(rng.uniform(0, np.log(60000)))),
            int(rng.choice([1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128])),
        )
        for _ in range(POINTS)
    ]
    _check(
        f"{db.backend} mla_bmm",
        [db.mla_bmm_ms(*r, missing="nan") for r in rows],
        [peer.mla_bmm(*r) for r in rows],
    )


def test_moe(pair):
    db, peer = pair
    rng = np.random.default_rng(15)
    fam = db.families["moe"]
    rows = []
    for _ in range(POINTS // 4):
        sid = int(rng.integers(fam.num_slices))
        _, q, d, k, e, h, i, tp, ep = fam.key(sid)
        for (t,) in _draw_coords(rng, fam, sid, 4):
            rows.append((q, d, k, e, h, i, tp, ep, int(t)))
    mine = np.ravel([db.moe_ms(*r, missing="nan") for r in rows])
    _check(f"{db.backend} moe", mine, [peer.moe(*r) for r in rows])


def test_collectives(pair):
    db, peer = pair
    rng = np.random.default_rng(16)
    gpus = [1, 2, 4, 8, 16, 32, 64]
    sizes = np.exp(rng.uniform(0, np.log(2**31), POINTS)).astype(np.int64)
    tp = rng.choice(gpus, POINTS)
    mine = db.custom_allreduce_ms(tp, sizes, missing="nan")
    _check(
        f"{db.backend} custom_allreduce",
        mine,
        [peer.custom_allreduce(int(t), int(s)) for t, s in zip(tp, sizes, strict=True)],
    )
    ops = rng.choice(["all_gather", "all_reduce", "reduce_scatter", "alltoall"], POINTS)
    dts = rng.choice(["half", "int8"], POINTS)
    mine = np.concatenate(
        [
            db.nccl_ms(str(o), str(d), [g], [s], missing="nan")
            for o, d, g, s in zip(ops, dts, tp, sizes, strict=True)
        ]
    )
    _check(
        f"{db.backend} nccl",
        mine,
        [peer.nccl(str(o), str(d), int(g), int(s)) for o, d, g, s in zip(ops, dts, tp, sizes, strict=True)],
    )
