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
    decode_adjustments=None,
    bands: dict | None = None,
    disagg_bands: dict | None = None,
) -> dict:
    """``adjustments``: a calibration profile's for (backend, system) (None: the raw model),
    ``decode_adjustments`` its scope for (backend, decode_system), and ``calibration`` the document
    that says so (``servopt.calibrate.model.calibrated_question``); ``bands`` the profile's error
    bands (the answer then carries ``robustness``), ``disagg_bands`` those of a disaggregated answer
    (``Profile.bands_for("disagg")``; None: ``bands``)."""
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
    known = tuple(system_names())
    if decode_system is not None and decode_system not in known:
        raise UnknownNameError("decode_system", decode_system, "unknown system", known)
    if decode_system == system or "disagg" not in modes:
        decode_system = None  # nothing runs on it: agg and prefill stay on --system
    prices = None if gpu_hour_price is None else parse_prices(gpu_hour_price, known)
    if objective == "min_cost" and prices is None:
        raise ServoptError(
            "gpu_hour_price",
            None,
            f"--objective min_cost needs your USD per GPU-hour of {system}"
            + (f" and {decode_system}" if decode_system else "")
            + " (e.g. --gpu_hour_price h200_sxm=3.5)",
        )
    targets = Targets(ttft, tpot, ttft_percentile, tpot_percentile)
    offered = Offered(
        request_rate, Lengths(isl, osl), arrival, arrival_cv, num_requests, seed, concurrency=concurrency
    )
    arch = resolve_model(model)
    spec = load_system(system)
    if prices is not None:
        # Every system sized has a price: fail before the search.
        for name in (spec.name, decode_system):
            if name is not None:
                price_of(prices, name)

    def role_setup(name: str):
        db = open_database(name, backend, backend_version, cache_dir=perf_db)
        quant = quant_modes(arch, None, None, None, None, db=db, backend=backend)
        return db, ModelSetup(arch, backend, quant, load_system(name), db.version, 0)

    db, setup = role_setup(system)
    decode = None if decode_system is None else role_setup(decode_system)
    result = size_for_rate(
        db,
        setup,
        offered,
        targets,
        total_gpus=total_gpus,
        objective=objective,
        modes=modes,
        prices=prices,
        decode=decode,
        adjustments=adjustments,
        decode_adjustments=decode_adjustments,
    )
    doc = {
        "model": arch.name,
        "system": spec.name,
        "decode_system": decode_system,
        "backend": backend,
        "backend_version": db.version,
        "decode_backend_version": None if decode is None else decode[0].version,
        "objective": objective,
        "modes": list(modes),
        **result.to_json(),
        **({"calibration": calibration} if calibration is not None else {}),
    }
    if bands:
        doc["robustness"] = sizing_robustness(doc, bands, disagg_bands)
    return doc


def sizing_robustness(doc: dict, bands: dict, disagg_bands: dict | None = None) -> dict:
    """Whether the answer's simulated percentiles still meet the targets at the pessimistic end of
    the 80% band: each percentile times the backend's latency factor (e^high). A uniform factor on
    the engine's latency; it leaves out the longer queues a slower engine also builds under the
    same load, so it is the optimistic side of the pessimistic end. A disaggregated answer takes
    ``disagg_bands`` where given."""
    from servopt.error_bands import pessimistic_factors

    disagg = doc["best"]["mode"] == "disagg" and disagg_bands
    f = pessimistic_factors(disagg_bands if disagg else bands, doc["backend"])
    t, at = doc["targets"], doc["best"]["at_targets"]
    factor = {"ttft": f.ttft, "tpot": f.tpot}
    pess, use = {}, {}
    for metric in ("ttft", "tpot"):
        key = f"{metric}_p{t[f'{metric}_percentile']:g}_ms"
        pess[key] = at[key] * factor[metric]
        use[metric] = pess[key] / t[f"{metric}_ms"]
    return {
        "band": "80%",
        "factors": {"ttft_ms": f.ttft, "tpot_ms": f.tpot},
        "pessimistic": pess,
        "holds": all(u <= 1.0 for u in use.values()),
        "binding": max(use, key=use.get),
    }
