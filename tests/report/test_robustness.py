"""The chosen deployment's 80% band and its robustness at the pessimistic end (report.robustness),
on small searches: by hand from the shipped profile's numbers, the same layout at a smaller batch, a
layout flip and a verdict flip under tighter TTFT targets, nothing feasible, ``robust`` choosing the pessimistic search's answer, the raw model without bands."""

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
    # TTFT <= 400: disagg (prefill tp4, 366 ms) nominally; x1.38 = 503 ms at the pessimistic end,
    # where only agg tp8 at a small batch meets it.
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
