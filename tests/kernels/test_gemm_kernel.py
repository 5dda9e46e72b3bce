"""servopt_kernels.gemm internals: memo reuse across many shapes, utilization transfer, roofline."""

from __future__ import annotations

import numpy as np

from servopt_kernels.gemm import (
    MEMO_SLOTS,
    GemmSites,
    gemm_latency_ms,
    gemm_roofline_batch_ms,
)
from servopt_kernels.primitives import PROV_INVALID

FLOPS, BW, MU = 1.978e15, 4.8e12, 1.0


def _lattice_sites() -> GemmSites:
    """Sites on a full 8 x 8 pow2 lattice, each measured at m = 1, 4, 16, 64, 256 at 2x roofline."""
    axis = 2.0 ** np.arange(6, 14)
    m_axis = np.array([1.0, 4.0, 16.0, 64.0, 256.0])
    n = np.repeat(axis, len(axis))
    k = np.tile(axis, len(axis))
    curve_m = np.tile(m_axis, len(n))
    lat = np.empty(len(curve_m))
    gemm_roofline_batch_ms(curve_m, np.repeat(n, 5), np.repeat(k, 5), FLOPS, BW, MU, lat)
    return GemmSites(
        n,
        k,
        np.log2(n),
        np.log2(k),
        np.arange(len(n), dtype=np.int64),
        np.zeros(len(n), dtype=np.int64),
        np.arange(0, len(curve_m) + 1, 5, dtype=np.int64),
        curve_m,
        2.0 * lat,
        np.array([1.0, 256.0]),
    )


def _run(sites, m, n, k):
    out = np.empty(len(m))
    prov = np.empty(len(m), dtype=np.int8)
    gemm_latency_ms(m, n, k, sites, FLOPS, BW, MU, out, prov)
    return out, prov


def test_more_shapes_than_the_memo_holds_give_the_same_answers():
    sites = _lattice_sites()
    rng = np.random.default_rng(0)
    size = 3 * MEMO_SLOTS
    m = rng.choice([1.0, 3.0, 50.0, 256.0, 1000.0], size)
    n = np.round(np.exp(rng.uniform(np.log(64), np.log(8192), size)))
    k = np.round(np.exp(rng.uniform(np.log(64), np.log(8192), size)))
    batch, batch_prov = _run(sites, m, n, k)
    for i in range(size):
        one, one_prov = _run(sites, m[i : i + 1], n[i : i + 1], k[i : i + 1])
        assert batch[i] == one[0] and batch_prov[i] == one_prov[0]


def test_utilization_transfer_is_exact_when_every_site_runs_at_the_same_utilization():
    # Every site at exactly half the roofline: any transfer or hold must give 2x the query roofline.
    sites = _lattice_sites()
    m = np.array([2.0, 100.0, 5000.0, 37.0])
    n = np.array([100.0, 3000.0, 700.0, 20000.0])
    k = np.array([5000.0, 90.0, 700.0, 1000.0])
    out, prov = _run(sites, m, n, k)
    sol = np.empty(4)
    gemm_roofline_batch_ms(m, n, k, FLOPS, BW, MU, sol)
    finite = np.isfinite(out)
    assert finite[:3].all()
    np.testing.assert_allclose(out[finite], 2.0 * sol[finite], rtol=1e-12)
    assert set(prov[:3]) <= {2, 3}


def test_invalid_coordinates_are_flagged_not_answered():
    out, prov = _run(
        _lattice_sites(), np.array([0.0, np.nan, 4.0]), np.array([64.0, 64.0, -1.0]), np.full(3, 64.0)
    )
    assert np.isnan(out).all() and (prov == PROV_INVALID).all()


def test_roofline_is_the_max_of_math_and_memory_time():
    m, n, k = np.array([1.0, 8192.0]), np.array([4096.0, 4096.0]), np.array([4096.0, 4096.0])
    out = np.empty(2)
    gemm_roofline_batch_ms(m, n, k, FLOPS, BW, MU, out)
    mem = MU * (m * n + m * k + n * k) / BW * 1000
    math_ms = 2 * m * n * k / FLOPS * 1000
    np.testing.assert_allclose(out, np.maximum(mem, math_ms), rtol=1e-14)
    assert mem[0] > math_ms[0] and math_ms[1] > mem[1]  # one memory-bound, one compute-bound
