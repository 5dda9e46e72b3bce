"""Simulator speed: simulated requests per second, agg and disagg side by side, and a batch.

- One agg candidate (Qwen3-32B tp2 on h200_sxm, TRT-LLM policy), isl 4000 / osl 1000, closed loop
  of 64 clients, 10,000 requests; target >= 200,000 simulated requests/s warm on one core (NVIDIA's
  DynoSim, the fastest published, replays ~10,000 requests/s).
- The same with a disaggregated replica (1 prefill tp2 + 2 decode tp2 workers), reported beside it.
- A batch of 1,000 candidates x 2,000 requests (4 layouts x 250 concurrencies x engine policies),
  threads over both cores; target <= 10 s on this 2-core machine.

Step tables are built once per layout outside the timed region (a search builds them once per
layout too). ``extra_info`` holds requests/s and passes simulated.

Run: ``pytest bench/test_bench_simulate.py --benchmark-enable``
"""

from __future__ import annotations

from functools import cache

import pytest

from servopt.evaluate.candidates import ModelSetup
from servopt.evaluate.single import quant_modes
from servopt.hardware import load_system
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model
from servopt.perf_db.database import open_database
from servopt.simulate.build import WorkerPlan, build_deployment
from servopt.simulate.engine import run, run_many
from servopt.simulate.policy import engine_policy
from servopt.simulate.workload import Lengths, Load, make_requests

ISL, OSL = 4000, 1000


@cache
def _setup(backend: str = "trtllm"):
    arch = resolve_model("QWEN3_32B")
    db = open_database("h200_sxm", backend)
    quant = quant_modes(arch, None, None, None, None, db=db, backend=backend)
    return db, ModelSetup(arch, backend, quant, load_system("h200_sxm"), db.version, 0)


def _deployment(roles: tuple[tuple[str, Layout, int], ...], backend: str = "trtllm", max_osl: int = OSL):
    db, setup = _setup(backend)
    plans = [WorkerPlan(role, layout, n, engine_policy(backend)) for role, layout, n in roles]
    return build_deployment(db, setup, plans, max_isl=ISL, max_osl=max_osl, prompt_lengths=[ISL])


@pytest.mark.benchmark(group="simulate-10k")
@pytest.mark.parametrize(
    "mode",
    ["agg", "disagg"],
)
def test_simulate_10k_requests(benchmark, mode):
    tp2 = Layout(2, 1, 1, 1, 1)
    roles = (("agg", tp2, 1),) if mode == "agg" else (("prefill", tp2, 1), ("decode", tp2, 2))
    dep = _deployment(roles)
    req = make_requests(Load(concurrency=64), Lengths(ISL, OSL), 10_000, seed=0)
    raw = run(dep, req, clients=64)  # compile / warm
    assert (raw.t_done > 0).all()
    result = benchmark(run, dep, req, clients=64)
    seconds = benchmark.stats.stats.median if benchmark.stats else None
    benchmark.extra_info["passes"] = result.iterations
    if seconds:
        benchmark.extra_info["requests_per_s"] = 10_000 / seconds


@pytest.mark.benchmark(group="simulate-batch")
def test_simulate_1000_candidates_x_2000_requests(benchmark):
    layouts = [Layout(tp, 1, 1, 1, 1) for tp in (1, 2, 4, 8)]
    deployments = [_deployment((("agg", lay, 1),), max_osl=OSL) for lay in layouts]
    jobs = []
    for dep in deployments:
        for c in range(1, 251):
            req = make_requests(Load(concurrency=c), Lengths(ISL, OSL, 0.2, 0.2), 2_000, seed=c)
            jobs.append((dep, req, c))
    assert len(jobs) == 1000
    results = benchmark.pedantic(run_many, args=(jobs,), rounds=1, iterations=1)
    assert all((r.t_done > 0).all() for r in results)
    benchmark.extra_info["candidates"] = len(jobs)
    benchmark.extra_info["requests"] = 2_000 * len(jobs)
