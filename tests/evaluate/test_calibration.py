"""A calibration profile's adjustments on the search's worker tables: the same figures as the
calibrated ``cli estimate`` of each row's configuration, the raw model when neutral, and the seed's
correction scales applied before the profile."""

from __future__ import annotations

import numpy as np
import pytest
from fake_db import FakeDatabase

from servopt.evaluate.calibration import adjust_agg, adjust_static
from servopt.evaluate.candidates import ModelSetup, Workload, build_layout_ops
from servopt.evaluate.single import calibrated, estimate_config
from servopt.evaluate.workers import agg_workers, decode_workers, prefill_workers
from servopt.hardware import load_system
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout
from servopt.simulate.adjust import Adjustments

SYSTEM = load_system("h200_sxm")
QUANT = QuantModes("fp8_block", "fp8_block", "fp8", "float16")
LAYOUTS = (Layout(1, 1, 1, 1, 1), Layout(2, 1, 1, 1, 1), Layout(4, 1, 1, 1, 1))
WORK = Workload(2000, 300)
# Not the shipped profile's values (those are refitted): any in-bounds set exercises the formula.
ADJ = Adjustments(request_overhead_ms=80.0, iteration_overhead_ms=1.5, prefill_scale=1.3, decode_scale=0.9)
MODE = {"prefill": "static_ctx", "decode": "static_gen", "agg": "agg"}
METRICS = (
    "ttft_ms",
    "tpot_ms",
    "request_latency_ms",
    "seq_per_s",
    "tokens_per_s_per_gpu",
    "tokens_per_s_per_user",
)


def _setup(model_name="QWEN3_32B", nextn=0):
    from servopt.models.registry import resolve_model

    return ModelSetup(resolve_model(model_name), "trtllm", QUANT, SYSTEM, "test", nextn)


def _table(role, adj, correction=1.0, setup=None):
    setup = setup or _setup()
    lops = build_layout_ops(setup, LAYOUTS, role=role)
    db = FakeDatabase()
    if role == "prefill":
        return prefill_workers(db, lops, WORK, [1, 2, 4], correction=correction, adjustments=adj)
    if role == "decode":
        return decode_workers(db, lops, WORK, [1, 8, 32], correction=correction, adjustments=adj)
    return agg_workers(db, lops, WORK, [(8, 2000), (32, 2000), (32, 4000)], adjustments=adj)


@pytest.mark.parametrize("role", ["prefill", "decode", "agg"])
def test_a_search_row_equals_the_calibrated_estimate_of_its_configuration(role):
    # Oracle: cli estimate --calibration of the row's layout, batch (and ctx tokens), through
    # estimate_config + calibrated, one configuration at a time.
    correction = {"prefill": 1.1, "decode": 1.08, "agg": 1.0}[role]
    table = _table(role, ADJ, correction)
    assert len(table.options) > 3
    for row in table.options.row:
        layout = LAYOUTS[int(table.candidates.layout[row])]
        est = estimate_config(
            FakeDatabase(),
            _setup(),
            layout,
            WORK,
            mode=MODE[role],
            batch_size=int(table.candidates.batch[row]),
            ctx_tokens=int(table.candidates.ctx_tokens[row]) if role == "agg" else None,
            latency_correction=correction,
            check_memory=False,
        )
        want = calibrated(est, ADJ)
        for key in METRICS:
            assert float(getattr(table.metrics, key)[row]) == pytest.approx(getattr(want, key), rel=1e-12), (
                key
            )
    # The search's own option columns carry the calibrated figures.
    opts = table.options
    if role != "decode":
        assert np.array_equal(opts.ttft_ms, table.metrics.ttft_ms[opts.row])
    if role != "prefill":
        assert np.array_equal(opts.tpot_ms, table.metrics.tpot_ms[opts.row])


@pytest.mark.parametrize("role", ["prefill", "decode", "agg"])
def test_neutral_adjustments_are_the_raw_model_bit_for_bit(role):
    raw, neutral = _table(role, None), _table(role, Adjustments())
    for key in METRICS:
        assert np.array_equal(getattr(raw.metrics, key), getattr(neutral.metrics, key)), key
    assert np.array_equal(raw.options.rate_per_s, neutral.options.rate_per_s)
    res = raw.metrics
    adjust = adjust_agg(res, Adjustments(), osl=300, tokens_per_step=1.0) if role == "agg" else (
        adjust_static(res, Adjustments(), mode=MODE[role], osl=300, tokens_per_step=1.0)
    )  # fmt: skip
    assert adjust is res


def test_correction_scales_multiply_the_raw_latencies_before_the_profile():
    # Documented order: latency * correction (the seed's advanced tuning), then the profile.
    raw_p, raw_d = _table("prefill", None), _table("decode", None)
    cal_p, cal_d = _table("prefill", ADJ, correction=1.1), _table("decode", ADJ, correction=1.08)
    a = ADJ
    assert cal_p.metrics.ttft_ms == pytest.approx(
        raw_p.metrics.ttft_ms * 1.1 * a.prefill_scale + a.iteration_overhead_ms + a.request_overhead_ms,
        rel=1e-12,
    )
    assert cal_d.metrics.tpot_ms == pytest.approx(
        raw_d.metrics.tpot_ms * 1.08 * a.decode_scale + a.iteration_overhead_ms, rel=1e-12
    )
    assert np.all(cal_d.metrics.ttft_ms == 0.0)  # a decode worker's TTFT is not its own
    # Rates follow the latency: the same requests in flight over a longer (or shorter) request.
    ratio = raw_d.metrics.request_latency_ms / cal_d.metrics.request_latency_ms
    assert cal_d.metrics.seq_per_s == pytest.approx(raw_d.metrics.seq_per_s * ratio, rel=1e-12)


def test_speculative_decoding_spreads_the_iteration_overhead_over_the_tokens_a_step_commits():
    setup = _setup("DEEPSEEK_V3", nextn=1)
    layouts = (Layout(8, 1, 1, 1, 8),)
    lops = build_layout_ops(setup, layouts, role="decode")
    raw = decode_workers(FakeDatabase(), lops, WORK, [8], correction=1.0, accepted_tokens=0.8)
    only_iter = Adjustments(iteration_overhead_ms=2.0)
    cal = decode_workers(
        FakeDatabase(), lops, WORK, [8], correction=1.0, accepted_tokens=0.8, adjustments=only_iter
    )
    assert cal.metrics.tpot_ms == pytest.approx(raw.metrics.tpot_ms + 2.0 / 1.8, rel=1e-12)
