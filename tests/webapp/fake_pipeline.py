"""A stand-in for ``servopt.pipeline`` in the web app's tests (imported by the worker process).

It honours the pipeline contract (``run_experiments(experiments, *, progress, top_n) -> RunResult``,
``result_document(result)``, ``deployment_files(result, experiment_name, rank)`` and
``packed_deployment_files(result, experiment_name)``) with figures derived
deterministically from each experiment, so the API, queue and page can be tested without the solver.
``FAKE_PIPELINE_MODE`` picks a misbehaviour: ``ok`` (default), ``slow`` (sleeps
``FAKE_PIPELINE_DELAY_S`` per search), ``hang``, ``crash`` (the process dies), ``bug`` (an
unexpected exception) or ``infeasible`` (a ServoptError).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from servopt.errors import InfeasibleError

MODE_ENV = "FAKE_PIPELINE_MODE"
DELAY_ENV = "FAKE_PIPELINE_DELAY_S"
POINTS = 6


def _rows(experiment, top_n: int) -> list[dict]:
    rows = []
    for i in range(POINTS):
        gpus = max(1, experiment.total_gpus >> (i % 3))
        per_user = 20.0 + 15.0 * i
        per_gpu = 4000.0 / (1.0 + 0.35 * i) * (1.15 if experiment.serving_mode == "disagg" else 1.0)
        rows.append(
            {
                "mode": experiment.serving_mode,
                "tokens_per_s_per_gpu": np.float64(per_gpu),  # numpy scalars must reach the page as numbers
                "tokens_per_s_per_user": per_user,
                "ttft_ms": experiment.ttft * (0.3 + 0.1 * i),
                "tpot_ms": 1000.0 / per_user,
                "total_gpus_used": gpus,
                "layout": f"tp{min(gpus, 8)}pp1"
                if experiment.serving_mode == "agg"
                else f"1P(tp{gpus // 2 or 1})2D(tp1)",
                "batch_size": 8 * (i + 1),
                "memory_gib": math.nan if i == 0 else 60.5,  # "not computed" must reach the page as null
            }
        )
    rows.sort(key=lambda r: -float(r["tokens_per_s_per_gpu"]))
    return rows[:top_n]


@dataclass
class FakeRunResult:
    experiments: list
    top_n: int

    def to_json(self) -> dict:
        out = {"experiments": [], "pareto": [], "agg": [], "disagg": []}
        for exp in self.experiments:
            top = _rows(exp, self.top_n)
            pareto = [
                {
                    "experiment": exp.name,
                    "mode": exp.serving_mode,
                    "tokens_per_s_per_user": r["tokens_per_s_per_user"],
                    "tokens_per_s_per_gpu": r["tokens_per_s_per_gpu"],
                    "layout": r["layout"],
                    "chosen": j == 0,
                }
                for j, r in enumerate(top)
            ]
            out["experiments"].append(
                {
                    "name": exp.name,
                    "serving_mode": exp.serving_mode,
                    "best": top[0],
                    "top": top,
                    "pareto": pareto,
                }
            )
            out["pareto"].extend(pareto)
            out[exp.serving_mode].extend(top)
        out["best"] = max((e["best"] for e in out["experiments"]), key=lambda r: r["tokens_per_s_per_gpu"])
        winner = next(e["name"] for e in out["experiments"] if e["best"] is out["best"])
        # Budgets that are not a power of two leave GPUs for a second replica shape: packed wins.
        packed = self.experiments[0].total_gpus & (self.experiments[0].total_gpus - 1) != 0
        out["verdict"] = {
            "deploy": "packed" if packed else "identical",
            "experiment": winner,
            "mode": out["best"]["mode"],
            "headline": f"Deploy {winner} as {'packed' if packed else 'identical'} replicas",
            "why": ["fake"],
            "alternative": None,
        }
        return out


def run_experiments(experiments, *, progress=None, top_n=5):
    mode = os.environ.get(MODE_ENV, "ok")
    if mode == "crash":
        os._exit(3)
    if mode == "bug":
        raise RuntimeError("secret internal detail /etc/shadow")
    if mode == "infeasible":
        raise InfeasibleError("tpot", experiments[0].tpot, "no deployment meets the target (closest 12.5 ms)")
    steps = 5
    delay = float(os.environ.get(DELAY_ENV, "0")) if mode == "slow" else 0.0
    for step in range(steps):
        if progress is not None:
            progress(f"search {step + 1}/{steps}", step / steps)
        if mode == "hang":
            time.sleep(3600)
        time.sleep(delay / steps)
    if progress is not None:
        progress("done", 1.0)
    return FakeRunResult(list(experiments), top_n)


def result_document(result):
    return result.to_json()


def deployment_files(result, experiment_name, rank):
    exp = next(e for e in result.experiments if e.name == experiment_name)
    if rank > result.top_n:
        raise InfeasibleError("rank", rank, "no such row")
    return {
        "run.sh": f"#!/bin/sh\n# {exp.model_name} on {exp.system_name}, rank {rank}\n",
        "engine.yaml": f"tensor_parallel_size: {min(exp.total_gpus, 8)}\nmax_batch_size: {8 * rank}\n",
    }


def packed_deployment_files(result, experiment_name):
    exp = next(e for e in result.experiments if e.name == experiment_name)
    return {
        "k8s_deploy.yaml": f"# packed {exp.model_name}\n",
        "g1/run.sh": "#!/bin/sh\n",
        "g2/run.sh": "#!/bin/sh\n",
    }


def size_load(question: dict) -> dict:
    """Rate sizing's contract (``sizing.question.sizing_doc`` keywords -> its document), with
    figures derived from the question."""
    if os.environ.get(MODE_ENV) == "infeasible":
        raise InfeasibleError(
            "request_rate", question["request_rate"], "no deployment within the budget serves it"
        )
    gpus = max(1, min(question["total_gpus"], math.ceil((question["request_rate"] or 1.0) / 2)))
    figures = {"mean": 100.0, "p50": 90.0, "p90": 150.0, "p99": 200.0}
    system = question["system"]
    prices = dict(
        (name.strip(), float(usd))
        for name, usd in (e.split("=") for e in (question["gpu_hour_price"] or "").split(",") if e)
    )

    def answer(mode: str) -> dict:
        return {
            "mode": mode,
            "total_gpus_used": gpus,
            "gpus_by_system": {system: gpus},
            "workers": [
                {
                    "option": f"{mode} tp1 batch<=64",
                    "role": mode,
                    "workers": gpus,
                    "gpus_per_worker": 1,
                    "system": system,
                }
            ],
            "simulated": {"ttft_ms": figures, "tpot_ms": {k: v / 10 for k, v in figures.items()}},
            "analytic": {"ttft_ms": figures, "tpot_ms": None},
            "binding": "ttft",
            "goodput": {"attainment": 1.0, "requests_per_s": question["request_rate"], "per_gpu": 1.0},
            "cost": None
            if not prices
            else {
                "usd_per_gpu_hour": {system: prices[system]},
                "usd_per_hour": gpus * prices[system],
                "usd_per_million_output_tokens": None,
            },
            "at_targets": {"ttft_p99_ms": 200.0, "tpot_p99_ms": 20.0},
        }

    return {
        "model": question["model"],
        "system": question["system"],
        "decode_system": question["decode_system"],
        "backend": question["backend"],
        "backend_version": "1.0",
        "decode_backend_version": None,
        "objective": question["objective"],
        "modes": ["agg", "disagg"],
        "load": {"kind": "open_loop", "request_rate": question["request_rate"], "concurrency": question["concurrency"],
                 "arrival": question["arrival"], "isl": question["isl"], "osl": question["osl"],
                 "num_requests_simulated": 2000, "seed": 0},
        "targets": {"ttft_ms": question["ttft"], "tpot_ms": question["tpot"],
                    "ttft_percentile": question["ttft_percentile"], "tpot_percentile": question["tpot_percentile"]},
        "best": answer("agg"),
        "agg": answer("agg"),
        "disagg": None,
        "search": {"simulations": 3, "verification_failures": 1, "options_pruned": 2},
    }  # fmt: skip
