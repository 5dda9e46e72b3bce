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
from functools import lru_cache
from typing import NamedTuple

from servopt.calibrate.model import default_profile
from servopt.calibrate.replay import Replay, benchmark_requests, database, model_setup  # noqa: F401  (predictors' API)
from servopt.calibrate.setups import Setup
from servopt.errors import OutOfMemoryError
from servopt.evaluate.candidates import Workload
from servopt.evaluate.single import estimate_config


class Prediction(NamedTuple):
    """Figures comparable with a record's measurements (means; output-token basis)."""

    ttft_ms: float
    tpot_ms: float
    output_tok_s_per_gpu: float  # over every GPU of the deployment (all replicas)
    note: str = ""  # a caveat worth listing beside the row (e.g. servopt says it does not fit)


Predictor = Callable[[Setup], Prediction]

# The loads a predictor can take (all, where not listed): ``cli estimate``'s batch is a closed
# loop's clients; bursts and open loops have arrivals and a queue only the simulator replays.
LOADS: dict[str, frozenset[str]] = {"mean_field": frozenset({"closed_loop"})}


def applies(name: str, setup: Setup) -> bool:
    """Whether predictor ``name`` prices the setup's load (a table shows '-' where it does not)."""
    return name not in LOADS or setup.load in LOADS[name]


def mean_field(setup: Setup) -> Prediction:
    """``servopt cli estimate --mode agg`` at batch = the clients of one attention-DP rank.

    ``cli estimate``'s batch is per dp rank (and pipeline stage): a replica's clients are spread over
    its ``pp * dp`` of them and rounded to a whole batch (at least 1). Where rounding changes the
    number of requests in flight, the throughput is scaled back to the stated clients: the mean-field
    rate is proportional to the requests in flight at a fixed step time.
    """
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


@lru_cache(maxsize=4)
def _replay(setup: Setup) -> Replay:
    # Built once for the predictors of one row (the validation runs them one after the other):
    # building the deployment costs as much as a run.
    return Replay(setup)


def simulate(setup: Setup) -> Prediction:
    """``servopt cli simulate`` replaying the record's benchmark (:class:`replay.Replay`), raw model."""
    out = _replay(setup).run()
    note = f"{out.preempted} preempted" if out.preempted else ""
    return Prediction(out.ttft_ms, out.tpot_ms, out.output_tok_s_per_gpu, note)


def simulate_calibrated(setup: Setup) -> Prediction:
    """``simulate`` with the shipped default calibration profile's adjustments for the setup's scope
    and the request overhead of the record's own harness where the profile has it (in-sample on the
    shipped data: the profile was fitted on it; ``servopt calibrate`` prints the cross-validated
    figures)."""
    adj, _ = default_profile().adjustments(setup.backend, setup.system, setup.record.source_name)
    out = _replay(setup).run(adj)
    note = f"{out.preempted} preempted" if out.preempted else ""
    return Prediction(out.ttft_ms, out.tpot_ms, out.output_tok_s_per_gpu, note)


PREDICTORS: dict[str, Predictor] = {
    "mean_field": mean_field,
    "simulate": simulate,
    "simulate_calibrated": simulate_calibrated,
}
