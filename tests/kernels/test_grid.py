"""The grid resolver kernels against the plain-Python reference (tests/naive_grid.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from servopt.perf_db.grids import build_family
from servopt_kernels import dedup
from servopt_kernels import grid as gk
from servopt_kernels.primitives import PROV_EXACT, PROV_EXTRAPOLATED, PROV_MISSING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import naive_grid

MEM_BW = 4.8e12
FLOPS = 989e12


def _gen_attn_params(n_rows: int) -> np.ndarray:
    # n_kv = 8 heads, head_dim 128, no window, bf16 kv.
    p = np.zeros((n_rows, 10))
    p[:, 0], p[:, 1], p[:, 3], p[:, 4], p[:, 5] = 8, 128, 2.0, FLOPS, MEM_BW
    return p


def _sol_gen(c) -> float:
    n, b, s = c
    kv_len = s - 1.0
    ops = 2 * b * n * 128 * 2 * kv_len
    mem = b * (n * 128 * 2 + 2 * 8 * kv_len * 128 * 2.0 + n * 128 * 2)
    return max(ops / FLOPS * 1000, mem / MEM_BW * 1000)


def _ragged_table(rng, with_holes=True):
    """A staircase-truncated (heads, batch, seq) table with latency ~ SOL * noise."""
    heads = [8, 16, 32, 64]
    batches = [1, 2, 4, 8, 16, 32, 64]
    seqs = [16, 64, 256, 1024, 4096, 16384]
    rows = []
    for n in heads:
        for b in batches:
            for s in seqs:
                if b * s > 65536 and with_holes:  # corner truncation, like the measured tables
                    continue
                if with_holes and rng.random() < 0.05:  # sporadic holes
                    continue
                rows.append(((n, b, s), _sol_gen((n, b, s)) * rng.uniform(1.2, 3.0) + 0.002))
    return rows


def _family(rows):
    cols = {
        "k": np.zeros(len(rows), dtype=np.int64),
        "num_heads": np.array([r[0][0] for r in rows], dtype=np.int64),
        "batch_size": np.array([r[0][1] for r in rows], dtype=np.int64),
        "seq": np.array([r[0][2] for r in rows], dtype=np.int64),
        "latency": np.array([r[1] for r in rows]),
    }
    return build_family("t", cols, ("k",), ("num_heads", "batch_size", "seq"))


def _kernel(fam, queries, kind=gk.SOL_GEN_ATTN, taxis=-1, params=None, avg_axis=-1):
    q = np.ascontiguousarray(np.asarray(queries, dtype=np.float64))
    out = np.empty(len(q))
    prov = np.empty(len(q), dtype=np.int8)
    par = _gen_attn_params(len(q)) if params is None else params
    sid = np.zeros(len(q), dtype=np.int64)
    gk.grid_lookup(*fam.kernel_args(), fam.ndim, kind, taxis, avg_axis, sid, q, par, out, prov)
    return out, prov


@pytest.mark.parametrize("taxis", [-1, 2])
def test_random_queries_match_naive_reference(taxis):
    rng = np.random.default_rng(7)
    rows = _ragged_table(rng)
    fam = _family(rows)
    root = naive_grid.nest(rows)
    queries = []
    for _ in range(600):
        kind = rng.integers(4)
        if kind == 0:  # exact measured point
            queries.append(rows[rng.integers(len(rows))][0])
        elif kind == 1:  # inside, fractional
            queries.append((rng.uniform(8, 64), rng.uniform(1, 64), rng.uniform(16, 16384)))
        elif kind == 2:  # integer coordinates, some on the ragged frontier
            queries.append(
                (int(rng.choice([8, 12, 16, 48, 64])), int(rng.integers(1, 65)), int(rng.integers(16, 16385)))
            )
        else:  # outside the data on some axis
            queries.append((rng.uniform(1, 256), rng.uniform(0.5, 512), rng.uniform(2, 200000)))
    out, prov = _kernel(fam, queries, taxis=taxis)
    for q, v, p in zip(queries, out, prov, strict=True):
        ref, ref_p = naive_grid.resolve(root, q, _sol_gen, sqrt_axis=taxis)
        assert v == pytest.approx(ref, rel=1e-9), q
        assert p == ref_p, q
    assert set(prov.tolist()) == {0, 1, 2, 3}  # every provenance class was exercised


def test_exact_points_are_returned_verbatim():
    rng = np.random.default_rng(1)
    rows = _ragged_table(rng)
    out, prov = _kernel(_family(rows), [r[0] for r in rows])
    np.testing.assert_array_equal(out, [r[1] for r in rows])
    assert (prov == PROV_EXACT).all()


def test_hold_scales_with_the_roofline_past_the_data():
    # Latency exactly proportional to SOL: the utilisation hold must reproduce it far outside.
    rows = [
        ((n, b, s), 2.0 * _sol_gen((n, b, s))) for n in (8, 16) for b in (1, 2, 4) for s in (64, 256, 1024)
    ]
    fam = _family(rows)
    far = [(16, 64, 100000), (128, 4, 1024), (8, 1, 5000)]
    out, prov = _kernel(fam, far)
    np.testing.assert_allclose(out, [2.0 * _sol_gen(q) for q in far], rtol=1e-9)
    assert (prov == PROV_EXTRAPOLATED).all()


def test_one_dimensional_curve_and_missing_slice():
    x = np.array([128.0, 1024.0, 8192.0])
    cols = {
        "k": np.array([3, 3, 3]),
        "message_size": x.astype(np.int64),
        "latency": np.array([0.01, 0.02, 0.1]),
    }
    fam = build_family("c", cols, ("k",), ("message_size",))
    q = np.array([[128.0], [576.0], [16384.0], [64.0]])
    out = np.empty(4)
    prov = np.empty(4, dtype=np.int8)
    par = np.zeros((4, 10))
    gk.grid_lookup(
        *fam.kernel_args(), 1, gk.SOL_LINEAR, -1, -1, np.zeros(4, dtype=np.int64), q, par, out, prov
    )
    # Linear inside, boundary utilisation (latency ~ size) outside.
    np.testing.assert_allclose(out, [0.01, 0.01 + 0.01 * (576 - 128) / (1024 - 128), 0.2, 0.005])
    assert prov.tolist() == [0, 1, 3, 3]
    gk.grid_lookup(
        *fam.kernel_args(), 1, gk.SOL_LINEAR, -1, -1, np.full(4, -1, dtype=np.int64), q, par, out, prov
    )
    assert np.isnan(out).all() and (prov == PROV_MISSING).all()


def test_five_point_sequence_average():
    rng = np.random.default_rng(3)
    rows = _ragged_table(rng, with_holes=False)
    fam = _family(rows)
    root = naive_grid.nest(rows)
    for s in (100, 1000, 3333):
        out, _ = _kernel(fam, [(16, 4, s)], avg_axis=2)
        s_min = max(1, int(s * 0.9))
        s_max = max(s_min, int(s * 1.1))
        samples = [s_min + (s_max - s_min) * i // 4 for i in range(5)]
        ref = sum(naive_grid.resolve(root, (16, 4, si), _sol_gen)[0] for si in samples) / 5
        assert out[0] == pytest.approx(ref, rel=1e-12)


def test_unique_rows_matches_numpy():
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 5, size=(5000, 3)).astype(np.float64)
    first, inverse = dedup.unique_rows(rows)
    np.testing.assert_array_equal(rows[first][inverse], rows)
    assert len(first) == len(np.unique(rows, axis=0))
    assert (np.diff(first) > 0).all()  # representatives in order of first appearance


def test_moe_roofline_uses_integer_floor_divisions():
    # tokens=3, topk=8, experts=256, h=7168, inter=2048, tp=1, ep=8, gated, fp8.
    p = np.zeros((1, 10))
    p[0, :] = [8, 256, 7168, 2048, 1, 8, 3, 1.0, 1978e12, MEM_BW]
    out = np.empty(1)
    gk.sol_batch(gk.SOL_MOE, np.array([[3.0]]), p, out)
    t = 3 * 8
    ops = t * 7168 * 2048 * 3 * 2 // 8 // 1
    mem = t // 8 * 7168 * 2 + t // 8 * 2048 * 3 // 1 + 7168 * 2048 * 3 // 1 * min(256 // 8, t // 8)
    assert out[0] == pytest.approx(max(ops / 1978e12 * 1000, mem * 1.0 / MEM_BW * 1000), rel=1e-12)
    assert math.isfinite(out[0])


def test_two_axis_grids_match_naive_reference():
    rng = np.random.default_rng(5)
    rows = [
        ((float(a), float(b)), float(a) * rng.uniform(1, 2) + b * 1e-3)
        for a in (1, 2, 4, 8, 16)
        for b in (10, 100, 1000)
        if not (a >= 8 and b == 1000)
    ]
    cols = {
        "k": np.zeros(len(rows), dtype=np.int64),
        "x": np.array([r[0][0] for r in rows]),
        "y": np.array([r[0][1] for r in rows]),
        "latency": np.array([r[1] for r in rows]),
    }
    fam = build_family("t2", cols, ("k",), ("x", "y"))
    root = naive_grid.nest(rows)
    queries = [(rng.uniform(0.5, 40), rng.uniform(5, 3000)) for _ in range(300)]
    out, prov = _kernel(fam, queries, kind=gk.SOL_LINEAR, params=np.zeros((len(queries), 10)))
    for q, v, p in zip(queries, out, prov, strict=True):
        ref, ref_p = naive_grid.resolve(root, q, lambda c: c[0])
        assert v == pytest.approx(ref, rel=1e-9) and p == ref_p, q
