"""A record's benchmark replayed through the simulator, built once and rerun under any adjustments.

The ``simulate`` predictor and the calibration fit share this: the deployment (op lists, step-time
tables, KV capacity) and the benchmark's requests are built once per record; each parameter set the
fit tries only reruns the kernel on the adjusted deployment (``servopt.simulate.adjust``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from servopt.calibrate.setups import Setup
from servopt.simulate.adjust import Adjustments, adjust


class Replayed(NamedTuple):
    """Figures over the measured requests, comparable with a record's: TTFT and TPOT are medians
    where the record states medians (InferenceX's history rows), else means, like the record."""

    ttft_ms: float
    tpot_ms: float
    output_tok_s_per_gpu: float  # over every GPU of the deployment
    e2e_ms: float
    preempted: int


class Replay:
    """The record's benchmark: one replica, the engine's default scheduling, a closed loop of the
    replica's clients starting together (as the benchmark clients do), the campaign's request count
    and length distribution, every request measured (the benchmarks report over all of them)."""

    def __init__(self, setup: Setup):
        from servopt.calibrate.predictors import benchmark_requests, database, model_setup
        from servopt.simulate.build import WorkerPlan, build_deployment
        from servopt.simulate.policy import engine_policy

        self.setup = setup
        db = database(setup)
        model = model_setup(setup, db)
        self.clients = max(1, round(setup.replica_concurrency))
        policy = engine_policy(setup.backend, model.system.gpu.mem_capacity_bytes)
        self.requests = benchmark_requests(setup, self.clients)
        self.deployment = build_deployment(
            db,
            model,
            [WorkerPlan("agg", setup.layout, 1, policy)],
            max_isl=int(self.requests.isl.max()),
            max_osl=int(self.requests.osl.max()),
            prompt_lengths=self.requests.isl,
        )
        self.mask = np.ones(len(self.requests.isl), dtype=bool)

    def run(self, adj: Adjustments = Adjustments()) -> Replayed:
        from servopt.errors import ServoptError
        from servopt.simulate.engine import run
        from servopt.simulate.metrics import summarize

        deployment = adjust(self.deployment, adj)
        raw = run(deployment, self.requests, clients=self.clients, itl_weight=self.mask.astype(np.float64))
        kv_total = sum(k.kv_tokens * k.count for k in deployment.kinds)
        result = summarize(
            raw, self.requests, mask=self.mask, gpus=deployment.gpus, kv_capacity_tokens=kv_total
        )
        if result.unfinished:
            raise ServoptError("simulation", None, f"{result.unfinished} requests never finished")
        # Per GPU of one replica = per GPU of the deployment (replicas are identical and independent).
        share = self.setup.replica_concurrency / self.clients
        # A median and a mean differ most where a closed loop's first wave queues its prefills.
        stat = "p50" if self.setup.record.latency_stat == "median" else "mean"
        return Replayed(
            result.ttft_ms[stat],
            result.tpot_ms[stat] if result.tpot_ms else 0.0,
            result.output_tokens_per_s_per_gpu * share,
            result.e2e_ms["mean"],
            result.preempted_requests,
        )
