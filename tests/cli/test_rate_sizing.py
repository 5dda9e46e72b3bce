"""`servopt cli default --request_rate`: rate sizing end to end, in a subprocess."""

import json
import math
import subprocess
import sys

import pytest

from servopt.calibrate.model import default_profile
from servopt.report.schema import SizingDoc

BASE = ["cli", "default", "--model", "QWEN3_32B", "--system", "h200_sxm", "--isl", "2000", "--osl", "200"]


def servopt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "servopt", *args], capture_output=True, text=True, timeout=900
    )


def test_json_names_the_deployment_and_its_simulated_percentiles():
    price = ["--gpu_hour_price", "h200_sxm=2.5,b200_sxm=4"]
    out = servopt(
        *BASE, "--total_gpus", "64", "--request_rate", "4", "--ttft_percentile", "90", *price, "--json"
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    best = doc["best"]
    for key in ("ttft_ms", "tpot_ms"):
        assert set(best["analytic"][key]) == {"mean", "p50", "p90", "p99"}
    assert best["binding"] in ("ttft", "tpot")
    # Cost at the given price: GPUs x USD/h; per million output tokens at 4 req/s x 200 tokens.
    cost = best["cost"]
    assert cost["usd_per_gpu_hour"] == {"h200_sxm": 2.5}
    assert cost["usd_per_hour"] == pytest.approx(2.5 * best["total_gpus_used"])
    assert cost["usd_per_million_output_tokens"] == pytest.approx(
        cost["usd_per_hour"] / (4 * 200 * 3600) * 1e6
    )
    assert best["total_gpus_used"] == sum(w["workers"] * w["gpus_per_worker"] for w in best["workers"])
    for key in ("ttft_ms", "tpot_ms"):
        assert set(best["simulated"][key]) == {"mean", "p50", "p90", "p99"}
    assert best["at_targets"]["ttft_p90_ms"] <= 1000 and best["at_targets"]["tpot_p99_ms"] <= 40
    assert doc["load"]["request_rate"] == 4 and doc["targets"]["ttft_percentile"] == 90
    assert doc["search"]["simulations"] > 0
    # The answer at the 80% band's pessimistic end: its simulated percentiles times e^high.
    bands = default_profile().bands
    rob = doc["robustness"]
    ttft = best["at_targets"]["ttft_p90_ms"] * math.exp(bands["ttft_ms"]["trtllm"][1])
    tpot = best["at_targets"]["tpot_p99_ms"] * math.exp(bands["tpot_ms"]["trtllm"][1])
    assert rob["pessimistic"] == pytest.approx({"ttft_p90_ms": ttft, "tpot_p99_ms": tpot})
    assert rob["holds"] == (ttft <= 1000 and tpot <= 40)
    SizingDoc.model_validate(doc)


def test_concurrency_sizes_a_closed_loop():
    out = servopt(*BASE, "--total_gpus", "64", "--concurrency", "32", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["load"]["kind"] == "closed_loop" and doc["load"]["concurrency"] == 32
    assert doc["load"]["request_rate"] is None
    best = doc["best"]
    assert best["at_targets"]["ttft_p99_ms"] <= 1000 and best["at_targets"]["tpot_p99_ms"] <= 40
    assert best["total_gpus_used"] == sum(w["workers"] * w["gpus_per_worker"] for w in best["workers"])


def test_max_goodput_per_gpu_reports_goodput():
    args = ["--total_gpus", "16", "--request_rate", "4", "--objective", "max_goodput_per_gpu", "--json"]
    out = servopt(*BASE, *args)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["objective"] == "max_goodput_per_gpu"
    best, g = doc["best"], doc["best"]["goodput"]
    assert best["total_gpus_used"] <= 16 and 0 < g["attainment"] <= 1
    assert g["requests_per_s"] == pytest.approx(4 * g["attainment"])
    assert g["per_gpu"] == pytest.approx(g["requests_per_s"] / best["total_gpus_used"])
    for other in (doc["agg"], doc["disagg"]):
        assert other is None or other["goodput"]["per_gpu"] <= g["per_gpu"] + 1e-12


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--request_rate", "0"], "request_rate"),
        (["--request_rate", "nan"], "request_rate"),
        (["--request_rate", "4", "--ttft_percentile", "100"], "ttft_percentile"),
        (["--request_rate", "4", "--tpot_percentile", "0"], "tpot_percentile"),
        (["--request_rate", "4", "--objective", "max_goodput"], "objective"),
        (["--ttft_percentile", "99"], "ttft_percentile"),
        (["--tpot_percentile", "99"], "tpot_percentile"),
        (["--request_rate", "4", "--concurrency", "8"], "concurrency"),
        (["--concurrency", "0"], "concurrency"),
        (["--concurrency", "8", "--objective", "max_goodput_per_gpu"], "objective"),
        (["--concurrency", "8", "--ttft_percentile", "100"], "ttft_percentile"),
        (["--request_rate", "4", "--gpu_hour_price", "h200_sxm"], "gpu_hour_price"),
        (["--request_rate", "4", "--gpu_hour_price", "h200_sxm=-1"], "gpu_hour_price"),
        (["--request_rate", "4", "--gpu_hour_price", "h200_sxm=nan"], "gpu_hour_price"),
        (["--request_rate", "4", "--gpu_hour_price", "h300=2"], "gpu_hour_price"),
        (["--request_rate", "4", "--gpu_hour_price", "b200_sxm=2"], "gpu_hour_price"),
        (["--request_rate", "4", "--gpu_hour_price", "h200_sxm=2,h200_sxm=3"], "gpu_hour_price"),
        (["--gpu_hour_price", "h200_sxm=2"], "gpu_hour_price"),
        (["--request_rate", "4", "--decode_system", "h300"], "decode_system"),
        (["--request_rate", "4", "--objective", "min_cost"], "gpu_hour_price"),
        (
            ["--request_rate", "4", "--objective", "min_cost", "--gpu_hour_price", "b200_sxm=5"],
            "gpu_hour_price",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(extra, field):
    out = servopt(*BASE, "--total_gpus", "64", *extra)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in out.stderr


def test_min_cost_names_the_system_without_a_price():
    price = ["--gpu_hour_price", "h200_sxm=3.5"]
    out = servopt(*BASE, "--total_gpus", "64", "--request_rate", "4", "--decode_system", "h100_sxm",
                  "--objective", "min_cost", *price)  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "gpu_hour_price" in lines[0] and "no price for h100_sxm" in lines[0]


def test_min_cost_on_one_system_is_min_gpus_times_the_price():
    args = [*BASE, "--total_gpus", "64", "--request_rate", "4", "--json"]
    by_gpus = json.loads(servopt(*args).stdout)
    out = servopt(*args, "--objective", "min_cost", "--gpu_hour_price", "h200_sxm=3.5")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["objective"] == "min_cost" and doc["decode_system"] is None
    assert doc["best"]["workers"] == by_gpus["best"]["workers"]
    assert doc["best"]["cost"]["usd_per_hour"] == pytest.approx(3.5 * by_gpus["best"]["total_gpus_used"])


# Qwen3-32B at 10 req/s (isl 4000, osl 1000; docs/sizing.md's min_cost example, the raw model's),
# decode on h100_sxm.
HETERO = ["cli", "default", "--model", "QWEN3_32B", "--system", "h200_sxm", "--decode_system", "h100_sxm",
          "--total_gpus", "64", "--request_rate", "10", "--calibration", "none", "--json"]  # fmt: skip
PRICES = "h200_sxm=3.5,h100_sxm=2"


def test_a_cheaper_decode_system_changes_the_least_cost_answer():
    fewest = servopt(*HETERO, "--gpu_hour_price", PRICES)
    cheapest = servopt(*HETERO, "--gpu_hour_price", PRICES, "--objective", "min_cost")
    assert fewest.returncode == 0 and cheapest.returncode == 0, fewest.stderr + cheapest.stderr
    g, c = json.loads(fewest.stdout), json.loads(cheapest.stdout)
    assert c["decode_system"] == "h100_sxm" and c["objective"] == "min_cost"
    # The fewest GPUs stay on h200_sxm; the least cost moves decode to the cheaper h100_sxm and
    # pays for more GPUs with fewer dollars.
    assert set(g["best"]["gpus_by_system"]) == {"h200_sxm"}
    assert c["best"]["mode"] == "disagg" and c["best"]["gpus_by_system"]["h100_sxm"] > 0
    assert c["best"]["total_gpus_used"] > g["best"]["total_gpus_used"]
    assert c["best"]["cost"]["usd_per_hour"] < g["best"]["cost"]["usd_per_hour"]
    assert c["best"]["cost"]["usd_per_hour"] == pytest.approx(
        sum(n * {"h200_sxm": 3.5, "h100_sxm": 2.0}[s] for s, n in c["best"]["gpus_by_system"].items())
    )
    decode = next(w for w in c["best"]["workers"] if w["role"] == "decode")
    assert decode["system"] == "h100_sxm"
    assert c["best"]["at_targets"]["ttft_p99_ms"] <= 1000 and c["best"]["at_targets"]["tpot_p99_ms"] <= 40


def test_a_rate_no_deployment_in_the_budget_serves_exits_1():
    out = servopt(*BASE, "--total_gpus", "2", "--request_rate", "500")
    assert out.returncode == 1
    assert "request_rate" in out.stderr and "Traceback" not in out.stderr


WORKLOAD_YAML = """
sized:
  mode: patch
  serving_mode: agg
  model_name: QWEN3_32B
  total_gpus: 16
  system_name: h200_sxm
  isl: 2000
  osl: 200
  workload:
    request_rate: 4
    ttft_percentile: 90
    gpu_hour_price: {h200_sxm: 3.25}
"""


def test_exp_with_a_workload_sizes_it_and_saves_the_workload(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(WORKLOAD_YAML)
    out = servopt("cli", "exp", "--yaml_path", str(path), "--json", "--save_dir", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)["experiments"]["sized"]
    assert doc["modes"] == ["agg"] and doc["agg"] is not None and doc["disagg"] is None
    assert doc["load"]["request_rate"] == 4 and doc["targets"]["ttft_percentile"] == 90
    assert doc["best"]["cost"]["usd_per_hour"] == pytest.approx(3.25 * doc["best"]["total_gpus_used"])
    saved = (tmp_path / "out" / "config.yaml").read_text()
    assert "workload:" in saved and "request_rate: 4.0" in saved and "h200_sxm: 3.25" in saved
    again = servopt("cli", "exp", "--yaml_path", str(tmp_path / "out" / "config.yaml"), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["experiments"]["sized"]["best"] == doc["best"]


def test_exp_workload_unknown_key_exits_2_naming_it(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(WORKLOAD_YAML.replace("ttft_percentile: 90", "ttft_pct: 90"))
    out = servopt("cli", "exp", "--yaml_path", str(path))
    assert out.returncode == 2 and "workload.ttft_pct" in out.stderr and "Traceback" not in out.stderr


def test_exp_workload_sizes_decode_on_its_decode_system_at_least_cost(tmp_path):
    path = tmp_path / "exp.yaml"
    text = WORKLOAD_YAML.replace("serving_mode: agg", "serving_mode: disagg\n  decode_system_name: h100_sxm")
    text = text.replace("gpu_hour_price: {h200_sxm: 3.25}", "gpu_hour_price: {h200_sxm: 3.25, h100_sxm: 2}")
    path.write_text(text + "    objective: min_cost\n")
    out = servopt("cli", "exp", "--yaml_path", str(path), "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)["experiments"]["sized"]
    assert doc["objective"] == "min_cost" and doc["decode_system"] == "h100_sxm" and doc["agg"] is None
    by_role = {w["role"]: w["system"] for w in doc["best"]["workers"]}
    assert by_role == {"prefill": "h200_sxm", "decode": "h100_sxm"}
    split = doc["best"]["gpus_by_system"]
    assert doc["best"]["cost"]["usd_per_hour"] == pytest.approx(
        3.25 * split["h200_sxm"] + 2 * split["h100_sxm"]
    )
