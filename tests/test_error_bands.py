"""The one mapping from a profile's error bands onto predictions, against hand computations."""

import math

import numpy as np
import pytest

from servopt.error_bands import PessimisticFactors, band_for, bands_80, pessimistic_factors
from servopt.evaluate.calibration import at_pessimistic_end
from servopt.search.options import WorkerOptions

BANDS = {
    "ttft_ms": {"every backend": [-0.5, 0.8], "trtllm": [-0.2, 0.4]},
    "tpot_ms": {"every backend": [-0.1, 0.3]},
    "output_tok_s_per_gpu": {"trtllm": [-0.25, 0.1]},
}


def test_a_backend_takes_its_own_band_else_the_pooled_one():
    assert band_for(BANDS, "ttft_ms", "trtllm") == [-0.2, 0.4]
    assert band_for(BANDS, "ttft_ms", "sglang") == [-0.5, 0.8]
    assert band_for(BANDS, "output_tok_s_per_gpu", "sglang") is None


def test_bands_80_by_hand():
    got = bands_80(BANDS, "trtllm", {"ttft_ms": 100.0, "tpot_ms": 20.0, "output_tok_s_per_gpu": 0.0})
    # e^-0.2 = 0.818731, e^0.4 = 1.491825; e^-0.1 = 0.904837, e^0.3 = 1.349859; a zero has no band.
    assert got["ttft_ms"] == pytest.approx([81.8731, 149.1825], abs=1e-4)
    assert got["tpot_ms"] == pytest.approx([18.09675, 26.99718], abs=1e-4)
    assert "output_tok_s_per_gpu" not in got


def test_pessimistic_factors_are_the_high_latency_and_low_throughput_ends():
    f = pessimistic_factors(BANDS, "trtllm")
    assert f == pytest.approx(PessimisticFactors(math.exp(0.4), math.exp(0.3), math.exp(-0.25)))
    # sglang: pooled latency bands, no throughput band (factor 1); no bands at all: None.
    assert pessimistic_factors(BANDS, "sglang") == pytest.approx((math.exp(0.8), math.exp(0.3), 1.0))
    assert pessimistic_factors({}, "trtllm") is None


def test_every_candidate_moves_to_the_pessimistic_end():
    opts = WorkerOptions.from_arrays(
        gpus=[1, 2], rate_per_s=[4.0, 10.0], ttft_ms=[100.0, 50.0], tpot_ms=[20.0, 10.0], concurrency=[8, 16]
    )
    f = PessimisticFactors(2.0, 1.5, 0.5)
    p = at_pessimistic_end(opts, f)
    assert np.array_equal(p.ttft_ms, [200.0, 100.0]) and np.array_equal(p.tpot_ms, [30.0, 15.0])
    assert np.array_equal(p.rate_per_s, [2.0, 5.0])
    assert np.array_equal(p.concurrency, opts.concurrency) and np.array_equal(p.gpus, opts.gpus)
