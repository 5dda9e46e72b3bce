"""The chosen deployment's 80% band and its robustness at the pessimistic end (report.robustness),
on small searches: by hand from the shipped profile's numbers, the same layout at a smaller batch, a
layout flip and a verdict flip under tighter TTFT targets, nothing feasible, ``robust`` choosing the pessimistic search's answer, the raw model without bands."""

import dataclasses
import json
import math

import pytest

from servopt.calibrate.model import default_profile
from servopt.config import default_experiments, with_robust
from servopt.errors import ServoptError
from servopt.pipeline import run_experiments
from servopt.report.document import result_document
from servopt.report.robustness import NO_BANDS, WIDTH, robustness_lines
from servopt.report.schema import ResultDoc
from servopt.report.verdict import chosen_row


def _doc(ttft: float = 1000.0, robust: bool = False, calibration: str = "default") -> dict:
    exps = default_experiments("QWEN3_32B", 8, "h200_sxm", ttft=ttft, calibration=calibration)
    if robust:
        exps = with_robust(exps)
    doc = result_document(run_experiments(exps))
    ResultDoc.model_validate(doc)
    json.dumps(doc, allow_nan=False)  # no NaN anywhere
    return doc


@pytest.fixture(scope="module")
def nominal():
    return _doc()


@pytest.fixture(scope="module")
def robust():
    return _doc(robust=True)


def test_the_band_is_the_shipped_profiles_trtllm_band_by_hand(nominal):
    bands = default_profile().bands
    lo_t, hi_t = bands["ttft_ms"]["trtllm"]
    lo_p, hi_p = bands["tpot_ms"]["trtllm"]
    lo_r, hi_r = bands["output_tok_s_per_gpu"]["trtllm"]
    row = chosen_row(nominal)
    band = row["band_80"]
    assert band["ttft_ms"] == pytest.approx(
        [row["ttft_ms"] * math.exp(lo_t), row["ttft_ms"] * math.exp(hi_t)]
    )
    assert band["tpot_ms"] == pytest.approx(
        [row["tpot_ms"] * math.exp(lo_p), row["tpot_ms"] * math.exp(hi_p)]
    )
    tps = row["tokens_per_s_per_gpu"]
    assert band["tokens_per_s_per_gpu"] == pytest.approx([tps * math.exp(lo_r), tps * math.exp(hi_r)])
    rob = nominal["robustness"]
    assert rob["pessimistic"] == pytest.approx(
        {
            "ttft_ms": band["ttft_ms"][1],
            "tpot_ms": band["tpot_ms"][1],
            "tokens_per_s_per_gpu": band["tokens_per_s_per_gpu"][0],
        }
    )


def _missed_nominally(doc: dict, binding: str, ttft: float, flips: dict, line: str, says: str):
    """The nominal plan misses ``binding`` at the pessimistic end; the plan chosen there meets both
    targets (TPOT <= 40, TTFT <= ``ttft``) and the report's line says so. Returns both choices."""
    rob = doc["robustness"]
    assert rob["planned_at"] == "nominal" and rob["holds"] is False and rob["binding"] == binding
    assert rob["flips"] == flips
    pes = rob["pessimistic_choice"]
    assert pes["tpot_ms"] <= 40.0 and pes["ttft_ms"] <= ttft
    lines = robustness_lines(doc)
    assert lines[1].startswith(line) and says in lines[1]
    assert all(len(text) <= WIDTH for text in lines)
    return rob["nominal_choice"], pes


def test_at_the_pessimistic_end_the_same_layout_holds_at_a_smaller_batch(nominal):
    # 8 x H200, TTFT <= 1000, TPOT <= 40: agg tp4 at TPOT 39.6 ms, x1.34 = 53.0 > 40 at the
    # pessimistic end, where tp4 still meets TPOT at a smaller batch.
    unchanged = {"verdict": False, "layout": False}
    nom, pes = _missed_nominally(
        nominal, "tpot_ms", 1000.0, unchanged, "pessimistic end: TPOT 53 > 40 ms", "same plan"
    )
    assert nom["parallel"] == pes["parallel"] == "tp4" and pes["layout"] != nom["layout"]
    assert pes["tokens_per_s_per_gpu"] < nom["tokens_per_s_per_gpu"]


def test_at_the_pessimistic_end_the_layout_flips():
    # TTFT <= 700: agg tp4 at TTFT 687 ms, x1.38 = 945 > 700 at the pessimistic end, where only
    # tp8 meets TTFT.
    layout = {"verdict": False, "layout": True}
    nom, pes = _missed_nominally(
        _doc(ttft=700.0), "ttft_ms", 700.0, layout, "pessimistic end: TTFT 945 > 700 ms", "layout flips"
    )
    assert nom["parallel"] == "tp4" and pes["parallel"] == "tp8"


def test_a_tight_ttft_target_flips_the_verdict_at_the_pessimistic_end():
    # TTFT <= 400: disagg (prefill tp4, 366 ms) nominally; at the pessimistic end its TTFT takes the
    # disagg records' band (TRT-LLM up to x11.6, far wider than agg's x1.38), and only agg tp8 at a
    # small batch meets 400 ms there.
    prof = default_profile()
    assert prof.bands_for("disagg")["ttft_ms"]["trtllm"][1] > 2 * prof.bands["ttft_ms"]["trtllm"][1]
    doc = _doc(ttft=400.0)
    rob = doc["robustness"]
    assert rob["nominal_choice"]["mode"] == "disagg" and rob["pessimistic_choice"]["mode"] == "agg"
    assert rob["flips"]["verdict"] and rob["binding"] == "ttft_ms" and not rob["holds"]
    assert "verdict flips" in rob["text"][1]


