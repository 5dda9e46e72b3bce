"""Every result format through one entry point and through ``servopt calibrate`` (subprocess: real
exit codes): malformed files are one ``file:line: field: message`` line with exit 2; records whose
model servopt lacks are read, then skipped and counted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from servopt.calibrate.ingest import FORMATS, file_format, read_results
from servopt.calibrate.refit import read_inputs
from servopt.errors import DataFileError

DATA = Path(__file__).parent / "data"
FILES = {
    "csv": DATA / "public_sample.csv",
    "aiperf": DATA / "aiperf" / "c8" / "profile_export_aiperf.json",
    "vllm": DATA / "vllm" / "c8_r4" / "vllm_c8.json",
    "sglang": DATA / "sglang" / "c8_r4" / "sglang_runs.jsonl",
    "guidellm": DATA / "guidellm" / "ingest_c2_c8" / "ingest_guidellm_c2_c8.json",
}


def servopt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "servopt", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("kind", FORMATS)
def test_each_format_is_recognised_and_read(kind):
    assert file_format(FILES[kind]) == kind
    records = read_results(FILES[kind])
    assert records and all(r.ttft_ms is None or r.ttft_ms > 0 for r in records)


def test_tool_files_hash_their_sidecar_into_the_provenance():
    records, inputs = read_inputs([FILES["vllm"], FILES["guidellm"]])
    assert len(records) == 3
    assert [name for name, _ in inputs] == [
        "c8_r4/servopt_setup.yaml", "vllm_c8.json", "ingest_c2_c8/servopt_setup.yaml", "ingest_guidellm_c2_c8.json"
    ]  # fmt: skip


def test_an_unknown_json_is_refused(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"hello": 1}\n')
    with pytest.raises(DataFileError, match=r"x.json:1: file: is not a result file servopt reads"):
        read_results(p)


@pytest.mark.parametrize("kind", ["vllm", "sglang", "guidellm"])
def test_calibrate_cli_malformed_file_is_one_line_exit_2(tmp_path, kind):
    src = FILES[kind]
    shutil.copy(src.parent / "servopt_setup.yaml", tmp_path)
    lines = src.read_text().splitlines()
    bad = tmp_path / src.name
    if kind == "guidellm":
        doc = json.loads(src.read_text())
        doc["benchmarks"][0]["metrics"]["inter_token_latency_ms"] = None
        bad.write_text(json.dumps(doc, indent=1))
        expect = f"{bad}:0: benchmarks[0].metrics.inter_token_latency_ms.successful: is missing"
    else:
        bad.write_text(
            "\n".join([lines[0].replace('"completed": ', '"completed": "x", "was": ', 1), *lines[1:]])
        )
        expect = f"{bad}:1: completed: 'x': must be a number"
    out = servopt("calibrate", str(bad), "--folds", "source")
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"error: {expect}") and out.stderr.count("\n") == 1


def test_calibrate_counts_records_of_unknown_models_as_skipped(tmp_path):
    src = FILES["vllm"]
    shutil.copy(src, tmp_path)
    setup = (src.parent / "servopt_setup.yaml").read_text().replace("model: Qwen3-32B", "model: Mystery-7B")
    (tmp_path / "servopt_setup.yaml").write_text(setup)
    out = servopt("calibrate", str(tmp_path / src.name), str(FILES["sglang"]), "--folds", "source")
    # 3 read: the vLLM run (unknown model) and the SGLang open-loop run are skipped, one maps.
    assert out.returncode == 0, out.stderr
    assert "(1 mapped of 3 read; 2 skipped by setups.SKIP_REASONS)" in out.stdout
    assert "  skipped: unknown model 1, open loop at a request rate 1\n" in out.stdout


@pytest.mark.parametrize("kind", ["sglang", "guidellm"])
def test_the_runs_of_one_file_are_one_source_told_apart_by_row(kind):
    # One campaign = one source: leave-one-source-out must hold all of a file's runs out together.
    records = read_results(FILES[kind])
    assert len(records) == 2 and records[0].source == records[1].source
    assert [r.row for r in records] == [1, 2]
