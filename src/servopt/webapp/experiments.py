"""A web request -> validated ``Experiment`` objects, through the same loader as the CLI.

The default form goes through ``default_experiments`` and the YAML tab through
``load_experiments_text``, both with ``WebCatalog`` (registry names only). Problems come back in the
CLI's words; only the flag names of the form (``--model``) become its field names (``model``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from servopt.config import ConfigError, Experiment, Problem, default_experiments, load_experiments_text
from servopt.config.problems import NO_VALUE
from servopt.errors import ServoptError
from servopt.webapp.guard import WebCatalog, yaml_problems
from servopt.webapp.schemas import DefaultSearch, YamlSearch

# How problems cite the advanced tab's text (the CLI cites the file path).
YAML_NAME = "experiment.yaml"
FLAG_PREFIX = "--"


def build_experiments(request: DefaultSearch | YamlSearch) -> list[Experiment]:
    """Validated experiments; raises ConfigError (or ServoptError) naming every bad field."""
    catalog = WebCatalog()
    if isinstance(request, YamlSearch):
        problems = yaml_problems(request.yaml, YAML_NAME)
        if problems:
            raise ConfigError(problems)
        return load_experiments_text(request.yaml, name=YAML_NAME, catalog=catalog)
    _check_load(request)
    try:
        return default_experiments(
            request.model,
            request.total_gpus,
            request.system,
            decode_system=request.decode_system or None,
            backend=request.backend,
            backend_version=request.backend_version or None,
            isl=request.isl,
            osl=request.osl,
            ttft=request.ttft,
            tpot=request.tpot,
            catalog=catalog,
            calibration=request.calibration,
            robust=request.robust,
        )
    except ConfigError as err:
        raise ConfigError(_form_problem(p) for p in err.problems) from None


def _check_load(request: DefaultSearch) -> None:
    """The load fields' rules that span fields (each field's own range is the schema's)."""
    if request.request_rate is not None and request.concurrency is not None:
        raise ServoptError("concurrency", request.concurrency, "give request_rate or concurrency, not both")
    if request.robust and request.calibration == "none":
        raise ServoptError("robust", True, "needs a calibration's error bands; calibration is none")
    if request.robust and request.loaded:
        raise ServoptError("robust", True, "not yet supported with a load (the answer reports its band)")
    if request.objective == "max_goodput_per_gpu" and request.concurrency is not None:
        raise ServoptError("objective", request.objective, "needs request_rate (not yet with concurrency)")
    if not request.loaded:
        return
    # The CLI's own price checks (arrival and arrival_cv are the schema's): a price for every
    # system sized, and min_cost needs them.
    from servopt.hardware import system_names
    from servopt.sizing.cost import parse_prices, price_of

    systems = [request.system] + ([request.decode_system] if request.decode_system else [])
    if request.gpu_hour_price is not None and request.gpu_hour_price.strip():
        prices = parse_prices(request.gpu_hour_price, tuple(system_names()))
        for name in systems:
            if name in system_names():  # an unknown system is the loader's problem, by its field
                price_of(prices, name)
    elif request.objective == "min_cost":
        raise ServoptError(
            "gpu_hour_price",
            None,
            f"objective min_cost needs your USD per GPU-hour of {' and '.join(systems)}",
        )


def sizing_question(request: DefaultSearch) -> dict[str, Any]:
    """The form's load question as ``pipeline.size_load`` takes it (the CLI's defaults for the rest)."""
    return {
        "model": request.model,
        "total_gpus": request.total_gpus,
        "system": request.system,
        "backend": request.backend,
        "backend_version": request.backend_version or None,
        "isl": request.isl,
        "osl": request.osl,
        "ttft": request.ttft,
        "tpot": request.tpot,
        "request_rate": request.request_rate,
        "concurrency": request.concurrency,
        "arrival": request.arrival,
        "arrival_cv": request.arrival_cv,
        "ttft_percentile": request.ttft_percentile,
        "tpot_percentile": request.tpot_percentile,
        "objective": request.objective,
        "num_requests": 2000,
        "seed": 0,
        "perf_db": None,
        "gpu_hour_price": (request.gpu_hour_price or "").strip() or None,
        "decode_system": request.decode_system or None,
        "calibration": request.calibration,
    }


def _form_problem(problem: Problem) -> Problem:
    if problem.field.startswith(FLAG_PREFIX):
        return dataclasses.replace(problem, field=problem.field[len(FLAG_PREFIX) :])
    return problem


def _plain(value: Any) -> Any:
    """A problem's value as JSON can carry it (NaN and infinities as their repr, like the CLI shows them)."""
    if value is NO_VALUE:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "field": problem.field,
        "message": problem.message,
        "value": _plain(problem.value),
        "allowed": list(problem.allowed) if problem.allowed is not None else None,
        "line": problem.line,
        "col": problem.col,
        "text": str(problem),
    }


def error_json(err: ServoptError) -> dict[str, Any]:
    """``{detail, problems}`` for any user error (a ConfigError lists each of its problems)."""
    if isinstance(err, ConfigError):
        problems = [problem_json(p) for p in err.problems]
    else:
        problems = [
            {
                "field": err.field,
                "message": err.message,
                "value": _plain(err.value),
                "allowed": [str(a) for a in err.allowed] if err.allowed is not None else None,
                "line": 0,
                "col": 0,
                "text": str(err),
            }
        ]
    return {"detail": str(err), "problems": problems}


def experiment_summary(experiment: Experiment) -> dict[str, Any]:
    return {
        "name": experiment.name,
        "serving_mode": experiment.serving_mode,
        "model_name": experiment.model_name,
        "total_gpus": experiment.total_gpus,
        "system_name": experiment.system_name,
        "decode_system_name": experiment.decode_system_name,
        "backend_name": experiment.backend_name,
        "backend_version": experiment.backend_version,
        "isl": experiment.isl,
        "osl": experiment.osl,
        "ttft": experiment.ttft,
        "tpot": experiment.tpot,
        "calibration": experiment.calibration,
        "robust": experiment.robust,
    }
