"""The JSON API under ``/api/``: catalog look-ups, validation, searches and their downloads.

Handlers are plain ``def`` functions (FastAPI runs them in its thread pool): validation is quick and
CPU-bound, and a search never runs here, only in the worker process behind ``JobQueue``.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from functools import cache
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from servopt.errors import ServoptError
from servopt.report.robustness import robustness_lines
from servopt.report.tables import calibration_line, scope_calibration_line
from servopt.webapp.experiments import build_experiments, experiment_summary
from servopt.webapp.jobs import JOB_ID_PATTERN, Job, JobQueue, QueueFullError
from servopt.webapp.schemas import (
    DefaultSearch,
    ErrorOut,
    JobOut,
    ModelOut,
    SystemOut,
    ValidateOut,
    YamlSearch,
)

router = APIRouter(prefix="/api")

JobId = Annotated[str, Path(pattern=JOB_ID_PATTERN, description="the id POST /api/searches returned")]
SearchBody = Annotated[DefaultSearch | YamlSearch, Body(discriminator="kind")]
# Models returned by one look-up when the page searches as the user types.
MAX_MODELS_LISTED = 200
GIB = 1024**3
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "unknown or forgotten search id"},
    422: {"model": ErrorOut, "description": "a field is invalid; each problem names it"},
    429: {"model": ErrorOut, "description": "the search queue is full; retry after Retry-After seconds"},
}


def _queue(request: Request) -> JobQueue:
    return request.app.state.jobs


def _found(request: Request, job_id: str) -> tuple[Job, int]:
    found = _queue(request).get(job_id)
    if found is None:
        raise HTTPException(404, f"search: {job_id!r}: unknown search id, or its result was forgotten")
    return found


def _job(request: Request, job_id: str) -> Job:
    return _found(request, job_id)[0]


def _done_job(request: Request, job_id: str) -> Job:
    job = _job(request, job_id)
    if job.status != "done":
        raise HTTPException(409, f"search: {job_id!r}: has no result (status {job.status})")
    return job


def _validated(body: DefaultSearch | YamlSearch) -> list[dict[str, Any]]:
    """Experiment summaries; a ServoptError propagates to the server's 422 handler."""
    return [experiment_summary(e) for e in build_experiments(body)]


def warm_caches() -> None:
    """Load the catalog once at start-up: cold, it takes seconds, and a burst of first requests
    would otherwise all load it at the same time."""
    from servopt.webapp.guard import web_model_names

    _models()
    _systems()
    web_model_names()


@router.get("/health", summary="Is the server up; the queue's counters")
def health(request: Request) -> dict[str, Any]:
    return {"status": "ok", "queue": _queue(request).stats()}


@cache
def _models() -> list[dict[str, Any]]:
    from servopt.models.registry import list_models

    return [
        {"name": m.name, "hf_id": m.hf_id, "family": m.family, "aliases": list(m.aliases)}
        for m in list_models()
        if m.source != "config_json"
    ]


@router.get("/models", response_model=list[ModelOut], summary="Registry models, filtered by a search text")
def models(
    q: Annotated[
        str, Query(max_length=128, description="case-insensitive part of a name, alias or HF id")
    ] = "",
) -> list[dict[str, Any]]:
    needle = q.strip().casefold()
    hits = [
        m
        for m in _models()
        if not needle or any(needle in (s or "").casefold() for s in (m["name"], m["hf_id"], *m["aliases"]))
    ]
    return hits[:MAX_MODELS_LISTED]


@cache
def _systems() -> list[dict[str, Any]]:
    from servopt.config import DefaultCatalog
    from servopt.hardware import load_system, system_names

    catalog = DefaultCatalog()
    out = []
    for name in system_names():
        spec = load_system(name)
        try:
            versions = catalog.backend_versions(name) or {}
        except ServoptError:
            versions = {}
        out.append(
            {
                "name": name,
                "description": spec.description,
                "gpu_memory_gib": round(spec.gpu.mem_capacity_bytes / GIB, 1),
                "roofline_only": spec.roofline_only,
                "backends": {b: list(v) for b, v in versions.items()},
            }
        )
    return out


@router.get(
    "/systems", response_model=list[SystemOut], summary="GPU systems with their backends and versions"
)
def systems() -> list[dict[str, Any]]:
    return _systems()


@router.get("/example", summary="The seed's example experiment YAML (the advanced tab's template)")
def example() -> dict[str, str]:
    return {"yaml": files("servopt.webapp").joinpath("example.yaml").read_text(encoding="utf-8")}


@router.post(
    "/validate",
    response_model=ValidateOut,
    responses=ERRORS,
    summary="Validate a form or an experiment YAML without searching",
)
def validate(body: SearchBody) -> dict[str, Any]:
    return {"ok": True, "experiments": _validated(body)}


def _job_view(job: Job, position: int, *, with_result: bool) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.status,
        "position": position,
        "stage": job.stage,
        "fraction": job.fraction,
        "elapsed_s": round(job.elapsed_s(), 3),
        "experiments": job.experiments,
        "error": job.error,
        "result": job.result if with_result else None,
        "lines": result_lines(job.result) if with_result and job.result else None,
    }


def result_lines(result: dict[str, Any]) -> dict[str, Any]:
    """The terminal report's calibration and error-band lines, for the page to show as they are."""
    sizing = result.get("sizing")
    if sizing is not None:
        return {"calibration": scope_calibration_line(sizing.get("calibration")), "bands": []}
    return {"calibration": calibration_line(result.get("calibration")), "bands": robustness_lines(result)}


