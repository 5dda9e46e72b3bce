"""Calibration profiles: most specific scope wins, YAML round trip, one-line validation errors."""

from __future__ import annotations

import dataclasses

import pytest

from servopt.calibrate.model import (
    HarnessFit,
    Profile,
    Scope,
    ScopeFit,
    default_profile,
    load_profile,
    profile_from_text,
    resolve_calibration,
)
from servopt.errors import ServoptError
from servopt.simulate.adjust import Adjustments


def _profile() -> Profile:
    return Profile(
        (
            ScopeFit(
                Scope("sglang", "b200_sxm"), {"request_overhead_ms": 100.0, "decode_scale": 1.05}, 12, ("A",)
            ),
            ScopeFit(Scope("sglang"), {"request_overhead_ms": 50.0}, 20, ("A", "B")),
            ScopeFit(Scope(), {"iteration_overhead_ms": 1.0}, 30, ("A", "B", "C")),
        ),
        {"measurements_fitted": 30},
    )


def test_most_specific_scope_wins_and_missing_values_are_neutral():
    prof = _profile()
    adj, scope = prof.adjustments("sglang", "b200_sxm")
    assert (adj, scope) == (Adjustments(100.0, 0.0, 1.0, 1.05), "sglang on b200_sxm")
    assert prof.adjustments("sglang", "h100_sxm") == (Adjustments(50.0), "sglang")
    assert prof.adjustments("vllm", "h100_sxm") == (Adjustments(iteration_overhead_ms=1.0), "every backend")
    assert Profile(()).adjustments("vllm", "h100_sxm")[0] == Adjustments()


