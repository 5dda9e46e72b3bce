"""How faithfully `servopt emulate` serves the simulator's timings to a real client (AIPerf).

Replays the requests AIPerf sent (its `profile_export.jsonl`: send times, prompt and completion
token counts as the emulator reported them) through the simulator on the same deployment, and
compares per-request TTFT, E2E and TPOT as AIPerf measured them with the simulated ones: the
difference is what real time, HTTP and the event loop add.

    python experiments/emulate_vs_simulate.py AIPERF_DIR --model QWEN3_32B --tp 2 [--speedup 1]
        [--mode disagg --prefill_workers X --decode_workers Y]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("aiperf_dir", type=Path)
    ap.add_argument("--model", required=True)
    ap.add_argument("--system", default="h200_sxm")
    ap.add_argument("--backend", default="trtllm")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--mode", choices=("agg", "disagg"), default="agg")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--prefill_workers", type=int, default=1)
    ap.add_argument("--decode_workers", type=int, default=1)
    ap.add_argument("--speedup", type=float, default=1.0)
    ap.add_argument("--max_model_len", type=int, default=16384)
    args = ap.parse_args(argv)

    from servopt.cli.deployment_flags import worker_plans
    from servopt.evaluate.candidates import ModelSetup
    from servopt.evaluate.single import quant_modes
    from servopt.hardware import load_system
    from servopt.models.registry import resolve_model
    from servopt.perf_db.database import open_database
    from servopt.simulate.build import build_deployment
    from servopt.simulate.engine import run
    from servopt.simulate.policy import engine_policy
    from servopt.simulate.workload import Requests

    rows = [json.loads(line) for line in (args.aiperf_dir / "profile_export.jsonl").open()]
    rows = [r for r in rows if not r["metadata"].get("was_cancelled")]
    rows.sort(key=lambda r: r["metadata"]["request_start_ns"])
    start = np.array([r["metadata"]["request_start_ns"] for r in rows], dtype=np.float64)
    arrival_ms = (start - start[0]) / 1e6 * args.speedup
    isl = np.array([r["metrics"]["usage_prompt_tokens"]["value"] for r in rows], dtype=np.int64)
    osl = np.array([r["metrics"]["usage_completion_tokens"]["value"] for r in rows], dtype=np.int64)
    measured = {
        "ttft_ms": np.array([r["metrics"]["time_to_first_token"]["value"] for r in rows]) * args.speedup,
        "e2e_ms": np.array([r["metrics"]["request_latency"]["value"] for r in rows]) * args.speedup,
    }
    measured["tpot_ms"] = (measured["e2e_ms"] - measured["ttft_ms"]) / np.maximum(osl - 1, 1)
    profiled = np.array([r["metadata"]["benchmark_phase"] == "profiling" for r in rows])

    arch = resolve_model(args.model)
    db = open_database(args.system, args.backend)
    quant = quant_modes(arch, None, None, None, None, db=db, backend=args.backend)
    setup = ModelSetup(arch, args.backend, quant, load_system(args.system), db.version, 0)
    shared = {"tp": args.tp, "pp": 1, "dp": 1, "moe_tp": None, "moe_ep": None}
    counts = {"agg": args.workers, "prefill": args.prefill_workers, "decode": args.decode_workers}
    plans = worker_plans(arch, args.mode, engine_policy(args.backend), shared, {}, {}, counts)
    dep = build_deployment(
        db,
        setup,
        plans,
        max_isl=args.max_model_len - 1,
        max_osl=args.max_model_len - 1,
        prompt_lengths=np.zeros(0, dtype=np.int64),
    )
    raw = run(dep, Requests(arrival_ms, isl, osl))
    simulated = {
        "ttft_ms": raw.t_first - raw.t_arrive,
        "e2e_ms": raw.t_done - raw.t_arrive,
        "tpot_ms": (raw.t_done - raw.t_first) / np.maximum(osl - 1, 1),
    }
    print(
        f"{profiled.sum()} profiled requests (AIPerf's warm-up excluded); ms, AIPerf vs replayed simulation"
    )
    print(f"{'metric':8} {'stat':5} {'AIPerf':>10} {'simulated':>10} {'diff':>8}")
    for key in ("ttft_ms", "tpot_ms", "e2e_ms"):
        a, s = measured[key][profiled], simulated[key][profiled]
        for stat, fa, fs in (
            ("mean", a.mean(), s.mean()),
            ("p50", *np.percentile([a, s], 50, axis=1)),
            ("p90", *np.percentile([a, s], 90, axis=1)),
            ("p99", *np.percentile([a, s], 99, axis=1)),
        ):
            print(f"{key:8} {stat:5} {fa:10.2f} {fs:10.2f} {100 * (fa / fs - 1):+7.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
