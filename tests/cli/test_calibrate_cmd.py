"""`servopt calibrate` and `cli simulate --calibration`, in a subprocess (real exit codes, streams)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

SAMPLE = Path(__file__).parents[1] / "calibrate" / "data" / "public_sample.csv"
SIM = ["cli", "simulate", "--model", "QWEN3_8B", "--system", "h100_sxm", "--backend", "vllm"]
SIM += ["--concurrency", "4", "--num_requests", "40", "--isl", "233", "--osl", "221"]


def servopt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "servopt", *args], capture_output=True, text=True, timeout=600
    )


def test_too_few_records_keep_every_parameter_neutral(tmp_path):
    out = servopt("calibrate", str(SAMPLE), "--folds", "source", "--out", str(tmp_path / "p.yaml"))
    assert out.returncode == 0, out.stderr
    assert (
        "every backend: 1 light-load records with TTFT, 2 with TPOT (needs 5 of each): kept neutral"
        in out.stdout
    )
    assert "not fitted on: dstack DeepSeek-R1 8xH200 / sglang" in out.stdout
    doc = yaml.safe_load((tmp_path / "p.yaml").read_text())
    assert doc["scopes"] == [] and doc["provenance"]["measurements_mapped"] == 5


def test_bad_input_is_one_line_exit_2(tmp_path):
    out = servopt("calibrate", "--folds", "source,region")
    assert (
        out.returncode == 2 and out.stderr.count("\n") == 1 and "folds: 'region': unknown fold" in out.stderr
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(SAMPLE.read_text().splitlines()[0] + "\nnot,a,row\n")
    out = servopt("calibrate", str(bad))
    assert out.returncode == 2 and out.stderr.startswith(f"error: {bad}:2:") and "Traceback" not in out.stderr
    prof = tmp_path / "p.yaml"
    prof.write_text(
        "schema: 1\nkind: servopt-calibration\nscopes:\n- {scope: {backend: vllm}, decode_scale: 9}\n"
    )
    out = servopt(*SIM, "--calibration", str(prof))
    assert out.returncode == 2 and "scopes[0].decode_scale: 9: must be in [0.8, 1.25] x" in out.stderr
    assert out.stderr.count("\n") == 1


def test_simulate_says_which_profile_and_none_is_the_raw_model():
    raw = json.loads(servopt(*SIM, "--calibration", "none", "--json").stdout)
    assert raw["config"]["calibration"] == {"profile": "none (raw model)"} and "bands_80" not in raw
    cal = json.loads(servopt(*SIM, "--json").stdout)
    c = cal["config"]["calibration"]
    assert c["profile"] == "default profile" and c["measurements"] > 0 and c["scope"]
    assert cal["ttft_ms"]["mean"] > raw["ttft_ms"]["mean"] + 0.9 * c["request_overhead_ms"]
    lo, hi = cal["bands_80"]["ttft_ms"]
    assert lo <= hi
    # An explicit flag overrides the profile's value.
    flag = json.loads(servopt(*SIM, "--request_overhead_ms", "0", "--json").stdout)
    assert flag["config"]["calibration"]["request_overhead_ms"] == 0.0
    text = servopt(*SIM).stdout
    assert "calibrated: default profile, " in text and "measurements (scope" in text
    text = servopt(*SIM, "--calibration", "none").stdout
    assert "calibration: none (the raw model, comparable with aiconfigurator 0.12.0)" in text
