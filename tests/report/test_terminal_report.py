"""The terminal report at 80 and 120 columns, and the one verdict it leads with."""

import copy
import io

import pytest
from rich.console import Console

from servopt.report.document import result_document
from servopt.report.tables import count_notes, fmt_number, layout_text, print_report
from servopt.report.verdict import PACKED_MIN_GAIN, shape, verdict

ALWAYS = ("rank", "tokens/s/gpu", "tokens/s/user", "TTFT ms", "TPOT ms")


def _render(doc: dict, width: int, top_n: int = 5) -> str:
    out = io.StringIO()
    print_report(doc, Console(file=out, width=width, color_system=None), top_n=top_n)
    return out.getvalue()


@pytest.fixture(scope="module")
def doc(qwen8_result):
    return result_document(qwen8_result[1])


@pytest.mark.parametrize("width", [80, 100, 120])
def test_report_fits_the_width_and_keeps_the_key_columns(doc, width):
    text = _render(doc, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    headers = [line for line in lines if line.lstrip().startswith("rank")]
    assert len(headers) == 2  # agg and disagg tables
    for header in headers:
        for column in ALWAYS:
            assert column in header
    # No cell is cut to an ellipsis.
    assert "…" not in text


def test_narrow_tables_name_what_they_leave_out(doc):
    narrow, wide = _render(doc, 80), _render(doc, 240)
    assert "not shown at 80 columns:" in " ".join(narrow.split())
    assert "not shown" not in wide and "latency ms" in wide


def test_integers_print_as_integers_and_plurals_agree(doc):
    text = _render(doc, 240)
    concurrency = doc["agg"][0]["concurrency"]
    assert f"concurrency {round(concurrency)}" in text
    assert f"{concurrency:,.2f}" not in text
    assert fmt_number(20480) == "20480" and fmt_number(1.5) == "1.50"
    assert shape({"replicas": 1, "gpus_per_replica": 32}) == "1 replica x 32 GPUs"
    assert shape({"replicas": 64, "gpus_per_replica": 1}) == "64 replicas x 1 GPU"
    assert "1 replicas" not in text and "x 1 GPUs" not in text


def test_top_n_shortfall_is_explained(doc):
    rows = {e["name"]: len(e["top"]) for e in doc["experiments"]}
    notes = count_notes(doc, max(rows.values()) + 1)
    assert len(notes) == len(rows)
    assert all("meet" in n and "--top_n" in n for n in notes)
    assert count_notes(doc, 1) == []


def test_disagg_layout_stacks_onto_two_lines():
    row = {
        "mode": "disagg",
        "prefill_workers": 3,
        "prefill_tp": 8,
        "prefill_moe_ep": 8,
        "prefill_batch_size": 1,
        "decode_workers": 1,
        "decode_dp": 16,
        "decode_moe_ep": 16,
        "decode_batch_size": 48,
    }
    assert layout_text(row) == "3P tp8ep8 bs1 + 1D dp16ep16 bs48"
    assert layout_text(row, stacked=True) == "3P tp8ep8 bs1\n1D dp16ep16 bs48"


def _with_gain(doc: dict, gain: float) -> dict:
    doc = copy.deepcopy(doc)
    best = doc["best"]
    best["packed"]["gain_vs_identical"] = gain
    best["packed"]["tokens_per_s_per_gpu"] = best["tokens_per_s_per_gpu"] * (1 + gain)
    doc["verdict"] = verdict(doc)
    return doc


def test_verdict_names_one_deployment_and_the_other_on_its_own_line(doc):
    packed = _with_gain(doc, 0.25)["verdict"]
    assert packed["deploy"] == "packed" and packed["headline"].startswith("Deploy ")
    assert "+25.0% over identical replicas" in packed["why"][0]
    assert packed["alternative"].startswith("identical replicas")

    small = _with_gain(doc, PACKED_MIN_GAIN / 2)["verdict"]
    assert small["deploy"] == "identical" and small["alternative"].startswith("packed replicas")

    none = _with_gain(doc, 0.0)["verdict"]
    assert none["deploy"] == "identical" and none["alternative"] is None

    text = _render(_with_gain(doc, 0.25), 80)
    lines = text.splitlines()
    headline = next(i for i, line in enumerate(lines) if "Deploy " in line)
    other = next(i for i, line in enumerate(lines) if "Other option: identical replicas" in line)
    assert other > headline


def test_verdict_says_by_how_much_the_mode_wins(doc):
    v = doc["verdict"]
    assert v["mode"] == doc["best"]["mode"]
    if doc["best"].get("runner_up"):
        assert any(f"{doc['best']['ratio_vs_runner_up']:.2f}x" in why for why in v["why"])
