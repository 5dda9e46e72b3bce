"""The rate-sizing answer's robustness: the answer's percentiles times its serving mode's factors."""

import math

import pytest

from servopt.sizing.question import sizing_robustness

BANDS = {"ttft_ms": {"trtllm": [-0.1, math.log(1.5)]}, "tpot_ms": {"every backend": [-0.1, math.log(1.2)]}}
DISAGG = {**BANDS, "ttft_ms": {"trtllm": [-0.5, math.log(4.0)]}}


def _doc(mode: str) -> dict:
    return {
        "backend": "trtllm",
        "targets": {"ttft_ms": 1000.0, "ttft_percentile": 90, "tpot_ms": 40.0, "tpot_percentile": 99},
        "best": {"mode": mode, "at_targets": {"ttft_p90_ms": 400.0, "tpot_p99_ms": 30.0}},
    }


@pytest.mark.parametrize(("mode", "ttft_factor"), [("agg", 1.5), ("disagg", 4.0)])
def test_an_answer_takes_its_modes_bands(mode, ttft_factor):
    rob = sizing_robustness(_doc(mode), BANDS, DISAGG)
    assert rob["factors"] == pytest.approx({"ttft_ms": ttft_factor, "tpot_ms": 1.2})
    assert rob["pessimistic"]["ttft_p90_ms"] == pytest.approx(400.0 * ttft_factor)
    assert rob["holds"] == (mode == "agg") and rob["binding"] == ("tpot" if mode == "agg" else "ttft")


def test_without_disagg_bands_a_disagg_answer_takes_the_agg_ones():
    assert sizing_robustness(_doc("disagg"), BANDS, None) == sizing_robustness(_doc("agg"), BANDS)
