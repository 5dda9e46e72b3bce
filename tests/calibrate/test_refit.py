"""``servopt calibrate``'s fit end to end on real measurements: deterministic, reproduces the shipped
default profile, and its cross-validation predicts held-out records only."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from servopt.calibrate import refit
from servopt.calibrate.fit import Sample, grid_median_ms
from servopt.calibrate.model import HarnessFit, Profile, Scope, ScopeFit, default_profile, profile_from_text
from servopt.calibrate.public_csv import SHIPPED, shipped_measurements
from servopt.calibrate.refit import calibrate, read_inputs


def _comparable(profile) -> dict:
    doc = profile.to_dict()
    doc["provenance"] = {k: v for k, v in doc["provenance"].items() if k != "created"}
    return doc


@pytest.fixture(scope="module")
def gpustack():
    """GPUStack's closed-loop H100 rows (Qwen3-8B, gpt-oss-120b: quick to simulate), every other one
    relabelled as a second source (a scope needs two), fitted twice."""
    rows = [
        r
        for r in shipped_measurements()
        if r.source_name.startswith("GPUStack") and r.gpu.startswith("H100") and r.load == "closed_loop"
    ]
    records = [dataclasses.replace(r, source="second lab") if k % 2 else r for k, r in enumerate(rows)]
    inputs = [("gpustack.csv", b"subset")]
    first = calibrate(records, inputs, folds=("source", "layout"))
    return first, calibrate(records, inputs, folds=("source",))


def test_subset_fit_is_deterministic_and_round_trips(gpustack):
    a, b = gpustack
    assert a.profile.fits == b.profile.fits and a.profile.fits
    scopes = {f.scope.label for f in a.profile.fits}
    assert "every backend" in scopes
    again = profile_from_text(a.profile.to_yaml(), "x")
    assert again.fits == a.profile.fits and again.bands == a.profile.bands
    # A harness not seen takes the median of the scope's harnesses' own request overheads.
    for f in a.profile.fits:
        if f.harnesses:
            assert f.values["request_overhead_ms"] == grid_median_ms(
                [h.request_overhead_ms for h in f.harnesses]
            )
    assert any(f.harnesses for f in a.profile.fits)


def test_leave_one_source_out_of_two_has_nothing_to_fit_on(gpustack):
    a, _ = gpustack
    table = a.tables["leave one source out (held out of the fit)"]
    # Two sources: each fold trains on one, which fits no scope, so calibrated = neutral = raw.
    overall = table[-1]
    assert overall["TPOT cal med"] == pytest.approx(overall["TPOT raw med"])
    insample = a.tables["in-sample (the profile's own records)"][-1]
    assert insample["TPOT cal med"] < insample["TPOT raw med"]


class _Fixed:
    """A replay whose prediction is fixed, plus the request overhead it is given (TTFT)."""

    def __init__(self, pred: np.ndarray):
        self.pred = pred

    def run(self, adj):
        ttft, tpot, tput = self.pred
        return SimpleNamespace(
            ttft_ms=ttft + adj.request_overhead_ms, tpot_ms=tpot, output_tok_s_per_gpu=tput
        )


def test_disagg_bands_are_the_quantiles_of_their_residuals_with_no_harness_named(monkeypatch):
    rng = np.random.default_rng(11)
    samples = []
    for backend, n in (("sglang", 30), ("trtllm", 6)):  # trtllm: too few for a band of its own
        for _ in range(n):
            pred = rng.uniform(20.0, 500.0, 3)
            setup = SimpleNamespace(
                record=SimpleNamespace(source_name="X"), backend=backend, system="h200_sxm"
            )
            samples.append(Sample(setup, pred * np.exp(rng.normal(0.3, 0.6, 3)), _Fixed(pred)))
    samples.append(Sample(samples[0].setup, samples[0].measured, None, "not priced"))
    monkeypatch.setattr(refit, "make_samples", lambda setups: samples)
    # The scope's request overhead is 100 ms; harness X's own (10 ms) is not what a user gets.
    scope = ScopeFit(
        Scope("sglang"), {"request_overhead_ms": 100.0}, 30, ("X", "Y"), (HarnessFit("X", "sglang", 10.0, 5),)
    )
    result = SimpleNamespace(profile=Profile((scope,)), excluded={})
    bands, counts = refit._disagg_bands([None] * len(samples), result)

    pred = np.array([s.replay.pred if s.replay else [np.nan] * 3 for s in samples])
    pred[:30, 0] += 100.0
    res = np.log(np.array([s.measured for s in samples]) / pred)
    for m, metric in enumerate(("ttft_ms", "tpot_ms", "output_tok_s_per_gpu")):
        assert set(bands[metric]) == {"every backend", "sglang"}
        assert bands[metric]["sglang"] == pytest.approx(np.percentile(res[:30, m], [10, 90]), abs=5e-5)
        assert bands[metric]["every backend"] == pytest.approx(np.percentile(res[:36, m], [10, 90]), abs=5e-5)
    assert counts == {"records_mapped": 37, "records_priced": 36}


def test_without_disagg_records_there_are_no_disagg_bands():
    result = SimpleNamespace(profile=Profile(()), excluded={})
    assert refit._disagg_bands([], result) == ({}, {"records_mapped": 0, "records_priced": 0})


@pytest.mark.slow
def test_refitting_the_shipped_data_reproduces_the_shipped_profile():
    records, inputs = read_inputs([])
    assert inputs[0][0] == SHIPPED
    result = calibrate(records, inputs)
    assert _comparable(result.profile) == _comparable(default_profile())
