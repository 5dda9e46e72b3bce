"""``vllm bench serve --save-result`` JSON and SGLang ``bench_serving`` JSONL -> records.

The files are the clients' own output of real runs against ``servopt emulate`` (see the README
beside each). The oracle is what each client printed on its console for the same run (two
decimals), read independently of the JSON the parser reads.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from servopt.calibrate.ingest import file_format, read_results
from servopt.calibrate.setups import fit_skip, to_setup
from servopt.calibrate.vllm_bench import read_sglang_bench, read_vllm_bench
from servopt.errors import DataFileError

DATA = Path(__file__).parent / "data"
VLLM = DATA / "vllm" / "c8_r4" / "vllm_c8.json"
VLLM_R4 = VLLM.parent / "vllm_r4_detailed.json"
SGLANG = DATA / "sglang" / "c8_r4" / "sglang_runs.jsonl"


def test_vllm_closed_loop_run():
    (r,) = read_vllm_bench(VLLM)
    # Console: Successful requests 48, Maximum request concurrency 8, Total input tokens 39104,
    # Total generated tokens 4800, Output token throughput 542.34 tok/s.
    assert (r.load, r.concurrency, r.request_rate) == ("closed_loop", 8, None)
    assert (r.num_requests, r.input_tokens, r.output_tokens) == (48, 39104, 4800)
    assert r.mean_isl == pytest.approx(39104 / 48) and r.mean_osl == 100
    assert r.lengths == "dataset"  # vLLM's JSON does not state its length rule
    # Console: Mean/P50/P90/P99 TTFT 330.10 / 356.86 / 404.38 / 412.30; TPOT 11.55 / 11.18 / 13.93 / 14.49.
    got = (r.ttft_ms, r.ttft_p50_ms, r.ttft_p90_ms, r.ttft_p99_ms, r.tpot_ms, r.tpot_p50_ms, r.tpot_p90_ms,
           r.tpot_p99_ms, r.output_tok_s)  # fmt: skip
    want = (330.10, 356.86, 404.38, 412.30, 11.55, 11.18, 13.93, 14.49, 542.34)
    assert got == pytest.approx(want, abs=0.006)
    assert r.output_tok_s_per_gpu == pytest.approx(r.output_tok_s / 2)  # tp 2 in the sidecar
    assert (r.model, r.system, r.backend, r.framework) == (
        "Qwen3-32B",
        "h200_sxm",
        "trtllm",
        "vllm bench serve vs trtllm",
    )


def test_vllm_open_loop_run_fills_unstated_percentiles_from_its_per_request_lists():
    (r,) = read_vllm_bench(VLLM_R4)
    # Console: rate 4.0, 24 requests, 19782 / 2489 tokens, Mean/P99 TTFT 64.37 / 82.97,
    # Mean/Median/P99 TPOT 12.43 / 12.59 / 13.75, output 341.30 tok/s.
    assert (r.load, r.request_rate, r.concurrency, r.num_requests) == ("open_loop", 4.0, None, 24)
    assert (r.input_tokens, r.output_tokens, r.lengths) == (19782, 2489, "dataset")
    got = (r.ttft_ms, r.ttft_p99_ms, r.tpot_ms, r.tpot_p50_ms, r.tpot_p99_ms, r.output_tok_s)
    assert got == pytest.approx((64.37, 82.97, 12.43, 12.59, 13.75, 341.30), abs=0.006)
    # p90 was not among --metric-percentiles (default 99): computed from ttfts / latencies /
    # output_lens as the client computes its own. Oracle: the same computation reproduces every
    # figure the client did state, to the last bit but one.
    doc = json.loads(VLLM_R4.read_text())
    ttft = [t * 1000 for t in doc["ttfts"]]
    tpot = [
        (lat - t) * 1000 / (n - 1)
        for lat, t, n in zip(doc["latencies"], doc["ttfts"], doc["output_lens"], strict=True)
    ]
    assert np.mean(ttft) == pytest.approx(doc["mean_ttft_ms"], rel=1e-12)
    assert np.percentile(tpot, 99) == pytest.approx(doc["p99_tpot_ms"], rel=1e-12)
    assert r.ttft_p90_ms == pytest.approx(np.percentile(ttft, 90), rel=1e-12)
    assert r.tpot_p90_ms == pytest.approx(np.percentile(tpot, 90), rel=1e-12)
    assert r.ttft_p50_ms <= r.ttft_p90_ms <= r.ttft_p99_ms


def test_vllm_lengths_are_fixed_only_when_the_detailed_lists_show_it(tmp_path):
    doc = json.loads(VLLM_R4.read_text())
    doc["input_lens"], doc["output_lens"] = [800] * 24, [100] * 24
    (r,) = read_vllm_bench(_copy(tmp_path, VLLM_R4, json.dumps(doc)))
    assert (r.lengths, r.isl, r.osl, r.input_tokens) == ("fixed", 800, 100, None)


def test_sglang_closed_and_open_loop_runs_one_record_a_line():
    c8, r4 = read_sglang_bench(SGLANG)
    # Line 1 console: max concurrency 8, rate inf, 48 requests, 18353 / 3522 tokens,
    # random lengths with range ratio 0.5 (uniform in [250, 500] and [50, 100]).
    assert (c8.row, c8.load, c8.concurrency, c8.request_rate) == (1, "closed_loop", 8, None)
    assert (c8.lengths, c8.range_ratio, c8.isl, c8.osl) == ("random", 0.5, 500, 100)
    assert c8.mean_isl == pytest.approx(18353 / 48) and c8.mean_osl == pytest.approx(3522 / 48)
    # Console: TTFT mean/median/P90/P99 136.84 / 80.97 / 309.87 / 414.95; TPOT 13.31 / 13.25 / 14.68 / 16.86.
    got = (c8.ttft_ms, c8.ttft_p50_ms, c8.ttft_p90_ms, c8.ttft_p99_ms, c8.tpot_ms, c8.tpot_p50_ms,
           c8.tpot_p90_ms, c8.tpot_p99_ms, c8.output_tok_s)  # fmt: skip
    assert got == pytest.approx(
        (136.84, 80.97, 309.87, 414.95, 13.31, 13.25, 14.68, 16.86, 501.67), abs=0.006
    )
    # Line 2: --request-rate 4 (Poisson), no cap, range ratio 1 = fixed lengths.
    assert (r4.row, r4.load, r4.concurrency, r4.request_rate) == (2, "open_loop", None, 4.0)
    assert (r4.lengths, r4.isl, r4.osl, r4.num_requests) == ("fixed", 500, 100, 40)
    assert (r4.ttft_ms, r4.tpot_ms, r4.output_tok_s) == pytest.approx((80.46, 13.42, 378.96), abs=0.006)


def test_the_format_is_told_from_the_file_and_mapped_records_become_setups():
    assert file_format(VLLM) == "vllm" and file_format(SGLANG) == "sglang"
    records = read_results(VLLM) + read_results(SGLANG)
    setups = [to_setup(r) for r in records]
    # The open-loop run maps (the simulator replays it) but the fit leaves it out with its reason.
    assert [type(s).__name__ for s in setups] == ["Setup", "Setup", "Setup"]
    assert [s.load for s in setups] == ["closed_loop", "closed_loop", "open_loop"]
    assert fit_skip(setups[2]).reason == "open loop at a request rate"


def _copy(tmp_path: Path, src: Path, text: str) -> Path:
    shutil.copy(src.parent / "servopt_setup.yaml", tmp_path)
    p = tmp_path / src.name
    p.write_text(text)
    return p


def test_a_broken_line_is_named_with_its_number(tmp_path):
    lines = SGLANG.read_text().splitlines()
    p = _copy(tmp_path, SGLANG, lines[0] + "\n" + lines[1][:-40] + "\n")
    with pytest.raises(DataFileError) as err:
        read_sglang_bench(p)
    assert err.value.exit_code == 2 and str(err.value).startswith(f"{p}:2: json: ")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"mean_ttft_ms": "fast"}, ":1: mean_ttft_ms: 'fast': must be a number"),
        ({"mean_tpot_ms": None}, ":1: mean_tpot_ms: is missing: not a vllm bench serve result?"),
        ({"completed": 0}, ":1: completed: 0: must be a positive integer (no request completed?)"),
        ({"max_concurrency": -3}, ":1: max_concurrency: -3: must be a positive integer or null"),
        ({"request_rate": -1.0}, ":1: request_rate: -1.0: must be a finite number >= 0"),
        ({"output_throughput": math.nan}, ":1: output_throughput: nan: must be a number"),
    ],
)
def test_a_bad_field_is_one_line_naming_it(tmp_path, edit, message):
    doc = {**json.loads(VLLM.read_text()), **edit}
    p = _copy(tmp_path, VLLM, json.dumps(doc))
    with pytest.raises(DataFileError) as err:
        read_vllm_bench(p)
    assert str(err.value) == f"{p}{message}"


def test_sglang_random_lengths_must_state_their_rule(tmp_path):
    doc = json.loads(SGLANG.read_text().splitlines()[0])
    doc["random_range_ratio"] = 1.5
    p = _copy(tmp_path, SGLANG, json.dumps(doc) + "\n")
    with pytest.raises(DataFileError, match=r":1: random_range_ratio: .*must be a number in \[0, 1\]"):
        read_sglang_bench(p)
