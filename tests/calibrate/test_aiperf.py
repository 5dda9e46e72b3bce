"""Reading AIPerf's exports into measured records, and malformed files (file:line errors).

``data/aiperf/c8`` is AIPerf 0.13.0's output of a real run (concurrency 8, 500/100 tokens, streaming
chat) against ``servopt emulate --model QWEN3_32B --system h200_sxm --tp 2``: the summary JSON
verbatim and the first 12 lines of the per-request JSONL (8 warm-up, 4 profiling requests). The
client tokenizer was a BERT one, so AIPerf's own output lengths (200) differ from the server's (100).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from servopt.calibrate.aiperf import read_aiperf
from servopt.errors import DataFileError

C8 = Path(__file__).parent / "data" / "aiperf" / "c8"
SETUP = {"model": "Qwen3-32B", "system": "h200_sxm", "backend": "trtllm", "tp": 2}


def test_summary_json_is_one_closed_loop_record():
    (r,) = read_aiperf(C8 / "profile_export_aiperf.json")
    assert (r.model, r.system, r.backend, r.tp, r.num_gpus) == ("Qwen3-32B", "h200_sxm", "trtllm", 2, 2)
    assert r.load == "closed_loop" and r.concurrency == 8 and r.request_rate is None
    assert r.num_requests == 120 and r.osl == 100  # the server's count, not the client tokenizer's 200
    assert r.ttft_ms == pytest.approx(158.04984632499998)
    assert r.ttft_p50_ms == pytest.approx(170.25107549999998) and r.ttft_p99_ms == pytest.approx(294.26820437)
    doc = json.loads((C8 / "profile_export_aiperf.json").read_text())
    assert r.ttft_p90_ms == doc["time_to_first_token"]["p90"]
    assert r.tpot_p90_ms == pytest.approx(doc["inter_token_latency"]["p90"] * 199 / 99)
    # AIPerf's ITL (5.91 ms) is per client token: rescaled by (200 - 1) / (100 - 1).
    assert r.tpot_ms == pytest.approx(5.911296408668341 * 199 / 99)
    # AIPerf's 1173.5 tok/s counts 200 client tokens a request; the server produced 100.
    assert r.output_tok_s == pytest.approx(1173.5007504058608 / 2)
    assert r.output_tok_s_per_gpu == pytest.approx(1173.5 / 4, rel=1e-4)
    assert r.latency_stat == "mean" and r.basis == "output"


def test_jsonl_summarises_the_profiling_requests_only():
    (r,) = read_aiperf(C8 / "profile_export.jsonl")
    assert r.num_requests == 4  # the 8 warm-up lines are left out
    ttfts = [91.573957, 293.876264, 275.749664, 294.360141]
    assert r.ttft_ms == pytest.approx(sum(ttfts) / 4)
    assert r.tpot_ms == pytest.approx((1368.1458519999999 - 91.573957) / 99 / 4 + sum(
        (lat - t) / 99 for lat, t in ((1386.1840809999999, 293.876264), (1371.0701769999998, 275.749664),
                                      (1390.2122419999998, 294.360141))) / 4)  # fmt: skip
    assert r.concurrency == 8 and r.load == "closed_loop"  # from the summary beside it


def test_setup_mapping_and_disagg_layout():
    setup = {**SETUP, "tp": None, "prefill": {"workers": 1, "tp": 2}, "decode": {"workers": 2, "tp": 2}}
    (r,) = read_aiperf(C8 / "profile_export_aiperf.json", setup=setup)
    assert r.disagg is not None and r.disagg.decode.gpus == 4 and r.num_gpus == 6
    assert r.output_tok_s_per_decode_gpu == pytest.approx(r.output_tok_s / 4)


def _copy(tmp_path: Path, name: str, text: str | None = None) -> Path:
    shutil.copy(C8 / "servopt_setup.yaml", tmp_path)
    shutil.copy(C8 / "profile_export_aiperf.json", tmp_path)
    p = tmp_path / name
    if text is not None:
        p.write_text(text)
    return p


def test_malformed_json_names_file_and_line(tmp_path):
    p = _copy(tmp_path, "x.json", '{\n  "time_to_first_token": {\n  oops\n}')
    with pytest.raises(DataFileError) as err:
        read_aiperf(p)
    assert err.value.exit_code == 2 and str(err.value).startswith(f"{p}:3: json")


def test_missing_metric_is_named(tmp_path):
    doc = json.loads((C8 / "profile_export_aiperf.json").read_text())
    del doc["inter_token_latency"]
    p = _copy(tmp_path, "x.json", json.dumps(doc))
    with pytest.raises(DataFileError, match="inter_token_latency: is missing"):
        read_aiperf(p)


def test_bad_jsonl_line_is_numbered(tmp_path):
    lines = (C8 / "profile_export.jsonl").read_text().splitlines()
    lines[9] = lines[9].replace('"time_to_first_token":{"value":', '"time_to_first_token":{"value":"x', 1)
    p = _copy(tmp_path, "profile_export.jsonl", "\n".join(lines))
    with pytest.raises(DataFileError) as err:
        read_aiperf(p)
    assert f"{p}:10: " in str(err.value)


def test_sidecar_is_required_and_checked(tmp_path):
    p = tmp_path / "profile_export_aiperf.json"
    shutil.copy(C8 / "profile_export_aiperf.json", p)
    with pytest.raises(DataFileError, match=r"servopt_setup.yaml:0: file: .*is missing"):
        read_aiperf(p)
    (tmp_path / "servopt_setup.yaml").write_text("model: QWEN3_32B\nsystem: h200_sxm\nbackend: tgi\n")
    with pytest.raises(DataFileError, match="backend"):
        read_aiperf(p)


def test_poisson_rate_summary_is_open_loop():
    # data/aiperf/rate: AIPerf --request-rate 6 (poisson), 180 requests, against the same emulator.
    (r,) = read_aiperf(C8.parent / "rate" / "profile_export_aiperf.json")
    assert r.load == "open_loop" and r.request_rate == 6.0 and r.concurrency is None
    assert r.num_requests == 180 and r.osl == 100


def test_calibrate_reads_aiperf_exports_with_their_sidecar():
    from servopt.calibrate.refit import read_inputs

    records, inputs = read_inputs([C8 / "profile_export_aiperf.json"])
    assert len(records) == 1 and records[0].concurrency == 8
    # Both hashed into the provenance: the export and the sidecar that names its deployment.
    assert [name for name, _ in inputs] == ["c8/servopt_setup.yaml", "profile_export_aiperf.json"]


def test_calibrate_says_when_no_record_maps(tmp_path):
    from servopt.calibrate.refit import calibrate
    from servopt.errors import ServoptError

    (r,) = read_aiperf(C8 / "profile_export_aiperf.json", setup={**SETUP, "precision": None})
    with pytest.raises(ServoptError, match=r"no record maps to a setup.*precision not stated"):
        calibrate([r], [])
