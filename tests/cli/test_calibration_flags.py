"""``--calibration default|none|PATH`` on the search commands (and the YAML's ``calibration:``):
the shipped profile by default, said in every output; none the raw model; each worker its own
scope; a search row equal to the calibrated ``cli estimate`` of its configuration."""

import json
import subprocess
import sys

import pytest
import yaml

from servopt.calibrate.model import default_profile
from servopt.search.conventions import DISAGG_TTFT_FACTOR

BASE = ["--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm"]
RAW_LINE = "calibration: none (the raw model, comparable with aiconfigurator 0.12.0)"


def servopt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "servopt", *args], capture_output=True, text=True, timeout=600
    )


def _json(*args: str) -> dict:
    out = servopt(*args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def calibrated_doc() -> dict:
    return _json("cli", "default", *BASE)


@pytest.fixture(scope="module")
def raw_doc() -> dict:
    return _json("cli", "default", *BASE, "--calibration", "none")


def test_the_default_is_the_shipped_profile_and_none_is_the_raw_model(calibrated_doc, raw_doc):
    profile = default_profile()
    cal = calibrated_doc["calibration"]
    assert (cal["profile"], cal["measurements"]) == ("default profile", profile.measurements)
    adj, scope = profile.adjustments("trtllm", "h200_sxm")
    assert cal["workers"]["agg"] == {"system": "h200_sxm", "scope": scope, **adj._asdict()}
    assert {e["name"]: sorted(e["calibration"]["workers"]) for e in calibrated_doc["experiments"]} == {
        "agg": ["agg"],
        "disagg": ["decode", "prefill"],
    }
    # none: no calibration anywhere, so its documents are the raw model's, unchanged.
    assert "calibration" not in raw_doc and all("calibration" not in e for e in raw_doc["experiments"])
    assert calibrated_doc["best"] != raw_doc["best"]
    same = _json("cli", "default", *BASE, "--calibration", "default")
    assert same == calibrated_doc


def test_the_text_report_says_which_calibration():
    out = servopt("cli", "default", *BASE, "--top_n", "1")
    assert out.returncode == 0, out.stderr
    assert f"calibrated: default profile, {default_profile().measurements} measurements" in out.stdout
    out = servopt("cli", "default", *BASE, "--top_n", "1", "--calibration", "none")
    assert RAW_LINE in out.stdout


def _estimate(*args: str) -> dict:
    return _json("cli", "estimate", "--model", "QWEN3_32B", "--system", "h200_sxm", *args)


def test_a_search_row_equals_the_calibrated_estimate_of_its_configuration(calibrated_doc):
    agg = calibrated_doc["agg"][0]
    est = _estimate("--mode", "agg", "--tp", str(agg["tp"]), "--batch_size", str(agg["batch_size"]),
                    "--ctx_tokens", str(agg["ctx_tokens"]))  # fmt: skip
    assert (agg["ttft_ms"], agg["tpot_ms"]) == (est["ttft_ms"], est["tpot_ms"])
    assert agg["tokens_per_s_per_gpu"] == pytest.approx(est["tokens_per_s_per_gpu"], rel=1e-12)
    dis = calibrated_doc["disagg"][0]
    # The seed's correction scales (1.1 prefill, 1.08 decode) apply first, then the profile.
    dec = _estimate("--mode", "static_gen", "--tp", str(dis["decode_tp"]), "--batch_size",
                    str(dis["decode_batch_size"]), "--latency_correction_scale", "1.08")  # fmt: skip
    assert dis["tpot_ms"] == dec["tpot_ms"]
    pre = _estimate("--mode", "static_ctx", "--tp", str(dis["prefill_tp"]), "--batch_size",
                    str(dis["prefill_batch_size"]), "--latency_correction_scale", "1.1")  # fmt: skip
    # The peer's disaggregated TTFT factor multiplies the engine's latency, not the client's
    # request overhead.
    overhead = pre["config"]["calibration"]["request_overhead_ms"]
    assert dis["ttft_ms"] == pytest.approx(
        DISAGG_TTFT_FACTOR * (pre["ttft_ms"] - overhead) + overhead, rel=1e-12
    )


def test_saved_config_yaml_carries_the_calibration_and_reruns(tmp_path, raw_doc):
    out = servopt("cli", "default", *BASE, "--calibration", "none", "--json", "--save_dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    (config,) = tmp_path.glob("*/config.yaml")
    saved = yaml.safe_load(config.read_text())
    assert {e["calibration"] for e in saved.values()} == {"none"}
    assert _json("cli", "exp", "--yaml_path", str(config)) == raw_doc


def _experiment_yaml(tmp_path, **extra) -> str:
    body = {"mode": "patch", "serving_mode": "agg", "model_name": "QWEN3_32B", "total_gpus": 8,
            "system_name": "h200_sxm", **extra}  # fmt: skip
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"agg": body}))
    return str(path)


