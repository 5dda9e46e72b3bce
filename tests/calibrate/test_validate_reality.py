"""experiments/validate_reality.py end to end on the sample file, with a second predictor plugged in."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import math
import re
from pathlib import Path

import pytest

from servopt.calibrate import predictors
from servopt.calibrate.model import default_profile
from servopt.calibrate.predictors import Prediction
from servopt.calibrate.public_csv import read_measurements
from servopt.calibrate.setups import Setup, to_setup
from servopt.error_bands import BAND_METRICS, band_for

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = Path(__file__).parent / "data" / "public_sample.csv"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location(
        "validate_reality", ROOT / "experiments" / "validate_reality.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _oracle(setup):
    """A predictor that returns the measurements (x1.5 TTFT): its errors are known exactly."""
    r = setup.record
    return Prediction((r.ttft_ms or 1.0) * 1.5, r.tpot_ms or 1.0, r.output_tok_s_per_gpu)


def test_side_by_side_columns_and_errors(script, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(predictors.PREDICTORS, "oracle", _oracle)
    out = tmp_path / "rows.csv"
    rc = script.main(["--measurements", str(SAMPLE), "--predictors", "mean_field,oracle", "--out", str(out)])
    assert rc == 0
    rows = list(csv.DictReader(out.open()))
    # Aggregated without speculative decoding: closed loops (4, 6, 8, 9, 13), a max-throughput run
    # (2), an open loop (3) and bursts (10, 11, 12).
    assert [int(r["row"]) for r in rows] == [2, 3, 4, 6, 8, 9, 10, 11, 12, 13]
    for r in rows:
        if r["load"] != "closed_loop":  # the mean-field model takes closed loops only: no figures, no note
            assert r["mean_field_tpot_ms"] == r["mean_field_note"] == ""
            assert float(r["oracle_output_tok_s_per_gpu_err"]) == 0.0
            continue
        assert float(r["oracle_output_tok_s_per_gpu_err"]) == 0.0
        # A metric the record does not state has no error (the blog row states no TTFT/TPOT).
        assert (r["oracle_tpot_ms_err"] == "") == (r["tpot_ms"] == "")
        if r["tpot_ms"]:
            assert float(r["oracle_tpot_ms_err"]) == 0.0
            assert float(r["oracle_ttft_ms_err"]) == pytest.approx(0.5)
        assert float(r["mean_field_tpot_ms"]) > 0 or r["mean_field_note"]
    text = capsys.readouterr().out
    assert "oracle" in text and "mean_field" in text and "16 records: 10 mapped" in text
    assert "speculative decoding" in text and "could not price" not in text
    # Closed loops less the (source, backend) pairs the shipped fit screened out as version gaps.
    gaps = {(d["source"], d["backend"]) for d in default_profile().provenance["not_fitted_on"]}
    closed = [r for r in rows if r["load"] == "closed_loop"]
    current = [r for r in closed if (r["source"], r["backend"]) not in gaps]
    assert len(current) < len(closed)  # the sample has a dstack row
    line = next(x for x in text.splitlines() if x.startswith("overall, no version gap") and "oracle" in x)
    assert int(line.split()[line.split().index("oracle") + 1]) == len(current)


def test_disagg_rows_have_their_own_groups(script, capsys, monkeypatch):
    monkeypatch.setitem(
        predictors.PREDICTORS,
        "oracle_x2",
        lambda s: Prediction(2 * s.record.ttft_ms, s.record.tpot_ms, s.record.output_tok_s_per_gpu),
    )
    # A disaggregated row (the sample's InferenceX xPyD row without MTP) beside an agg closed loop.
    records = {r.row: r for r in read_measurements(SAMPLE)}
    disagg = to_setup(dataclasses.replace(records[7], spec="none", spec_nextn=None))
    agg = to_setup(records[13])
    rows = script.evaluate([agg, disagg], ["oracle_x2"])
    script.print_table(rows, ["oracle_x2"])
    script.print_band_coverage(rows, "oracle_x2")
    text = capsys.readouterr().out
    assert any(x.startswith("InferenceX disagg b200_sxm fp4 sglang") for x in text.splitlines())
    overall = next(x for x in text.splitlines() if x.startswith("overall") and "every load" in x)
    assert overall.split()[4] == "1"  # the agg overall lines count the agg row only
    disagg_line = next(x for x in text.splitlines() if x.startswith("overall disagg"))
    assert disagg_line.split()[4] == "1" and "100.0%" in disagg_line  # x2 TTFT: |error| 100%
    # The band table names the disagg group too.
    assert re.search(r"^InferenceX disagg b200_sxm fp4 +closed_loop", text, re.M)


def test_unknown_predictor_exits_2(script, capsys):
    assert script.main(["--predictors", "simulated"]) == 2
    assert "allowed: mean_field" in capsys.readouterr().err


def test_malformed_measurements_exit_2(script, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert script.main(["--measurements", str(bad)]) == 2
    assert f"{bad}:1: header:" in capsys.readouterr().err


def test_relative_error(script):
    assert script.relative_error(150.0, 100.0) == 0.5
    assert script.relative_error(None, 100.0) is None and script.relative_error(1.0, None) is None


def test_simulator_predicts_beside_the_mean_field(script, tmp_path, capsys):
    out = tmp_path / "rows.csv"
    args = ["--measurements", str(SAMPLE), "--predictors", "mean_field,simulate,simulate_calibrated"]
    assert script.main([*args, "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    priced = [r for r in rows if r["simulate_output_tok_s_per_gpu"]]
    # Every load is replayed: a max-throughput run, an open loop and bursts beside the closed loops.
    assert {r["load"] for r in priced} == {"closed_loop", "max_throughput", "open_loop", "burst"}
    assert all(float(r["simulate_ttft_ms"]) > 0 for r in priced if r["simulate_ttft_ms"])
    text = capsys.readouterr().out
    assert "simulate" in text and "share inside the shipped profile's 80% bands" in text
    assert "TRT-LLM perf overview          open_loop" in text


@pytest.mark.parametrize(("factor", "share"), [(1.0, "100%"), (100.0, "0%")])
def test_band_coverage_counts_measurements_inside_the_shipped_bands(script, capsys, factor, share):
    # x1 of the band's middle: inside every shipped band (a band need not hold 0: SGLang's TTFT band
    # is all above it); x100 of it: outside all of them.
    bands = default_profile().bands
    rows = []
    for setup in (s for s in map(to_setup, read_measurements(SAMPLE)) if isinstance(s, Setup)):
        row = script.Evaluated(setup)
        r = setup.record
        mids = [math.exp(-sum(band_for(bands, m, setup.backend)) / 2) for m in BAND_METRICS]
        row.predictions["simulate_calibrated"] = Prediction(
            *(
                (v or 0.0) * mid * factor
                for v, mid in zip((r.ttft_ms, r.tpot_ms, r.output_tok_s_per_gpu), mids, strict=True)
            )
        )
        rows.append(row)
    script.print_band_coverage(rows)
    cells = re.findall(r"(\d+)% \((\d+)/(\d+)\)", capsys.readouterr().out)
    assert cells and all(f"{pct}%" == share for pct, _, _ in cells)
    # Every row's throughput is stated in the sample: all ten are counted.
    assert sum(int(n) for _, _, n in cells) >= len(rows)
