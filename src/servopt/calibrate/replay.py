"""A record's benchmark replayed through the simulator, built once and rerun under any adjustments.

The ``simulate`` predictor and the calibration fit share this: the deployment (op lists, step-time
tables, KV capacity) and the benchmark's requests are built once per record; each parameter set the
fit tries only reruns the kernel on the adjusted deployment (``servopt.simulate.adjust``).
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np

from servopt.calibrate.setups import Setup
from servopt.errors import ServoptError
from servopt.evaluate.candidates import ModelSetup
from servopt.evaluate.single import quant_modes
from servopt.models.registry import resolve_model
from servopt.perf_db.database import PerfDatabase, open_database
from servopt.perf_db.moe_kernel import KernelRows, stated_moe_kernel, with_moe_kernel
from servopt.simulate.adjust import Adjustments, adjust
from servopt.simulate.build import WorkerPlan, build_deployment
from servopt.simulate.engine import run
from servopt.simulate.metrics import summarize
from servopt.simulate.policy import engine_policy
from servopt.simulate.workload import Load, Requests, arrival_times_ms


@cache
def _open(system: str, backend: str, version: str, moe_kernel: KernelRows | None = None) -> PerfDatabase:
    db = open_database(system, backend, version)
    return db if moe_kernel is None else with_moe_kernel(db, moe_kernel)


def moe_kernel(setup: Setup) -> KernelRows | None:
    """The MoE kernel rows the setup's stated MoE backend runs, where the engine's own table measured
    another kernel for its quant (``servopt.perf_db.moe_kernel``); None: the engine's own rows."""
    backend = setup.stated.moe_backend if setup.stated else None
    return stated_moe_kernel(setup.backend, backend, setup.quant.moe)


def database(setup: Setup) -> PerfDatabase:
    """The perf database of the setup's (system, backend, version), MoE rows of its stated backend's
    kernel, opened once per process."""
    return _open(setup.system, setup.backend, setup.version, moe_kernel(setup))


def model_setup(setup: Setup, db: PerfDatabase) -> ModelSetup:
    """The ``ModelSetup`` ``cli estimate`` would build: quant defaults resolved against ``db``."""
    arch = resolve_model(setup.model)
    q = setup.quant
    quant = quant_modes(arch, q.gemm, q.moe, q.kvcache, q.fmha, db=db, backend=setup.backend)
    return ModelSetup(arch, setup.backend, quant, db.system, db.version, 0)


# How each benchmark campaign drew its requests, where the record itself does not say (facts from
# the campaign's own client configuration):
# - InferenceX (SemiAnalysis InferenceMAX README, "Benchmark Client Configuration"): bench_serving's
#   benchmark_serving.py, random dataset, --random-range-ratio 0.8 (old bench_serving semantics:
#   lengths uniform in [0.8 L, L], input and output), --num-prompts 10 x CONC, --max-concurrency
#   CONC, --request-rate inf: every request counts, the first wave included.
BENCH_RANGE_RATIO = {"InferenceX": 0.8}
BENCH_REQUESTS_PER_CLIENT = {"InferenceX": 10}
# A record that states neither: this many requests per client, every one measured.
DEFAULT_REQUESTS_PER_CLIENT = 10


def benchmark_requests(setup: Setup, clients: int, seed: int = 0) -> Requests:
    """The requests of the record's benchmark run on one replica: its count and its length
    distribution (lengths uniform in [ratio * L, L] per the campaign's client; fixed where nothing
    else is known), and its arrivals (a closed loop's are ignored; a burst's and a max-throughput
    run's all at t=0; an open loop's Poisson at the replica's share of the rate)."""
    rec = setup.record
    source = rec.source_name
    if setup.load == "closed_loop":
        n = rec.num_requests or BENCH_REQUESTS_PER_CLIENT.get(source, DEFAULT_REQUESTS_PER_CLIENT) * clients
    else:
        n = max(1, round(setup.num_requests / setup.replicas))
    ratio = rec.range_ratio if rec.lengths == "random" and rec.range_ratio is not None else None
    ratio = BENCH_RANGE_RATIO.get(source, ratio)
    rng = np.random.default_rng(seed)
    if ratio is None or ratio >= 1.0:
        isl = np.full(n, setup.isl, dtype=np.int64)
        osl = np.full(n, setup.osl, dtype=np.int64)
    else:
        isl = rng.integers(max(1, int(setup.isl * ratio)), setup.isl + 1, n).astype(np.int64)
        osl = rng.integers(max(1, int(setup.osl * ratio)), setup.osl + 1, n).astype(np.int64)
    arrival = np.zeros(n)
    if setup.load == "open_loop":
        load = Load(request_rate=setup.request_rate / setup.replicas, arrival="poisson")
        arrival = arrival_times_ms(load, n, np.random.default_rng(seed + 1))
    return Requests(arrival, isl, osl)


