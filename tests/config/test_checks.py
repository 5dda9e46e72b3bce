"""Cross-field checks: quant dtype tables and the exact replica-size check against brute force."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from servopt.config import checks
from servopt.config.schema import FMHA_QUANTS, GEMM_QUANTS, MOE_QUANTS
from servopt.perf_db import quant as perf_quant


def test_every_quant_mode_has_a_compute_dtype():
    assert set(checks.GEMM_COMPUTE_DTYPE) == set(GEMM_QUANTS)
    assert set(checks.MOE_COMPUTE_DTYPE) == set(MOE_QUANTS)
    assert set(checks.FMHA_COMPUTE_DTYPE) == set(FMHA_QUANTS)


def test_moe_compute_dtypes_are_the_perf_tables_activations():
    # w4a8_mxfp4_mxfp8 computes in fp8 (MXFP8 activations), w4a16_mxfp4 in bf16.
    for mode, dtype in checks.MOE_COMPUTE_DTYPE.items():
        if perf_quant.ALIASES.get(mode, mode) in perf_quant.MOE_QUANTS:
            assert perf_quant.resolve("moe_quant_mode", mode, perf_quant.MOE_QUANTS).compute == dtype, mode
    assert checks.MOE_COMPUTE_DTYPE["w4a8_mxfp4_mxfp8"] == "fp8"


def _brute(sizes, gps, gds, max_x, max_y) -> bool:
    return any(
        x * gp + y * gd == s
        for s in sizes
        for gp in gps
        for gd in gds
        for x in range(1, max_x + 1)
        for y in range(1, max_y + 1)
    )


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    sizes=st.lists(st.integers(1, 64), min_size=1, max_size=5),
    gps=st.lists(st.sampled_from([1, 2, 3, 4, 8, 16]), min_size=1, max_size=3, unique=True),
    gds=st.lists(st.sampled_from([1, 2, 4, 6, 8, 16]), min_size=1, max_size=3, unique=True),
    max_x=st.integers(1, 6),
    max_y=st.integers(1, 6),
)
def test_replica_size_check_equals_brute_force(sizes, gps, gds, max_x, max_y):
    assert checks._some_size_fits(sizes, sorted(gps), sorted(gds), max_x, max_y) == _brute(
        sizes, gps, gds, max_x, max_y
    )


def test_replica_size_check_gives_up_on_huge_instances():
    assert checks._some_size_fits([10**9 + 1], [2], [2], 10**9, 10**9) is None  # odd: never fits