def test_yaml_round_trip():
    prof = _profile()
    again = profile_from_text(prof.to_yaml(), "x")
    assert again.fits == prof.fits and again.measurements == 30


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("schema: 1", "schema: 2"), "schema: 2: must be 1"),
        (
            ("decode_scale: 1.05", "decode_scale: 3.0"),
            "scopes[0].decode_scale: 3.0: must be in [0.8, 1.25] x",
        ),
        (
            ("decode_scale: 1.05", "decode_scale: .nan"),
            "scopes[0].decode_scale: nan: must be a finite number",
        ),
        (("request_overhead_ms: 50.0", "request_overhead_ms: -1"), "scopes[1].request_overhead_ms: -1"),
        (
            ("backend: sglang\n    system", "backend: sglangx\n    system"),
            "scopes[0].scope.backend: 'sglangx'",
        ),
        (("records: 20", "records: many"), "scopes[1].records: 'many': must be an integer"),
        (("kind: servopt-calibration", "kind: other"), "kind: 'other'"),
    ],
)
def test_bad_profile_is_one_line_naming_the_field(edit, message):
    text = _profile().to_yaml()
    assert edit[0] in text
    with pytest.raises(ServoptError) as err:
        profile_from_text(text.replace(edit[0], edit[1], 1), "p.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_unknown_field_duplicate_scope_and_bad_yaml(tmp_path):
    with pytest.raises(ServoptError, match=r"scopes\[0\]\.decode_scal: unknown field"):
        profile_from_text("schema: 1\nkind: servopt-calibration\nscopes:\n- {decode_scal: 1}\n", "p")
    with pytest.raises(ServoptError, match="appears twice"):
        profile_from_text(
            "schema: 1\nkind: servopt-calibration\nscopes:\n- {scope: {}}\n- {scope: {}}\n", "p"
        )
    with pytest.raises(ServoptError, match="p:3: not valid YAML"):
        profile_from_text("schema: 1\nkind: [\n", "p")
    with pytest.raises(ServoptError, match="no such file"):
        load_profile(tmp_path / "missing.yaml")


def _with_harnesses() -> Profile:
    fits = list(_profile().fits)
    fits[1] = ScopeFit(
        Scope("sglang"),
        {"request_overhead_ms": 50.0},
        20,
        ("A", "B"),
        (HarnessFit("A", "sglang", 120.0, 12), HarnessFit("B", "sglang", 12.0, 8)),
    )
    return Profile(tuple(fits), {"measurements_fitted": 30})


def test_a_known_harness_takes_its_own_request_overhead_anyone_else_the_scopes():
    prof = _with_harnesses()
    assert prof.adjustments("sglang", "h100_sxm", "B") == (Adjustments(12.0), "sglang, B harness")
    assert prof.adjustments("sglang", "h100_sxm", "C") == (Adjustments(50.0), "sglang")
    assert prof.adjustments("sglang", "h100_sxm") == (Adjustments(50.0), "sglang")
    # The harness of another scope does not apply: sglang on b200 is its own scope, without harnesses.
    assert prof.adjustments("sglang", "b200_sxm", "A")[0].request_overhead_ms == 100.0
    again = profile_from_text(prof.to_yaml(), "x")
    assert again.fits == prof.fits
    assert "harnesses" in prof.to_dict()["scopes"][1] and "harnesses" not in prof.to_dict()["scopes"][0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("request_overhead_ms: 12.0", "request_overhead_ms: .inf"),
            "scopes[1].harnesses[1].request_overhead_ms: inf: must be a finite number (ms)",
        ),
        (
            ("request_overhead_ms: 120.0", "request_overhead_ms: 1200.0"),
            "scopes[1].harnesses[0].request_overhead_ms: 1200.0: must be in [0, 1000] ms",
        ),
        (("records: 8", "records: 8\n    offset: 3"), "scopes[1].harnesses[1].offset: unknown field"),
        (("records: 8", "records: -8"), "scopes[1].harnesses[1].records: -8: must be an integer >= 0"),
        (
            ("backend: sglang\n    request", "backend: vllm\n    request"),
            "harnesses[0].backend: 'vllm': must be",
        ),
        (("source: B\n", "source: A\n"), "scopes[1].harnesses[1]: harness A / sglang appears twice"),
        (("- source: B\n", "- sauce: B\n"), "scopes[1].harnesses[1].sauce: unknown field"),
    ],
)
def test_bad_harness_is_one_line_naming_the_field(edit, message):
    text = _with_harnesses().to_yaml()
    assert edit[0] in text
    with pytest.raises(ServoptError) as err:
        profile_from_text(text.replace(edit[0], edit[1], 1), "p.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2


BANDS = {"ttft_ms": {"every backend": [-0.4, 0.5]}, "tpot_ms": {"sglang": [-0.2, 0.3]}}
BANDS_DISAGG = {"ttft_ms": {"every backend": [-0.3, 2.4]}}


def test_disagg_takes_bands_disagg_per_metric_and_round_trips():
    prof = dataclasses.replace(_profile(), bands=BANDS, bands_disagg=BANDS_DISAGG)
    again = profile_from_text(prof.to_yaml(), "x")
    assert again.bands == BANDS and again.bands_disagg == BANDS_DISAGG
    assert again.bands_for("agg") == BANDS
    # A metric the disagg records give no band keeps the agg one.
    assert again.bands_for("disagg") == {**BANDS, "ttft_ms": BANDS_DISAGG["ttft_ms"]}


def test_a_profile_without_bands_disagg_gives_disagg_the_agg_bands():
    prof = dataclasses.replace(_profile(), bands=BANDS)
    text = prof.to_yaml()
    assert "bands_disagg" not in text  # older files and user profiles read the same
    again = profile_from_text(text, "x")
    assert again.bands_disagg == {} and again.bands_for("disagg") == BANDS


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[1, 2]", "p.yaml: bands_disagg: must be a mapping"),
        ("{ttft_ms: [0, 1]}", "p.yaml: bands_disagg.ttft_ms: must be a mapping of scope -> [low, high]"),
        ("{ttft_ms: {sglang: [1, 0]}}", "bands_disagg.ttft_ms.sglang: [1, 0]: must be [low, high]"),
        ("{ttft_ms: {sglang: [0, .nan]}}", "bands_disagg.ttft_ms.sglang: [0, nan]: must be [low, high]"),
    ],
)
def test_bad_bands_disagg_is_one_line_naming_the_field(tmp_path, value, message):
    path = tmp_path / "p.yaml"
    path.write_text(_profile().to_yaml().replace("bands: {}", f"bands: {{}}\nbands_disagg: {value}", 1))
    with pytest.raises(ServoptError) as err:
        load_profile(path)
    assert message in str(err.value).replace(str(tmp_path) + "/", "") and "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_calibration_flag_values():
    assert resolve_calibration("none") is None
    shipped = resolve_calibration("default")
    assert shipped.fits == default_profile().fits and shipped.measurements > 0


