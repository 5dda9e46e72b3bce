"""Byte-for-byte snapshot of servopt's answers on a fixed set of problems (issue 11's "same answers").

    python experiments/answers_snapshot.py --write DIR    # run every problem, keep stdout + exit code
    python experiments/answers_snapshot.py --check DIR    # run again, compare byte for byte

Each problem runs the installed ``servopt`` in a subprocess with ``--json`` (the document holds no
wall-clock figures, only deterministic solver units), so a behaviour-preserving change must leave
every file identical. The set covers dense, MoE, MLA/wide-EP on each backend, disagg with a
decode_system, a packed deployment, an infeasible problem, cli estimate, cli simulate and rate
sizing, all on the raw model (``--calibration none``) but cli simulate and one search with the
shipped calibration profile.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Every problem but the last pins --calibration none (the raw model): their answers are the ones
# compared with aiconfigurator, unchanged when the shipped profile is refitted. cli simulate keeps
# the profile (its default since issue 16); "default_profile_qwen32b_64_h200" is the search with it.
NONE = ["--calibration", "none"]
D = ["servopt", "cli", "default", "--json", *NONE]

# fmt: off
PROBLEMS: dict[str, list[str]] = {
    "dense_qwen32b_512_h200": [*D, "--model", "QWEN3_32B", "--total_gpus", "512", "--system", "h200_sxm"],
    "dense_llama8b_vllm_h100": [
        *D,
        "--model",
        "LLAMA3.1_8B",
        "--total_gpus",
        "16",
        "--system",
        "h100_sxm",
        "--backend",
        "vllm",
    ],
    "packed_qwen32b_13_h200": [*D, "--model", "QWEN3_32B", "--total_gpus", "13", "--system", "h200_sxm"],
    "moe_qwen235b_64_h200": [*D, "--model", "QWEN3_235B_A22B", "--total_gpus", "64", "--system", "h200_sxm"],
    "moe_mixtral_sglang_16_h100": [
        *D,
        "--model",
        "MIXTRAL_8X7B",
        "--total_gpus",
        "16",
        "--system",
        "h100_sxm",
        "--backend",
        "sglang",
    ],
    "moe_gptoss120b_16_b200": [*D, "--model", "GPT_OSS_120B", "--total_gpus", "16", "--system", "b200_sxm"],
    "mla_dsv3_64_h200_trtllm": [*D, "--model", "DEEPSEEK_V3", "--total_gpus", "64", "--system", "h200_sxm"],
    "mla_wideep_dsv3_64_h200_sglang": [
        *D,
        "--model",
        "DEEPSEEK_V3",
        "--total_gpus",
        "64",
        "--system",
        "h200_sxm",
        "--backend",
        "sglang",
    ],
    "disagg_hetero_b200_h200": [
        "servopt",
        "cli",
        "exp",
        "--json",
        "--yaml_path",
        str(HERE / "hetero_b200_prefill_h200_decode.yaml"),
        *NONE,
    ],
    "infeasible_qwen32b_ttft1": [
        *D,
        "--model",
        "QWEN3_32B",
        "--total_gpus",
        "8",
        "--system",
        "h200_sxm",
        "--ttft",
        "1",
    ],
    "estimate_qwen32b_tp2": [
        "servopt",
        "cli",
        "estimate",
        "--json",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
        "--tp",
        "2",
        "--batch_size",
        "16",
        *NONE,
    ],
    "simulate_qwen32b_tp2_c8": [
        "servopt",
        "cli",
        "simulate",
        "--json",
        "--model",
        "QWEN3_32B",
        "--system",
        "h200_sxm",
        "--tp",
        "2",
        "--concurrency",
        "8",
        "--num_requests",
        "200",
    ],
    "rate_qwen32b_10rps": [
        *D,
        "--model",
        "QWEN3_32B",
        "--total_gpus",
        "64",
        "--system",
        "h200_sxm",
        "--request_rate",
        "10",
    ],
    "default_profile_qwen32b_64_h200": [
        "servopt", "cli", "default", "--json", "--model", "QWEN3_32B", "--total_gpus", "64", "--system",
        "h200_sxm",
    ],
}
# fmt: on


def run(name: str, argv: list[str]) -> bytes:
    proc = subprocess.run(argv, capture_output=True, check=False)
    return proc.stdout + f"\n# exit {proc.returncode}\n".encode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path)
    mode.add_argument("--check", type=Path)
    parser.add_argument("--only", nargs="*", default=None, help="problem names (default: all)")
    args = parser.parse_args()
    names = args.only or list(PROBLEMS)
    failures = 0
    for name in names:
        out = run(name, PROBLEMS[name])
        digest = hashlib.sha256(out).hexdigest()[:16]
        if args.write:
            args.write.mkdir(parents=True, exist_ok=True)
            (args.write / f"{name}.out").write_bytes(out)
            print(f"{name:34s} {digest} {len(out):8d} bytes", flush=True)
        else:
            want = (args.check / f"{name}.out").read_bytes()
            same = want == out
            failures += not same
            print(f"{name:34s} {digest} {'same' if same else 'DIFFERS'}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
