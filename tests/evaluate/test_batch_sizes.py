from __future__ import annotations

import math

import pytest

from servopt.evaluate.batch_sizes import (
    AGG_BATCH_SIZES,
    DECODE_BATCH_SIZES,
    agg_points,
    ctx_tokens_list,
    decode_batch_sizes,
    prefill_batch_sizes,
)


def test_schedules():
    assert (
        DECODE_BATCH_SIZES[:3] == (1, 2, 3)
        and DECODE_BATCH_SIZES[-1] == 512
        and len(DECODE_BATCH_SIZES) == 96
    )
    assert decode_batch_sizes(64)[-1] == 64 and decode_batch_sizes(600)[-1] == 600
    assert AGG_BATCH_SIZES[-1] == 1024
    assert prefill_batch_sizes(4000) == [1, 2, 3, 4] and prefill_batch_sizes(20000) == [1]
    assert prefill_batch_sizes(1000, max_batch_size=2) == [1, 2]
    assert ctx_tokens_list(4000) == [4000, 8000]
    assert (
        ctx_tokens_list(1000)[:3] == [1000, 2000, 3000] and ctx_tokens_list(1000)[-1] == 8192 // 1000 * 1000
    )


def test_agg_points_guards():
    points = agg_points(4000, 1000)
    assert all(b - math.ceil(c / 4000) >= (1 if b > 1 else 0) for b, c in points)
    assert (1, 4000) in points and (1, 8000) not in points and (2, 8000) not in points and (3, 8000) in points


@pytest.mark.peer
def test_match_the_peer():
    sweep = pytest.importorskip("aiconfigurator.sdk.sweep")
    assert list(DECODE_BATCH_SIZES) == sweep._DEFAULT_DECODE_BATCH_SCHEDULE
    assert list(AGG_BATCH_SIZES) == sweep._DEFAULT_AGG_BATCH_SCHEDULE
    for isl in (128, 1000, 4000, 5000, 12000):
        for chunked in (False, True):
            assert ctx_tokens_list(isl, 512, chunked) == sweep._agg_ctx_tokens_list(isl, 512, chunked)