def test_the_yaml_key_and_the_flag_that_overrides_it(tmp_path, raw_doc):
    path = _experiment_yaml(tmp_path, calibration="none")
    doc = _json("cli", "exp", "--yaml_path", path)
    assert "calibration" not in doc and doc["agg"] == [r for r in raw_doc["agg"]]
    doc = _json("cli", "exp", "--yaml_path", path, "--calibration", "default")
    assert doc["calibration"]["profile"] == "default profile"


def test_a_bad_calibration_value_names_file_line_and_key(tmp_path):
    path = _experiment_yaml(tmp_path, calibration="nowhere.yaml")
    out = servopt("cli", "exp", "--yaml_path", path)
    assert out.returncode == 2
    assert "exp.yaml:" in out.stderr and "calibration" in out.stderr and "nowhere.yaml" in out.stderr
    out = servopt("cli", "default", *BASE, "--calibration", "nowhere.yaml")
    assert out.returncode == 2 and "--calibration" in out.stderr and "Traceback" not in out.stderr
    good = _experiment_yaml(tmp_path, calibration="none")
    out = servopt("cli", "exp", "--yaml_path", good, "--calibration", "nowhere.yaml")
    assert out.returncode == 2 and "--calibration" in out.stderr and "Traceback" not in out.stderr


PROFILE = """schema: 1
kind: servopt-calibration
scopes:
- {scope: {backend: trtllm, system: b200_sxm}, request_overhead_ms: 30, iteration_overhead_ms: 0.5}
- {scope: {backend: trtllm}, request_overhead_ms: 60, decode_scale: 1.1}
provenance: {measurements_fitted: 7}
"""


def test_each_disagg_pool_takes_its_own_scope_and_a_relative_path_is_the_yamls(tmp_path):
    (tmp_path / "p.yaml").write_text(PROFILE)
    path = tmp_path / "exp.yaml"
    body = {"mode": "patch", "serving_mode": "disagg", "model_name": "QWEN3_32B", "total_gpus": 8,
            "system_name": "b200_sxm", "decode_system_name": "h200_sxm", "calibration": "p.yaml"}  # fmt: skip
    path.write_text(yaml.safe_dump({"hetero": body}))
    out = servopt("cli", "exp", "--yaml_path", str(path), "--json", "--save_dir", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    cal = json.loads(out.stdout)["calibration"]
    assert cal["profile"] == str((tmp_path / "p.yaml").resolve()) and cal["measurements"] == 7
    pre, dec = cal["workers"]["prefill"], cal["workers"]["decode"]
    assert (pre["system"], pre["scope"], pre["request_overhead_ms"]) == (
        "b200_sxm",
        "trtllm on b200_sxm",
        30.0,
    )
    assert (dec["system"], dec["scope"], dec["decode_scale"]) == ("h200_sxm", "trtllm", 1.1)
    (config,) = (tmp_path / "run").glob("*/config.yaml")
    assert yaml.safe_load(config.read_text())["hetero"]["calibration"] == cal["profile"]


def test_rate_sizing_applies_and_names_the_profile():
    from servopt.report.schema import SizingDoc

    load = ["--total_gpus", "16", "--request_rate", "4", "--num_requests", "300"]
    args = ["cli", "default", "--model", "QWEN3_32B", "--system", "h200_sxm", *load]
    cal, raw = _json(*args), _json(*args, "--calibration", "none")
    SizingDoc.model_validate(cal)
    adj, scope = default_profile().adjustments("trtllm", "h200_sxm")
    assert cal["calibration"] == {"profile": "default profile", "scope": scope,
                                  "measurements": default_profile().measurements, **adj._asdict()}  # fmt: skip
    assert "calibration" not in raw
    # The request overhead is part of every simulated TTFT: no calibrated TTFT is below it.
    assert cal["best"]["simulated"]["ttft_ms"]["p50"] >= adj.request_overhead_ms
    text = servopt(*args).stdout
    assert f"calibrated: default profile, {default_profile().measurements} measurements" in text
