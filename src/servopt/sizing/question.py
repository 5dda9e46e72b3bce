"""One rate-sizing question, by names (model, system, backend, load, targets), to its JSON document:
the entry point that ``cli default --request_rate`` / ``--concurrency``, ``cli exp`` workloads and
the web app's form share (docs/sizing.md)."""

from __future__ import annotations

import math


def sizing_doc(
    *,
    model: str,
    total_gpus: int,
    system: str,
    backend: str,
    backend_version: str | None,
    isl: int,
    osl: int,
    ttft: float,
    tpot: float,
    request_rate: float | None,
    concurrency: int | None,
    arrival: str,
    arrival_cv: float,
    ttft_percentile: float,
    tpot_percentile: float,
    objective: str,
    num_requests: int,
    seed: int,
    perf_db: str | None,
    modes: tuple[str, ...] = ("agg", "disagg"),
    gpu_hour_price: str | None = None,
    decode_system: str | None = None,
    adjustments=None,
    calibration: dict | None = None,
) -> dict:
    """``adjustments``: a calibration profile's for (backend, system) (None: the raw model), and
    ``calibration`` the document that says so (``servopt.calibrate.model.scope_adjustments``)."""
    from servopt.errors import ServoptError, UnknownNameError
    from servopt.evaluate.candidates import ModelSetup
    from servopt.evaluate.single import quant_modes
    from servopt.hardware import load_system, system_names
    from servopt.models.registry import resolve_model
    from servopt.perf_db.database import open_database
    from servopt.simulate.workload import Lengths
    from servopt.sizing.check import Offered, Targets
    from servopt.sizing.cost import parse_prices, price_of
    from servopt.sizing.plan import OBJECTIVES, size_for_rate

    if objective not in OBJECTIVES:
        raise UnknownNameError("objective", objective, "not available with a load", OBJECTIVES)
    if objective == "max_goodput_per_gpu" and concurrency is not None:
        raise ServoptError("objective", objective, "needs --request_rate (not yet with --concurrency)")
    if concurrency is not None:
        if concurrency < 1:
            raise ServoptError("concurrency", concurrency, "must be an integer >= 1 (clients)")
    elif not (math.isfinite(request_rate) and request_rate > 0):
        raise ServoptError("request_rate", request_rate, "must be a finite number of requests/s > 0")
    if decode_system not in (None, system):
        raise ServoptError(
            "decode_system", decode_system, "not yet with a load (prefill and decode are sized on --system)"
        )
    prices = None if gpu_hour_price is None else parse_prices(gpu_hour_price, tuple(system_names()))
    targets = Targets(ttft, tpot, ttft_percentile, tpot_percentile)
    offered = Offered(
        request_rate, Lengths(isl, osl), arrival, arrival_cv, num_requests, seed, concurrency=concurrency
    )
    arch = resolve_model(model)
    spec = load_system(system)
    if prices is not None:
        price_of(prices, spec.name)  # the system sized has a price: fail before the search
    db = open_database(system, backend, backend_version, cache_dir=perf_db)
    quant = quant_modes(arch, None, None, None, None, db=db, backend=backend)
    setup = ModelSetup(arch, backend, quant, spec, db.version, 0)
    result = size_for_rate(
        db,
        setup,
        offered,
        targets,
        total_gpus=total_gpus,
        objective=objective,
        modes=modes,
        prices=prices,
        adjustments=adjustments,
    )
    return {
        "model": arch.name,
        "system": spec.name,
        "backend": backend,
        "backend_version": db.version,
        "objective": objective,
        "modes": list(modes),
        **result.to_json(),
        **({"calibration": calibration} if calibration is not None else {}),
    }
