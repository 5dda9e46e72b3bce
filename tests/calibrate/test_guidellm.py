"""GuideLLM's JSON report -> one record per benchmark.

``data/guidellm/ingest_c2_c8`` is GuideLLM 0.8.1's report of a real run (concurrency 2 and 8) against
``servopt emulate`` (README beside it). Oracle: GuideLLM's console tables of the same run (one
decimal), and the file's per-request samples for the TPOT definition.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from servopt.calibrate.guidellm import read_guidellm
from servopt.calibrate.ingest import file_format
from servopt.calibrate.setups import to_setup
from servopt.errors import DataFileError

REPORT = Path(__file__).parent / "data" / "guidellm" / "ingest_c2_c8" / "ingest_guidellm_c2_c8.json"


def test_one_closed_loop_record_per_benchmark():
    c2, c8 = read_guidellm(REPORT)
    assert file_format(REPORT) == "guidellm"
    assert [(r.row, r.load, r.concurrency, r.request_rate) for r in (c2, c8)] == [
        (1, "closed_loop", 2, None),
        (2, "closed_loop", 8, None),
    ]
    # Console: TTFT mean 64.1 / 247.0 ms, median 65.7 / 290.1; ITL mean 10.8 / 11.7 ms; output
    # tokens per second 174.1 / 559.3.
    assert (c2.ttft_ms, c2.ttft_p50_ms, c2.tpot_ms, c2.output_tok_s) == pytest.approx(
        (64.1, 65.7, 10.8, 174.1), abs=0.051
    )
    assert (c8.ttft_ms, c8.ttft_p50_ms, c8.tpot_ms, c8.output_tok_s) == pytest.approx(
        (247.0, 290.1, 11.7, 559.3), abs=0.051
    )
    assert c8.ttft_p90_ms is not None and c8.ttft_p50_ms <= c8.ttft_p90_ms <= c8.ttft_p99_ms
    # The server's usage counts (the emulator: ceil(characters / 4)), 40 requests of 100 tokens.
    assert (c8.num_requests, c8.output_tokens, c8.mean_osl) == (40, 4000, 100)
    assert c8.mean_isl == pytest.approx(28296 / 40)
    assert all(isinstance(to_setup(r).layout.tp, int) for r in (c2, c8))


def test_tpot_is_guidellm_inter_token_latency_not_its_time_per_output_token():
    doc = json.loads(REPORT.read_text())
    # Per request, from the stored samples: (last - first token) / (tokens - 1) is ITL, what
    # servopt calls TPOT; GuideLLM's own "time_per_output_token" also spreads the first token.
    m = doc["benchmarks"][1]["metrics"]
    (_, c8) = read_guidellm(REPORT)
    assert c8.tpot_ms == m["inter_token_latency_ms"]["successful"]["mean"]
    assert c8.tpot_ms < m["time_per_output_token_ms"]["successful"]["mean"]


def _copy(tmp_path: Path, doc) -> Path:
    shutil.copy(REPORT.parent / "servopt_setup.yaml", tmp_path)
    p = tmp_path / "report.json"
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return p


def test_malformed_report_names_the_line_or_the_field(tmp_path):
    p = _copy(tmp_path, '{\n  "benchmarks": [\n    {"config": }\n  ]\n}')
    with pytest.raises(DataFileError) as err:
        read_guidellm(p)
    assert err.value.exit_code == 2 and str(err.value).startswith(f"{p}:3: json: ")
    doc = json.loads(REPORT.read_text())
    doc["benchmarks"][1]["config"]["strategy"]["type_"] = "warp"
    with pytest.raises(
        DataFileError, match=r":0: benchmarks\[1\]\.config\.strategy\.type_: 'warp': unknown strategy"
    ):
        read_guidellm(_copy(tmp_path, doc))
    doc = json.loads(REPORT.read_text())
    doc["benchmarks"][0]["metrics"]["time_to_first_token_ms"]["successful"]["mean"] = -1
    with pytest.raises(
        DataFileError,
        match=r"benchmarks\[0\]\.metrics\.time_to_first_token_ms\.successful\.mean: -1: must be",
    ):
        read_guidellm(_copy(tmp_path, doc))


def test_rate_strategies_are_open_loops(tmp_path):
    doc = json.loads(REPORT.read_text())
    doc["benchmarks"][0]["config"]["strategy"] = {"type_": "poisson", "rate": 3.5, "max_concurrency": None}
    doc["benchmarks"][1]["config"]["strategy"] = {"type_": "throughput", "max_concurrency": None}
    rate, burst = read_guidellm(_copy(tmp_path, doc))
    assert (rate.load, rate.request_rate, rate.concurrency) == ("open_loop", 3.5, None)
    assert burst.load == "burst" and burst.request_rate == float("inf")
