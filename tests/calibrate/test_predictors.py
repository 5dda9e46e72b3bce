"""The mean-field predictor is ``cli estimate --mode agg`` at the clients of one dp rank."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from servopt.calibrate.predictors import PREDICTORS, Prediction, applies, database, mean_field, model_setup
from servopt.calibrate.public_csv import read_measurements
from servopt.calibrate.setups import Setup, to_setup
from servopt.evaluate.candidates import Workload
from servopt.evaluate.single import estimate_config
from servopt.models.parallel import Layout

SAMPLE = Path(__file__).parent / "data" / "public_sample.csv"


@pytest.fixture(scope="module")
def qwen_setup() -> Setup:
    record = next(r for r in read_measurements(SAMPLE) if r.row == 13)  # Qwen3-8B, vllm, H100, conc 4
    setup = to_setup(record)
    assert isinstance(setup, Setup)
    return setup


def _direct(setup: Setup, batch: int):
    db = database(setup)
    return estimate_config(
        db, model_setup(setup, db), setup.layout, Workload(setup.isl, setup.osl), mode="agg", batch_size=batch
    )


def test_registry_has_mean_field():
    assert PREDICTORS["mean_field"] is mean_field


def test_mean_field_is_the_agg_estimate(qwen_setup):
    pred = mean_field(qwen_setup)
    est = _direct(qwen_setup, 4)
    assert isinstance(pred, Prediction)
    assert pred.ttft_ms == est.ttft_ms and pred.tpot_ms == est.tpot_ms
    assert pred.output_tok_s_per_gpu == pytest.approx(est.tokens_per_s_per_gpu)
    assert all(math.isfinite(v) and v > 0 for v in pred[:3])


def test_replicas_do_not_change_per_gpu_figures(qwen_setup):
    two = dataclasses.replace(qwen_setup, replicas=2, concurrency=8)
    assert mean_field(two)[:3] == pytest.approx(mean_field(qwen_setup)[:3])


def test_dp_ranks_share_the_clients_and_rounding_is_scaled_back(qwen_setup):
    # 3 clients over a 2-rank pipeline: batch round(1.5) = 2 per rank (4 in flight), throughput x 3/4.
    setup = dataclasses.replace(qwen_setup, layout=Layout(1, 2, 1, 1, 1), concurrency=3)
    est = _direct(setup, 2)
    assert est.concurrency == 4
    pred = mean_field(setup)
    assert pred.tpot_ms == est.tpot_ms
    assert pred.output_tok_s_per_gpu == pytest.approx(est.tokens_per_s_per_gpu * 3 / 4)


def test_the_database_is_opened_once(qwen_setup):
    assert database(qwen_setup) is database(dataclasses.replace(qwen_setup, concurrency=8))


def test_simulate_calibrated_adds_the_default_profiles_overheads(qwen_setup):
    from servopt.calibrate.model import default_profile
    from servopt.calibrate.predictors import simulate, simulate_calibrated

    # GPUStack's vLLM: a harness the shipped profile has, so its own request overhead, not the scope's.
    source = qwen_setup.record.source_name
    adj, scope = default_profile().adjustments(qwen_setup.backend, qwen_setup.system, source)
    assert scope.endswith(f"{source} harness") and adj.request_overhead_ms > 0
    assert adj != default_profile().adjustments(qwen_setup.backend, qwen_setup.system)[0]
    raw, cal = simulate(qwen_setup), simulate_calibrated(qwen_setup)
    # Four clients on a small model: light load, the request overhead adds to TTFT almost exactly.
    assert cal.ttft_ms == pytest.approx(raw.ttft_ms + adj.request_overhead_ms, rel=0.1)
    assert cal.output_tok_s_per_gpu < raw.output_tok_s_per_gpu


def test_mean_field_applies_to_closed_loops_only(qwen_setup):
    assert applies("mean_field", qwen_setup) and applies("simulate", qwen_setup)
    burst = dataclasses.replace(qwen_setup, load="burst", num_requests=100)
    assert not applies("mean_field", burst) and applies("simulate", burst)


@pytest.fixture(scope="module")
def disagg_setup() -> Setup:
    # InferenceX Dynamo + SGLang xPyD row of the sample (with MTP there): without MTP, 16 clients.
    record = next(r for r in read_measurements(SAMPLE) if r.row == 7)
    setup = to_setup(dataclasses.replace(record, spec="none", spec_nextn=None, concurrency=16))
    assert isinstance(setup, Setup) and setup.mode == "disagg"
    return setup


def test_mean_field_of_disagg_is_the_searchs_xpyd_model(disagg_setup):
    s = disagg_setup
    db, work = database(s), Workload(s.isl, s.osl)
    model = model_setup(s, db)
    pre = estimate_config(
        db, model, s.prefill.layout, work, mode="static_ctx", batch_size=1, latency_correction=1.1
    )
    # 16 clients over 6 decode workers of one rank each: batch round(16 / 6) = 3.
    dec = estimate_config(
        db, model, s.decode.layout, work, mode="static_gen", batch_size=3, latency_correction=1.08
    )
    pred = mean_field(s)
    assert pred.ttft_ms == pytest.approx(1.8 * pre.ttft_ms)  # the search's disagg TTFT factor
    assert pred.tpot_ms == pytest.approx(dec.tpot_ms)
    rate = min(0.9 * pre.seq_per_s, 0.92 * 6 * dec.seq_per_s * (16 / 6) / dec.concurrency)
    assert pred.output_tok_s_per_gpu == pytest.approx(rate * s.osl / 52)


def test_simulators_price_disagg_setups(disagg_setup):
    for name in ("simulate", "simulate_calibrated"):
        pred = PREDICTORS[name](disagg_setup)
        assert all(math.isfinite(v) and v > 0 for v in pred[:3])
    # The profile's adjustments apply to both pools: calibrated TPOT differs from raw.
    assert (
        PREDICTORS["simulate"](disagg_setup).tpot_ms
        != PREDICTORS["simulate_calibrated"](disagg_setup).tpot_ms
    )
