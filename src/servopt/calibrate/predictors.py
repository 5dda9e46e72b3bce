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
from servopt.evaluate.workers import DEFAULT_DECODE_CORRECTION, DEFAULT_PREFILL_CORRECTION
from servopt.search.conventions import DEFAULT_CONVENTIONS


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
    """``servopt cli estimate --mode agg`` at batch = the clients of one attention-DP rank
    (a disaggregated setup: the search's xPyD model, :func:`_mean_field_disagg`).

    ``cli estimate``'s batch is per dp rank (and pipeline stage): a replica's clients are spread over
    its ``pp * dp`` of them and rounded to a whole batch (at least 1). Where rounding changes the
    number of requests in flight, the throughput is scaled back to the stated clients: the mean-field
    rate is proportional to the requests in flight at a fixed step time.
    """
    if setup.mode == "disagg":
        return _mean_field_disagg(setup)
    ranks = setup.layout.pp * setup.layout.dp
    batch = max(1, round(setup.replica_concurrency / ranks))
    est, note = _estimate(setup, setup.layout, setup.mode, batch)
    in_flight = setup.replica_concurrency / est.concurrency
    return Prediction(est.ttft_ms, est.tpot_ms, est.tokens_per_s_per_gpu * in_flight, note)


def _estimate(setup: Setup, layout, mode: str, batch: int, correction: float = 1.0):
    """``cli estimate`` of one worker, and a note where servopt's memory model says it does not fit."""
    db = database(setup)
    model = model_setup(setup, db)
    kwargs = dict(mode=mode, batch_size=batch, latency_correction=correction)
    work = Workload(setup.isl, setup.osl)
    try:
        return estimate_config(db, model, layout, work, **kwargs), ""
    except OutOfMemoryError as exc:
        # The measured deployment ran: price it anyway and say that servopt's memory model disagrees.
        est = estimate_config(db, model, layout, work, check_memory=False, **kwargs)
        return est, f"servopt memory model: {exc}"


def _mean_field_disagg(setup: Setup) -> Prediction:
    """The search's disaggregated model of the record's xPyD at its load.

    As the search prices a replica (``evaluate.workers``, ``search.conventions``): TTFT is one
    prefill worker's (``static_ctx``, batch 1: a closed loop's request meets no batch of prompts in
    the mean) with the prefill correction, times the disaggregated TTFT factor; TPOT the decode
    workers' (``static_gen``) at batch = clients / decode workers, per attention-DP rank, with the
    decode correction; the replica's request rate the rate-matched
    ``min(x * prefill rate * prefill degradation, y * decode rate * decode degradation)``, the
    decode rate scaled to the stated clients as the agg predictor does.
    """
    p, d = setup.prefill, setup.decode
    per_worker = setup.replica_concurrency / d.workers
    batch = max(1, round(per_worker / (d.layout.pp * d.layout.dp)))
    pre, p_note = _estimate(setup, p.layout, "static_ctx", 1, DEFAULT_PREFILL_CORRECTION)
    dec, d_note = _estimate(setup, d.layout, "static_gen", batch, DEFAULT_DECODE_CORRECTION)
    c = DEFAULT_CONVENTIONS
    rate = min(
        p.workers * pre.seq_per_s * c.prefill_degradation,
        d.workers * dec.seq_per_s * (per_worker / dec.concurrency) * c.decode_degradation,
    )
    note = "; ".join(filter(None, (p_note and f"prefill: {p_note}", d_note and f"decode: {d_note}")))
    return Prediction(
        pre.ttft_ms * c.disagg_ttft_factor, dec.tpot_ms, rate * setup.osl / setup.replica_gpus, note
    )


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
