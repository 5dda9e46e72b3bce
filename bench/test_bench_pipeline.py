"""End-to-end search speed: ``cli default`` on the reference problems, warm, plus the peer.

Run:  pytest bench/test_bench_pipeline.py --benchmark-enable
      SERVOPT_BENCH_PEER=1 pytest bench/test_bench_pipeline.py --benchmark-enable   # + aiconfigurator

servopt runs (5 rounds: the VM is noisy) in a subprocess exactly as a user runs it (``servopt cli default ... --json``), after
``servopt perfdb warm`` (perf database and the kernels' ahead-of-time module built, as a first run
leaves them) and one warm-up run. With SERVOPT_BENCH_PEER=1 the
peer's CLI runs on the same problem, same SLA, in the same benchmark group, so the report shows
the ratio side by side (the peer takes 15-100 s a run; one round each). Deterministic counters
(candidates evaluated, options after pruning, CP-SAT solves and deterministic time) go to
``extra_info`` from an in-process run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

# (servopt model, peer HF id, total GPUs, system) — the benchmark issue's reference problems.
PROBLEMS = [
    ("QWEN3_32B", "Qwen/Qwen3-32B", 8, "h200_sxm"),
    ("QWEN3_32B", "Qwen/Qwen3-32B", 512, "h200_sxm"),
    ("QWEN3_32B", "Qwen/Qwen3-32B", 4096, "h200_sxm"),
    ("LLAMA3.1_70B", "meta-llama/Meta-Llama-3.1-70B", 64, "h100_sxm"),
    ("QWEN3_30B_A3B", "Qwen/Qwen3-30B-A3B", 64, "h200_sxm"),
    ("QWEN3_235B", "Qwen/Qwen3-235B-A22B", 64, "h200_sxm"),
    ("DEEPSEEK_V3", "deepseek-ai/DeepSeek-V3", 32, "h200_sxm"),
    ("DEEPSEEK_V3", "deepseek-ai/DeepSeek-V3", 512, "h200_sxm"),
]
# The peer's console script: on PATH, or beside this interpreter (a venv that is not activated).
PEER = shutil.which("aiconfigurator") or shutil.which("aiconfigurator", path=os.path.dirname(sys.executable))
SLA = ["--isl", "4000", "--osl", "1000", "--ttft", "1000", "--tpot", "40"]


def _servopt(model: str, gpus: int, system: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "servopt",
            "cli",
            "default",
            "--model",
            model,
            "--total_gpus",
            str(gpus),
            "--system",
            system,
            *SLA,
            "--json",
            "--calibration",  # the raw model, like for like with the peer
            "none",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _warm(system: str) -> None:
    """What a first run leaves behind, built now (not in the background while timing): the perf
    database and the kernels' ahead-of-time module (``servopt perfdb warm``)."""
    subprocess.run([sys.executable, "-m", "servopt", "perfdb", "warm", "--system", system], check=False)


def _counters(model: str, gpus: int, system: str) -> dict:
    from servopt.config import default_experiments
    from servopt.pipeline import run_experiments

    result = run_experiments(
        default_experiments(model, gpus, system, ttft=1000.0, tpot=40.0, calibration="none")
    )
    info = {}
    for run in result.feasible:
        c = run.mode.counters
        info[run.name] = {
            "candidates_evaluated": int(sum(len(t.candidates) for t in run.tables.values())),
            "options_in": c.options_in,
            "options_kept": c.options_kept,
            "solves": c.solves,
            "deterministic_time": round(c.deterministic_time, 6),
            "best_tokens_per_s_per_gpu": round(run.mode.identical.tokens_per_s_per_gpu, 3),
            "packed_gain": round(run.mode.packed_gain, 5),
        }
    return info


@pytest.mark.parametrize(
    ("model", "hf_id", "gpus", "system"), PROBLEMS, ids=[f"{p[0]}-{p[2]}-{p[3]}" for p in PROBLEMS]
)
def test_bench_cli_default(benchmark, model, hf_id, gpus, system):
    benchmark.group = f"cli-default {model} {gpus}x{system}"
    benchmark.name = "servopt"
    _warm(system)
    _servopt(model, gpus, system)  # warm-up
    doc = benchmark.pedantic(_servopt, args=(model, gpus, system), rounds=5, iterations=1)
    benchmark.extra_info["best_tokens_per_s_per_gpu"] = doc["best"]["tokens_per_s_per_gpu"]
    benchmark.extra_info["best_mode"] = doc["best"]["mode"]
    benchmark.extra_info.update(_counters(model, gpus, system))


def _peer(hf_id: str, gpus: int, system: str) -> None:
    subprocess.run(
        [PEER, "cli", "default", "--model", hf_id, "--total-gpus", str(gpus), "--system", system, *SLA],
        capture_output=True,
        check=True,
    )


@pytest.mark.skipif(PEER is None, reason="aiconfigurator (the peer) is not installed")
@pytest.mark.skipif(
    not os.environ.get("SERVOPT_BENCH_PEER"), reason="set SERVOPT_BENCH_PEER=1 to time the peer"
)
@pytest.mark.parametrize(
    ("model", "hf_id", "gpus", "system"), PROBLEMS, ids=[f"{p[0]}-{p[2]}-{p[3]}" for p in PROBLEMS]
)
def test_bench_cli_default_peer(benchmark, model, hf_id, gpus, system):
    benchmark.group = f"cli-default {model} {gpus}x{system}"
    benchmark.name = "aiconfigurator"
    benchmark.pedantic(_peer, args=(hf_id, gpus, system), rounds=1, iterations=1)
