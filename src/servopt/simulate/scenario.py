"""One simulation end to end: deployment + load + lengths -> :class:`SimResult` (``cli simulate``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from servopt.errors import ServoptError
from servopt.evaluate.candidates import ModelSetup
from servopt.simulate.adjust import Adjustments, adjust
from servopt.simulate.build import WorkerPlan, build_deployment
from servopt.simulate.engine import Deployment, run
from servopt.simulate.metrics import SimResult, measured_mask, summarize
from servopt.simulate.workload import Lengths, Load, Requests, make_requests

# Default warm-up: the first tenth of the requests.
WARMUP_FRACTION = 0.1


@dataclass(frozen=True)
class Scenario:
    load: Load
    num_requests: int
    seed: int = 0
    lengths: Lengths | None = None
    trace: Requests | None = None  # replaces lengths and arrivals
    warmup: int | None = None  # requests excluded at the start (None: a tenth)
    ttft_target_ms: float | None = None
    tpot_target_ms: float | None = None
    size_token_budget: bool = True  # False when the user fixed max_num_tokens
    request_overhead_ms: float = 0.0  # client send -> engine queue (overrides the adjustments')
    adjustments: Adjustments | None = None  # a calibration's (servopt.calibrate.model)

    def requests(self) -> Requests:
        if self.trace is not None:
            return self.trace
        if self.lengths is None:
            raise ServoptError("lengths", None, "give request lengths (--isl/--osl) or a trace")
        return make_requests(self.load, self.lengths, self.num_requests, self.seed)

    def window(self, n: int) -> np.ndarray:
        warmup = int(n * WARMUP_FRACTION) if self.warmup is None else self.warmup
        if not 0 <= warmup < n:
            raise ServoptError("warmup", warmup, f"must be in [0, {n})")
        # A closed loop's last wave runs while the client pool drains: not steady state.
        cooldown = self.load.concurrency if self.load.closed_loop and self.warmup is None else 0
        if n - warmup - (cooldown or 0) < max(1, n // 2):
            cooldown = 0
        return measured_mask(n, warmup, cooldown or 0)


def simulate(
    db, setup: ModelSetup, plans: list[WorkerPlan], scenario: Scenario
) -> tuple[SimResult, Deployment]:
    requests = scenario.requests()
    deployment = build_deployment(
        db,
        setup,
        plans,
        max_isl=int(requests.isl.max()),
        max_osl=int(requests.osl.max()),
        prompt_lengths=requests.isl,
        size_token_budget=scenario.size_token_budget,
    )
    if scenario.adjustments is not None:
        deployment = adjust(deployment, scenario.adjustments)
    if scenario.request_overhead_ms:
        deployment = replace(deployment, request_overhead_ms=scenario.request_overhead_ms)
    mask = scenario.window(len(requests.isl))
    raw = run(
        deployment,
        requests,
        clients=scenario.load.concurrency if scenario.load.closed_loop else 0,
        itl_weight=mask.astype(np.float64),
    )
    kv_total = sum(k.kv_tokens * k.count for k in deployment.kinds)
    result = summarize(
        raw,
        requests,
        mask=mask,
        gpus=deployment.gpus,
        kv_capacity_tokens=kv_total,
        ttft_target_ms=scenario.ttft_target_ms,
        tpot_target_ms=scenario.tpot_target_ms,
    )
    if result.unfinished:
        raise ServoptError(
            "simulation",
            None,
            f"{result.unfinished} requests never finished (a request larger than every instance's KV cache?)",
        )
    return result, deployment