def worker_plans(setup: Setup, policy, stated: dict) -> list[WorkerPlan]:
    """One replica's workers at the engine's ``policy`` with the ``stated`` overrides: one agg
    worker, or the x prefill + y decode workers of a disaggregated setup (what ``cli simulate --mode
    disagg`` builds), whose stated flags are the decode workers' (``campaigns.stated_disagg``)."""
    if setup.prefill is None or setup.decode is None:
        kv_fraction = setup.stated.kv_fraction if setup.stated else None
        return [WorkerPlan("agg", setup.layout, 1, policy.with_overrides(**stated), kv_fraction)]
    return [
        WorkerPlan("prefill", setup.prefill.layout, setup.prefill.workers, policy),
        WorkerPlan("decode", setup.decode.layout, setup.decode.workers, policy.with_overrides(**stated)),
    ]


class Replayed(NamedTuple):
    """Figures over the measured requests, comparable with a record's: TTFT and TPOT are medians
    where the record states medians (InferenceX's history rows), else means, like the record."""

    ttft_ms: float
    tpot_ms: float
    output_tok_s_per_gpu: float  # over every GPU of the deployment
    e2e_ms: float
    preempted: int


class Replay:
    """The record's benchmark: one replica (agg, or disaggregated: x prefill + y decode workers, a
    shared prefill queue, the KV transfer from the system spec, :func:`worker_plans`), the engine's
    default scheduling (with the flags its campaign's script states: ``Setup.stated``), the load as
    it ran (a closed loop of the replica's
    clients starting together, as the benchmark clients do; or the replica's share of a burst or an
    open loop), the campaign's request count and length distribution, every request measured (the
    benchmarks report over all of them)."""

    def __init__(self, setup: Setup):
        self.setup = setup
        db = database(setup)
        model = model_setup(setup, db)
        # 0: an open-loop run (a burst is one with every arrival at t=0).
        self.clients = max(1, round(setup.replica_concurrency)) if setup.load == "closed_loop" else 0
        policy = engine_policy(setup.backend, model.system.gpu.mem_capacity_bytes)
        stated = setup.stated.policy_overrides() if setup.stated else {}
        self.requests = benchmark_requests(setup, self.clients)
        self.deployment = build_deployment(
            db,
            model,
            worker_plans(setup, policy, stated),
            max_isl=int(self.requests.isl.max()),
            max_osl=int(self.requests.osl.max()),
            prompt_lengths=self.requests.isl,
            # A stated token budget is the engine's; only a default one is sized to the prompts.
            size_token_budget=stated.get("max_num_tokens") is None,
        )
        self.mask = np.ones(len(self.requests.isl), dtype=bool)

    def run(self, adj: Adjustments = Adjustments()) -> Replayed:
        deployment = adjust(self.deployment, adj)
        raw = run(deployment, self.requests, clients=self.clients, itl_weight=self.mask.astype(np.float64))
        kv_total = sum(k.kv_tokens * k.count for k in deployment.kinds)
        result = summarize(
            raw, self.requests, mask=self.mask, gpus=deployment.gpus, kv_capacity_tokens=kv_total
        )
        if result.unfinished:
            raise ServoptError("simulation", None, f"{result.unfinished} requests never finished")
        # Per GPU of one replica = per GPU of the deployment (replicas are identical and independent).
        share = self.setup.replica_concurrency / self.clients if self.clients else 1.0
        # A median and a mean differ most where a closed loop's first wave queues its prefills.
        stat = "p50" if self.setup.record.latency_stat == "median" else "mean"
        return Replayed(
            result.ttft_ms[stat],
            result.tpot_ms[stat] if result.tpot_ms else 0.0,
            result.output_tokens_per_s_per_gpu * share,
            result.e2e_ms["mean"],
            result.preempted_requests,
        )