@router.post(
    "/searches",
    status_code=202,
    response_model=JobOut,
    responses=ERRORS,
    summary="Validate and queue a search; poll GET /api/searches/{id}",
)
def submit_search(body: SearchBody, request: Request, response: Response) -> Any:
    queue = _queue(request)
    try:
        queue.check_room()  # a flood is refused before any validation work
        names = [e["name"] for e in _validated(body)]
        job, position = queue.submit(body.model_dump(), names)
    except QueueFullError as full:
        return JSONResponse(
            {
                "detail": f"queue: {full.queued} searches are waiting already; try again later",
                "problems": [],
            },
            status_code=429,
            headers={"Retry-After": str(full.retry_after_s)},
        )
    response.headers["Location"] = f"/api/searches/{job.id}"
    return _job_view(job, position, with_result=False)


@router.get(
    "/searches/{job_id}", response_model=JobOut, responses=ERRORS, summary="A search's progress or result"
)
def get_search(request: Request, job_id: JobId) -> dict[str, Any]:
    job, position = _found(request, job_id)
    return _job_view(job, position, with_result=job.status == "done")


@router.delete("/searches/{job_id}", response_model=JobOut, responses=ERRORS, summary="Cancel a search")
def cancel_search(request: Request, job_id: JobId) -> dict[str, Any]:
    _job(request, job_id)
    job = _queue(request).cancel(job_id)
    if job is None:  # finished and forgotten between the two calls
        raise HTTPException(404, f"search: {job_id!r}: unknown search id, or its result was forgotten")
    return _job_view(job, 0, with_result=False)


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@router.get("/searches/{job_id}/result.json", responses=ERRORS, summary="Download the result as JSON")
def result_json(request: Request, job_id: JobId) -> Response:
    job = _done_job(request, job_id)
    text = json.dumps(job.result, indent=2, sort_keys=False)
    return Response(text, media_type="application/json", headers=_attachment(f"servopt-{job_id[:8]}.json"))


def _cell(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict | list) else value


def result_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every experiment's top rows, flat, with the experiment, its serving mode and the row's rank
    (a rate sizing: each mode's answer)."""
    rows = []
    sizing = result.get("sizing") or {}
    for mode in ("agg", "disagg"):  # a rate sizing: each mode's answer, the best ranked first
        answer = sizing.get(mode)
        if answer:
            rank = 1 if answer["mode"] == (sizing.get("best") or {}).get("mode") else 2
            lead = {"experiment": mode, "serving_mode": mode, "rank": rank}
            rows.append({**lead, **{k: _cell(v) for k, v in answer.items() if k not in lead}})
    for experiment in result.get("experiments") or []:
        for position, row in enumerate(experiment.get("top") or []):
            rank = row.get("rank", position + 1)
            lead = {
                "experiment": experiment.get("name"),
                "serving_mode": experiment.get("serving_mode"),
                "rank": rank,
            }
            rows.append({**lead, **{k: _cell(v) for k, v in row.items() if k not in lead}})
    return rows


@router.get("/searches/{job_id}/result.csv", responses=ERRORS, summary="Download the top tables as CSV")
def result_csv(request: Request, job_id: JobId) -> Response:
    rows = result_rows(_done_job(request, job_id).result or {})
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or ["experiment"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        buffer.getvalue(), media_type="text/csv", headers=_attachment(f"servopt-{job_id[:8]}.csv")
    )


@router.get(
    "/searches/{job_id}/deployment",
    responses={**ERRORS, 200: {"description": "JSON {experiment, rank, files: {name: text}} or a zip"}},
    summary="Deployment configs of one row of an experiment's top table",
)
def deployment(
    request: Request,
    job_id: JobId,
    experiment: Annotated[str, Query(max_length=128)],
    rank: Annotated[int, Query(ge=1, le=1000)],
    format: Annotated[Literal["json", "zip"], Query()] = "json",
) -> Response:
    per_experiment = _experiment_deployments(_done_job(request, job_id), experiment)
    entry = per_experiment.get(str(rank))
    if entry is None:
        raise ServoptError("rank", rank, f"not a row of {experiment}'s table", list(per_experiment))
    return _files_response(entry, {"experiment": experiment, "rank": rank}, f"rank{rank}", format)


@router.get(
    "/searches/{job_id}/packed-deployment",
    responses={**ERRORS, 200: {"description": "JSON {experiment, files: {name: text}} or a zip"}},
    summary="Deployment configs of the packed deployment the verdict recommends",
)
def packed_deployment(
    request: Request,
    job_id: JobId,
    experiment: Annotated[str, Query(max_length=128)],
    format: Annotated[Literal["json", "zip"], Query()] = "json",
) -> Response:
    per_experiment = _experiment_deployments(_done_job(request, job_id), experiment)
    entry = per_experiment.get("packed")
    if entry is None:
        raise ServoptError(
            "experiment",
            experiment,
            "the verdict recommends identical replicas here, not a packed deployment",
        )
    return _files_response(entry, {"experiment": experiment}, "packed", format)


def _experiment_deployments(job: Job, experiment: str) -> dict:
    """One experiment's deployment file sets of a finished search (by rank, and "packed")."""
    per_experiment = (job.deployments or {}).get(experiment)
    if per_experiment is None:
        raise ServoptError(
            "experiment", experiment, "not an experiment of this search", list(job.deployments or {})
        )
    return per_experiment


def _files_response(entry: dict, about: dict, label: str, format: str) -> Response:
    """A set of deployment files as JSON ``{**about, files}`` or as a zip with fixed timestamps."""
    if "error" in entry:
        return JSONResponse({"detail": entry["error"], "problems": []}, status_code=422)
    if format == "json":
        return JSONResponse({**about, "files": entry["files"]})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in sorted(entry["files"].items()):
            info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))  # same input, same bytes
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in about["experiment"])
    return Response(
        buffer.getvalue(), media_type="application/zip", headers=_attachment(f"servopt-{safe}-{label}.zip")
    )
