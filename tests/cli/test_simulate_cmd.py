"""`servopt cli simulate` end to end, in a subprocess (real exit codes and streams)."""

import json
import math
import subprocess
import sys

import pytest

BASE = ["cli", "simulate", "--model", "QWEN3_32B", "--system", "h200_sxm", "--tp", "2"]


def servopt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "servopt", *args], capture_output=True, text=True, timeout=600
    )


def _finite_numbers(doc) -> bool:
    if isinstance(doc, dict):
        return all(_finite_numbers(v) for v in doc.values())
    if isinstance(doc, list):
        return all(_finite_numbers(v) for v in doc)
    return not isinstance(doc, float) or math.isfinite(doc)


def test_json_document_has_the_percentiles_and_rates(tmp_path):
    out = servopt(
        *BASE, "--concurrency", "16", "--num_requests", "300", "--isl", "2000", "--osl", "200",
        "--isl_range", "0.3", "--ttft", "1000", "--tpot", "40", "--json", "--save_dir", str(tmp_path),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        assert set(doc[key]) == {"mean", "p50", "p90", "p99"}
        assert doc[key]["p50"] <= doc[key]["p90"] <= doc[key]["p99"]
    for key in (
        "output_tokens_per_s",
        "output_tokens_per_s_per_gpu",
        "requests_per_s",
        "goodput_requests_per_s",
    ):
        assert doc[key] > 0
    # A tenth is warm-up; the last 16 (one per client) run while the loop drains.
    assert doc["gpus"] == 2 and doc["num_requests"] == 300 - 30 - 16
    assert _finite_numbers(doc)
    saved = list(tmp_path.iterdir())
    assert len(saved) == 1
    assert {p.name for p in saved[0].iterdir()} == {
        "result.json",
        "requests.csv",
        "latency_cdf.png",
        "timeline.png",
    }


def test_same_seed_same_answer_and_disagg_runs():
    args = (*BASE, "--mode", "disagg", "--decode_workers", "2", "--request_rate", "2", "--num_requests", "200",
            "--isl", "1000", "--osl", "100", "--json")  # fmt: skip
    a, b = servopt(*args), servopt(*args)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    doc = json.loads(a.stdout)
    assert doc["gpus"] == 6 and doc["config"]["mode"] == "disagg"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--request_rate", "0"], "request_rate"),
        (["--request_rate", "nan"], "request_rate"),
        (["--request_rate", "inf"], "request_rate"),
        (["--concurrency", "0"], "concurrency"),
        (["--concurrency", "4", "--request_rate", "1"], "load"),
        (["--concurrency", "4", "--arrival_cv", "-1"], "arrival_cv"),
        (["--concurrency", "4", "--isl_range", "1.5"], "isl_range"),
        (["--concurrency", "4", "--lengths", "/nonexistent/lengths.csv"], "lengths"),
    ],
)
def test_bad_input_is_one_line_exit_2(extra, field):
    out = servopt(*BASE, *extra)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in out.stderr


def test_malformed_trace_names_file_and_line(tmp_path):
    trace = tmp_path / "trace.jsonl"
    trace.write_text('{"timestamp": 0, "input_length": 10, "output_length": 5}\n{"timestamp": 1}\n')
    out = servopt(*BASE, "--trace", str(trace))
    assert out.returncode == 2
    assert f"{trace}:2: input_length" in out.stderr and "Traceback" not in out.stderr


def test_kv_cache_that_cannot_hold_one_request_exits_1_with_the_figures():
    out = servopt(*BASE, "--concurrency", "1", "--num_requests", "2", "--isl", "3000000", "--osl", "10")
    assert out.returncode == 1, out.stderr
    assert "KV tokens" in out.stderr and "GiB" in out.stderr and "Traceback" not in out.stderr


def test_an_unwritable_save_dir_is_one_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = servopt(*BASE, "--concurrency", "2", "--num_requests", "20", "--save_dir", str(blocker))
    assert out.returncode == 2 and "--save_dir" in out.stderr and "Traceback" not in out.stderr


def test_disagg_prints_and_returns_the_disagg_band(tmp_path):
    from servopt.calibrate.model import Profile

    bands = {m: {"every backend": [-0.1, 0.1]} for m in ("ttft_ms", "tpot_ms", "output_tok_s_per_gpu")}
    path = tmp_path / "p.yaml"
    path.write_text(Profile((), bands=bands, bands_disagg={"ttft_ms": {"trtllm": [-0.5, 2.0]}}).to_yaml())
    args = (*BASE, "--mode", "disagg", "--decode_workers", "2", "--request_rate", "2", "--num_requests", "200",
            "--isl", "1000", "--osl", "100", "--calibration", str(path))  # fmt: skip
    out = servopt(*args, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    ttft, tpot = doc["ttft_ms"]["mean"], doc["tpot_ms"]["mean"]
    assert doc["bands_80"]["ttft_ms"] == pytest.approx([ttft * math.exp(-0.5), ttft * math.exp(2.0)])
    assert doc["bands_80"]["tpot_ms"] == pytest.approx([tpot * math.exp(-0.1), tpot * math.exp(0.1)])
    text = servopt(*args).stdout
    assert (
        f"80% band (held-out residuals): TTFT ms {ttft * math.exp(-0.5):.4g}-{ttft * math.exp(2.0):.4g}, "
        in text
    )