def test_each_worker_takes_its_own_scope_and_every_output_says_which():
    from servopt.calibrate.model import (
        Profile,
        Scope,
        ScopeFit,
        scope_adjustments,
        worker_adjustments,
    )
    from servopt.report.tables import RAW_MODEL_LINE, calibration_line, scope_calibration_line

    profile = Profile(
        (
            ScopeFit(Scope("trtllm", "b200_sxm"), {"request_overhead_ms": 30.0}, 12, ("a", "b")),
            ScopeFit(Scope("trtllm"), {"decode_scale": 1.1}, 20, ("a", "b")),
        ),
        {"measurements_fitted": 32},
        name="p.yaml",
    )
    adjs, doc = worker_adjustments(profile, "trtllm", {"prefill": "b200_sxm", "decode": "h200_sxm"})
    assert adjs["prefill"].request_overhead_ms == 30.0 and adjs["decode"].decode_scale == 1.1
    assert doc["workers"]["prefill"]["scope"] == "trtllm on b200_sxm"
    assert doc["workers"]["decode"]["scope"] == "trtllm"
    assert (
        calibration_line(doc)
        == "calibrated: p.yaml, 32 measurements (prefill trtllm on b200_sxm, decode trtllm)"
    )
    assert worker_adjustments(None, "trtllm", {"agg": "h200_sxm"}) == ({"agg": None}, None)
    assert scope_adjustments(None, "trtllm", "h200_sxm") == (None, None)
    adj, one = scope_adjustments(profile, "vllm", "h200_sxm")  # no fitted scope: neutral
    assert adj.neutral and one["scope"] == "no fitted scope (neutral)"
    _, one = scope_adjustments(profile, "trtllm", "h200_sxm")
    assert scope_calibration_line(one) == "calibrated: p.yaml, 32 measurements (scope trtllm)"
    assert scope_calibration_line(one, values=True) == (
        "calibrated: p.yaml, 32 measurements (scope trtllm: request overhead 0 ms, iteration overhead "
        "0 ms, decode x1.1, prefill x1)"
    )
    assert scope_calibration_line(None) == RAW_MODEL_LINE == calibration_line(None)


def test_a_rate_sizing_question_takes_each_systems_scope(tmp_path):
    from servopt.calibrate.model import calibrated_question

    path = tmp_path / "p.yaml"
    path.write_text(_profile().to_yaml())
    q = {"backend": "sglang", "system": "b200_sxm", "decode_system": "h100_sxm"}
    out = calibrated_question(q, str(path))
    assert out["adjustments"] == Adjustments(100.0, 0.0, 1.0, 1.05)
    assert out["decode_adjustments"] == Adjustments(50.0)
    assert out["calibration"]["scope"] == "sglang on b200_sxm"
    assert out["calibration"]["decode"]["scope"] == "sglang"
    assert "profile" not in out["calibration"]["decode"]
    # One system: no decode scope of its own; the raw model: nothing at all.
    same = calibrated_question({**q, "decode_system": None}, str(path))
    assert "decode_adjustments" not in same and "decode" not in same["calibration"]
    assert calibrated_question(q, "none")["calibration"] is None


def test_a_rate_sizing_question_carries_each_modes_bands(tmp_path):
    from servopt.calibrate.model import calibrated_question

    path = tmp_path / "p.yaml"
    path.write_text(dataclasses.replace(_profile(), bands=BANDS, bands_disagg=BANDS_DISAGG).to_yaml())
    out = calibrated_question({"backend": "sglang", "system": "b200_sxm"}, str(path))
    assert out["bands"] == BANDS and out["disagg_bands"] == {**BANDS, **BANDS_DISAGG}
