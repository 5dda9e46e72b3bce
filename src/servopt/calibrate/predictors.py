"""Predictors of a :class:`Setup`'s measured figures, by name: what the validation compares.

A predictor is a function ``predict(setup: Setup) -> Prediction``. It raises
:class:`servopt.errors.ServoptError` when it cannot price the setup (missing data, an impossible
layout); the validation lists those rows with the message. To add one (the load-aware simulator of
issue 14), write the function and add it to :data:`PREDICTORS`::

    def simulate(setup: Setup) -> Prediction:
        db = database(setup)                # shared: one open database per (system, backend, version)
        model = model_setup(setup, db)      # the estimate path's ModelSetup (arch, quant, system)
        ...                                 # closed loop of setup.replica_concurrency clients
        return Prediction(ttft_ms, tpot_ms, output_tok_s_per_gpu)

    PREDICTORS["simulate"] = simulate
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import NamedTuple

from servopt.calibrate.setups import Setup


class Prediction(NamedTuple):
    """Figures comparable with a record's measurements (means; output-token basis)."""

    ttft_ms: float
    tpot_ms: float
    output_tok_s_per_gpu: float  # over every GPU of the deployment (all replicas)
    note: str = ""  # a caveat worth listing beside the row (e.g. servopt says it does not fit)


Predictor = Callable[[Setup], Prediction]


@cache
def _open(system: str, backend: str, version: str):
    from servopt.perf_db.database import open_database

    return open_database(system, backend, version)


def database(setup: Setup):
    """The perf database of the setup's (system, backend, version), opened once per process."""
    return _open(setup.system, setup.backend, setup.version)


def model_setup(setup: Setup, db):
    """The ``ModelSetup`` ``cli estimate`` would build: quant defaults resolved against ``db``."""
    from servopt.evaluate.candidates import ModelSetup
    from servopt.evaluate.single import quant_modes
    from servopt.models.registry import resolve_model

    arch = resolve_model(setup.model)
    q = setup.quant
    quant = quant_modes(arch, q.gemm, q.moe, q.kvcache, q.fmha, db=db, backend=setup.backend)
    return ModelSetup(arch, setup.backend, quant, db.system, db.version, 0)


def mean_field(setup: Setup) -> Prediction:
    """``servopt cli estimate --mode agg`` at batch = the clients of one attention-DP rank.

    ``cli estimate``'s batch is per dp rank (and pipeline stage): a replica's clients are spread over
    its ``pp * dp`` of them and rounded to a whole batch (at least 1). Where rounding changes the
    number of requests in flight, the throughput is scaled back to the stated clients: the mean-field
    rate is proportional to the requests in flight at a fixed step time.
    """
    from servopt.errors import OutOfMemoryError
    from servopt.evaluate.candidates import Workload
    from servopt.evaluate.single import estimate_config

    db = database(setup)
    model = model_setup(setup, db)
    ranks = setup.layout.pp * setup.layout.dp
    batch = max(1, round(setup.replica_concurrency / ranks))
    kwargs = dict(mode=setup.mode, batch_size=batch)
    work = Workload(setup.isl, setup.osl)
    note = ""
    try:
        est = estimate_config(db, model, setup.layout, work, **kwargs)
    except OutOfMemoryError as exc:
        # The measured deployment ran: price it anyway and say that servopt's memory model disagrees.
        note = f"servopt memory model: {exc}"
        est = estimate_config(db, model, setup.layout, work, check_memory=False, **kwargs)
    in_flight = setup.replica_concurrency / est.concurrency
    return Prediction(est.ttft_ms, est.tpot_ms, est.tokens_per_s_per_gpu * in_flight, note)


# Closed-loop runs simulate this many requests per client (at least SIM_MIN_REQUESTS), a tenth of
# them warm-up: enough for stable means and p90s at every stated concurrency.
SIM_REQUESTS_PER_CLIENT = 16
SIM_MIN_REQUESTS = 800


def simulate(setup: Setup) -> Prediction:
    """``servopt cli simulate``: one replica, the engine's default scheduling, a closed loop of the
    replica's clients (each sends its next request when its last one ends, as the benchmark clients
    did), fixed lengths, seed 0; means over the steady-state window."""
    from servopt.simulate.build import WorkerPlan
    from servopt.simulate.policy import engine_policy
    from servopt.simulate.scenario import Scenario
    from servopt.simulate.scenario import simulate as run_simulation
    from servopt.simulate.workload import Lengths, Load

    db = database(setup)
    model = model_setup(setup, db)
    clients = max(1, round(setup.replica_concurrency))
    policy = engine_policy(setup.backend, model.system.gpu.mem_capacity_bytes)
    scenario = Scenario(
        load=Load(concurrency=clients),
        num_requests=max(SIM_MIN_REQUESTS, SIM_REQUESTS_PER_CLIENT * clients),
        lengths=Lengths(setup.isl, setup.osl),
    )
    result, _ = run_simulation(db, model, [WorkerPlan("agg", setup.layout, 1, policy)], scenario)
    note = f"{result.preempted_requests} preempted" if result.preempted_requests else ""
    # Per GPU of one replica = per GPU of the deployment (replicas are identical and independent).
    return Prediction(
        result.ttft_ms["mean"],
        result.tpot_ms["mean"] if result.tpot_ms else 0.0,
        result.output_tokens_per_s_per_gpu * setup.replica_concurrency / clients,
        note,
    )


PREDICTORS: dict[str, Predictor] = {"mean_field": mean_field, "simulate": simulate}
