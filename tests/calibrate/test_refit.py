"""``servopt calibrate``'s fit end to end on real measurements: deterministic, reproduces the shipped
default profile, and its cross-validation predicts held-out records only."""

from __future__ import annotations

import dataclasses

import pytest

from servopt.calibrate.fit import grid_median_ms
from servopt.calibrate.model import default_profile, profile_from_text
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


@pytest.mark.slow
def test_refitting_the_shipped_data_reproduces_the_shipped_profile():
    records, inputs = read_inputs([])
    assert inputs[0][0] == SHIPPED
    result = calibrate(records, inputs)
    assert _comparable(result.profile) == _comparable(default_profile())