def test_with_nothing_feasible_at_the_pessimistic_end_it_says_so():
    # TTFT <= 350: the fastest first token (agg tp8: 341 ms) is over 350 ms at x1.38.
    rob = _doc(ttft=350.0)["robustness"]
    assert rob["pessimistic_choice"] is None and rob["flips"] == {"verdict": True, "layout": True}
    assert rob["text"][1].endswith("there: nothing meets the targets")


def test_robust_plans_on_the_pessimistic_search(nominal, robust):
    rob, nom = robust["robustness"], nominal["robustness"]
    assert rob["planned_at"] == "pessimistic" and rob["holds"] is True
    # The robust answer is the nominal run's pessimistic choice, and the other way round.
    assert rob["pessimistic_choice"] == nom["pessimistic_choice"]
    assert rob["nominal_choice"] == nom["nominal_choice"]
    row = chosen_row(robust)
    assert row["tokens_per_s_per_gpu"] == pytest.approx(nom["pessimistic_choice"]["tokens_per_s_per_gpu"])
    assert row["tpot_ms"] <= 40.0 and row["ttft_ms"] <= 1000.0
    # Its band is around the nominal prediction: the pessimistic end is the row itself.
    assert row["band_80"]["tpot_ms"][1] == pytest.approx(row["tpot_ms"])
    assert row["band_80"]["tokens_per_s_per_gpu"][0] == pytest.approx(row["tokens_per_s_per_gpu"])
    assert rob["text"][1].startswith("robust: planned at the pessimistic end; nominal: same plan")


def test_the_raw_model_has_no_band_and_says_so():
    doc = _doc(calibration="none")
    assert "robustness" not in doc and "band_80" not in doc["best"] and "band_80" not in doc["best"]["packed"]
    assert robustness_lines(doc) == [NO_BANDS]
    exps = default_experiments("QWEN3_32B", 8, "h200_sxm", calibration="none")
    with pytest.raises(ServoptError, match="robust"):
        with_robust(exps)


def _profile_path(tmp_path, bands_disagg: dict | None) -> str:
    """The shipped fits with zero-width agg bands (the pessimistic end is the prediction) and, where
    given, disagg bands of their own."""
    zero = {m: {"every backend": [0.0, 0.0]} for m in ("ttft_ms", "tpot_ms", "output_tok_s_per_gpu")}
    prof = dataclasses.replace(default_profile(), bands=zero, bands_disagg=bands_disagg or {})
    path = tmp_path / f"profile_{bool(bands_disagg)}.yaml"
    path.write_text(prof.to_yaml())
    return str(path)


def _tight_tpot_doc(calibration: str, robust: bool = False) -> dict:
    # 8 x H200, TTFT <= 1000, TPOT <= 18: disagg wins on the predictions (agg also meets them).
    exps = default_experiments("QWEN3_32B", 8, "h200_sxm", ttft=1000.0, tpot=18.0, calibration=calibration)
    doc = result_document(run_experiments(with_robust(exps) if robust else exps))
    ResultDoc.model_validate(doc)
    return doc


def test_a_disagg_choice_takes_the_disagg_band_and_its_verdict_flips_with_it(tmp_path):
    # Without bands_disagg disagg takes the agg bands (zero width here): the plan holds.
    old = _tight_tpot_doc(_profile_path(tmp_path, None))["robustness"]
    assert old["nominal_choice"]["mode"] == "disagg" and old["holds"]
    assert old["flips"] == {"verdict": False, "layout": False}
    # A disagg TTFT band up to x3: its prefill TTFT is over 1000 ms at the pessimistic end, agg's
    # figures stay as predicted, so the verdict flips to agg.
    doc = _tight_tpot_doc(_profile_path(tmp_path, {"ttft_ms": {"trtllm": [-0.5, math.log(3.0)]}}))
    rob, row = doc["robustness"], chosen_row(doc)
    assert row["mode"] == "disagg" and rob["factors"]["ttft_ms"] == pytest.approx(3.0)
    assert rob["factors"]["tpot_ms"] == 1.0 and rob["binding"] == "ttft_ms" and not rob["holds"]
    assert rob["pessimistic"]["ttft_ms"] == pytest.approx(3.0 * row["ttft_ms"])
    assert row["band_80"]["ttft_ms"] == pytest.approx([row["ttft_ms"] * math.exp(-0.5), 3.0 * row["ttft_ms"]])
    assert rob["pessimistic_choice"]["mode"] == "agg" and rob["flips"]["verdict"]
    assert "verdict flips" in rob["text"][1]


def test_robust_divides_a_disagg_row_by_the_disagg_factors(tmp_path):
    # x1.1 on disagg TTFT: disagg still meets 1000 ms at the pessimistic end and is planned there.
    path = _profile_path(tmp_path, {"ttft_ms": {"trtllm": [-0.2, math.log(1.1)]}})
    nominal, robust = _tight_tpot_doc(path), _tight_tpot_doc(path, robust=True)
    row, nom = chosen_row(robust), chosen_row(nominal)
    assert row["mode"] == nom["mode"] == "disagg" and robust["robustness"]["planned_at"] == "pessimistic"
    assert row["ttft_ms"] == pytest.approx(1.1 * nom["ttft_ms"])
    # The band is around the nominal prediction: the row divided by its own (disagg) factor.
    assert row["band_80"]["ttft_ms"] == pytest.approx([nom["ttft_ms"] * math.exp(-0.2), row["ttft_ms"]])
