"""Every endpoint of the JSON API, through the framework's test client, on the fake pipeline.

Bad input must be answered 4xx with a message naming the field, never 500 and never a stack trace.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import DEFAULT_FORM, client_for, require_web_extra, wait_for

require_web_extra()

from servopt.report.robustness import NO_BANDS  # noqa: E402
from servopt.report.tables import RAW_MODEL_LINE  # noqa: E402
from servopt.webapp.api import result_lines  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
API_PATHS = {
    "/api/health",
    "/api/models",
    "/api/systems",
    "/api/example",
    "/api/validate",
    "/api/searches",
    "/api/searches/{job_id}",
    "/api/searches/{job_id}/result.json",
    "/api/searches/{job_id}/result.csv",
    "/api/searches/{job_id}/deployment",
}


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _fields(response) -> set[str]:
    return {p["field"] for p in response.json()["problems"]}


def _no_trace(response) -> None:
    assert "Traceback" not in response.text
    assert 'File "' not in response.text


# ------------------------------------------------------------------ catalog endpoints
def test_health_reports_the_queue(client):
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["queue"]["max_queued"] == 8


def test_models_lists_registry_models_and_filters(client):
    everything = client.get("/api/models").json()
    names = {m["name"] for m in everything}
    assert {"QWEN3_32B", "DEEPSEEK_V3", "LLAMA3.1_70B"} <= names
    hits = client.get("/api/models", params={"q": "qwen3_32"}).json()
    assert "QWEN3_32B" in {m["name"] for m in hits}
    assert all("qwen3_32" in (m["name"] + (m["hf_id"] or "") + "".join(m["aliases"])).lower() for m in hits)
    by_hf_id = client.get("/api/models", params={"q": "Qwen/Qwen3-32B"}).json()
    assert "QWEN3_32B" in {m["name"] for m in by_hf_id}


def test_models_query_too_long_is_422_naming_q(client):
    response = client.get("/api/models", params={"q": "x" * 500})
    assert response.status_code == 422
    assert _fields(response) == {"q"}


def test_systems_list_backends_and_versions(client):
    systems = {s["name"]: s for s in client.get("/api/systems").json()}
    h200 = systems["h200_sxm"]
    assert not h200["roofline_only"]
    assert "trtllm" in h200["backends"] and "current" in h200["backends"]["trtllm"]
    assert h200["gpu_memory_gib"] > 100
    roofline = [s for s in systems.values() if s["roofline_only"]]
    assert roofline and all(s["backends"] == {} for s in roofline)


def test_example_is_the_seed_example_and_valid(client):
    text = client.get("/api/example").json()["yaml"]
    checkout_copy = REPO / "experiments" / "example.yaml"
    if checkout_copy.exists():  # the packaged template must not drift from the repository's example
        assert text == checkout_copy.read_text(encoding="utf-8")
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": text})
    assert response.status_code == 200, response.text
    assert [e["name"] for e in response.json()["experiments"]] == ["exp_agg_full", "exp_disagg_full"]


def test_openapi_documents_every_endpoint(client):
    schema = client.get("/api/openapi.json").json()
    assert set(schema["paths"]) >= API_PATHS
    assert "delete" in schema["paths"]["/api/searches/{job_id}"]
    assert {"DefaultSearch", "YamlSearch", "JobOut", "ErrorOut"} <= set(schema["components"]["schemas"])


# ------------------------------------------------------------------ validation
def test_validate_default_form_gives_agg_and_disagg(client):
    response = client.post("/api/validate", json=DEFAULT_FORM)
    assert response.status_code == 200
    experiments = response.json()["experiments"]
    assert [(e["name"], e["serving_mode"]) for e in experiments] == [("agg", "agg"), ("disagg", "disagg")]
    assert experiments[0]["model_name"] == "QWEN3_32B"


def test_validate_form_problems_name_the_form_fields(client):
    body = {**DEFAULT_FORM, "model": "QWEN3_3B", "system": "h200_sxmm", "total_gpus": 0, "isl": -1}
    response = client.post("/api/validate", json=body)
    assert response.status_code == 422
    assert _fields(response) == {"model", "system", "total_gpus", "isl"}
    by_field = {p["field"]: p for p in response.json()["problems"]}
    assert "did you mean QWEN3_32B" in by_field["model"]["text"]
    assert by_field["total_gpus"]["message"] == "must be >= 1"  # the CLI's words
    assert by_field["system"]["value"] == "h200_sxmm"


def test_validate_form_unknown_version_lists_the_allowed_ones(client):
    response = client.post("/api/validate", json={**DEFAULT_FORM, "backend_version": "0.20.0"})
    assert response.status_code == 422
    problem = response.json()["problems"][0]
    assert problem["field"] == "backend_version"
    assert "current" in problem["allowed"]


def test_validate_yaml_problem_points_at_its_line(client):
    text = client.get("/api/example").json()["yaml"].replace("total_gpus: 32", "total_gpus: -32")
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": text})
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert problem["field"] == "exp_disagg_full.total_gpus"
    assert problem["line"] == _line_of(text, "total_gpus: -32")
    assert problem["text"].startswith(f"experiment.yaml:{problem['line']}:")


def test_validate_yaml_syntax_error_has_a_line(client):
    text = "exp:\n  mode: patch\n  serving_mode: [agg\n"
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": text})
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert problem["field"] == "<yaml>" and problem["line"] >= 3


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("  ttft: .nan\n", "e.ttft"),
        ("  tpot: .inf\n", "e.tpot"),
        ("  isl: -.inf\n", "e.isl"),
        ("  backend_version: .nan\n", "e.backend_version"),
    ],
)
def test_yaml_non_finite_numbers_are_reported_not_crashed_on(client, extra, field):
    one = "  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: 8\n  system_name: h200_sxm\n"
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": f"e:\n{one}{extra}"})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["problems"]
    assert problem["field"] == field and problem["line"] == 7
    assert problem["value"] in ("nan", "inf", "-inf")


def test_model_file_paths_are_refused(client, tmp_path):
    from servopt.models.registry import model_configs_dir, resolve_model

    configs = model_configs_dir()
    source = configs / "Qwen--Qwen3-32B_config.json" if configs else None
    if source is None or not source.exists():
        pytest.skip("aiconfigurator-core's model_configs/ folder is not installed")
    config = tmp_path / "config.json"
    shutil.copy(source, config)
    assert resolve_model(str(config)).num_layers == 64  # the CLI accepts a config.json path ...
    for model in (str(config), "/etc/passwd", "../../etc/hosts", "~/config.json"):
        response = client.post("/api/validate", json={**DEFAULT_FORM, "model": model})
        assert response.status_code == 422, model  # ... the web app never does
        (problem,) = response.json()["problems"]
        assert problem["field"] == "model"
        assert "registry model names only" in problem["message"]
    text = f"e:\n  mode: patch\n  serving_mode: agg\n  model_name: {config}\n  total_gpus: 8\n  system_name: h200_sxm\n"
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": text})
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert problem["field"] == "e.model_name" and problem["line"] == 4


def test_profile_paths_are_refused_at_their_line(client):
    text = (
        "e:\n  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: 8\n"
        "  system_name: h200_sxm\n  profiles: [fp8, /etc/passwd.yaml]\n"
    )
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": text})
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert problem["field"] == "e.profiles[1]" and problem["line"] == 7
    assert "fp8" in problem["allowed"]


def test_calibration_is_default_or_none_and_never_a_file(client):
    experiments = client.post("/api/validate", json=DEFAULT_FORM).json()["experiments"]
    assert {e["calibration"] for e in experiments} == {"default"}
    body = {**DEFAULT_FORM, "calibration": "none"}
    experiments = client.post("/api/validate", json=body).json()["experiments"]
    assert {e["calibration"] for e in experiments} == {"none"}
    text = (
        "e:\n  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: 8\n"
        "  system_name: h200_sxm\n  calibration: /etc/passwd\n"
    )
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": text})
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert problem["field"] == "e.calibration" and problem["line"] == 7
    assert problem["allowed"] == ["default", "none"]


def test_robust_checkbox_reaches_the_experiments_and_needs_bands(client):
    experiments = client.post("/api/validate", json={**DEFAULT_FORM, "robust": True}).json()["experiments"]
    assert {e["robust"] for e in experiments} == {True}
    for extra in ({"calibration": "none"}, {"request_rate": 4}):
        response = client.post("/api/validate", json={**DEFAULT_FORM, "robust": True, **extra})
        assert response.status_code == 422, response.text
        assert "robust" in _fields(response)
        _no_trace(response)


def test_yaml_alias_bomb_is_refused_quickly(client):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": "\n".join(lines)})
    assert response.status_code == 422
    assert "expands to more than" in response.json()["problems"][0]["message"]


def test_huge_parallel_lists_are_refused(client):
    big = list(range(1, 40))
    text = client.get("/api/example").json()["yaml"]
    text = (
        text.replace("tp_list: [1, 2, 4, 8]", f"tp_list: {big}", 1)
        .replace("dp_list: [1, 2, 4, 8]", f"dp_list: {big}", 1)
        .replace("moe_ep_list: [1, 2, 4, 8]", f"moe_ep_list: {big}", 1)
    )
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": text})
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert problem["field"] == "exp_agg_full.config.worker_config"
    assert "combinations" in problem["message"]


def test_too_many_experiments_are_refused(client):
    one = "  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: 8\n  system_name: h200_sxm\n"
    text = "".join(f"e{i}:\n{one}" for i in range(17))
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": text})
    assert response.status_code == 422
    assert "at most 16" in response.json()["problems"][0]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "QWEN3_32B", "system": "h200_sxm", "total_gpus": 8, "kind": "other"}, "kind"),
        ({"model": "QWEN3_32B"}, "kind"),
        ({**DEFAULT_FORM, "total_gpus": "eight"}, "total_gpus"),
        ({**DEFAULT_FORM, "total_gpus": 10**9}, "total_gpus"),
        ({**DEFAULT_FORM, "top_n": 0}, "top_n"),
        ({**DEFAULT_FORM, "colour": "blue"}, "colour"),
        ({**DEFAULT_FORM, "calibration": "/etc/passwd"}, "calibration"),
        ({**DEFAULT_FORM, "calibration": 1}, "calibration"),
        ({**DEFAULT_FORM, "model": None}, "model"),
        ({"kind": "default", "system": "h200_sxm", "total_gpus": 8}, "model"),
        ({"kind": "yaml"}, "yaml"),
        ({"kind": "yaml", "yaml": 5}, "yaml"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client, body, field):
    for path in ("/api/validate", "/api/searches"):
        response = client.post(path, json=body)
        assert response.status_code == 422, response.text
        assert field in _fields(response)
        _no_trace(response)


NON_FINITE = b'{"kind": "default", "model": "QWEN3_32B", "system": "h200_sxm", "total_gpus": 8, "ttft": %s}'


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1, 2]",
        b"",
        b'{"kind": "yaml", "yaml": "\\ud800"}',
        b"\xff\xfe",
        NON_FINITE % b"NaN",
        NON_FINITE % b"Infinity",
        NON_FINITE % b"-Infinity",
    ],
)
def test_malformed_json_is_4xx(client, raw):
    response = client.post("/api/validate", content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    _no_trace(response)


def test_body_over_the_limit_is_413(client):
    text = "# " + "x" * (200 * 1024)
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": text})
    assert response.status_code == 413
    assert response.json()["detail"].startswith("body:")


def test_chunked_body_without_length_is_cut_at_the_limit(client):
    chunks = (b"x" * 65536 for _ in range(4))  # 256 KiB, streamed without Content-Length
    response = client.post("/api/validate", content=chunks, headers={"Content-Type": "application/json"})
    assert response.status_code == 413


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(["kind", "model", "system", "total_gpus", "isl", "tpot", "yaml", "top_n", "backend"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    extra=st.dictionaries(FIELDS, JSON_VALUES, max_size=5), kind=st.sampled_from(["default", "yaml", None])
)
def test_arbitrary_json_is_never_a_500(client, extra, kind):
    body = {**({"kind": kind} if kind else {}), **extra}
    response = client.post("/api/validate", json=body)
    assert response.status_code in (200, 422), response.text
    _no_trace(response)


# ------------------------------------------------------------------ searches
@pytest.fixture(scope="module")
def finished(client) -> dict:
    response = client.post("/api/searches", json={**DEFAULT_FORM, "top_n": 3})
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/api/searches/{response.json()['id']}"
    return wait_for(client, response.json()["id"])


def test_search_runs_to_a_result(finished):
    assert finished["status"] == "done", finished
    assert finished["fraction"] == 1.0
    result = finished["result"]
    assert [e["name"] for e in result["experiments"]] == ["agg", "disagg"]
    assert all(len(e["top"]) == 3 for e in result["experiments"])
    assert {p["experiment"] for p in result["pareto"]} == {"agg", "disagg"}
    assert result["best"]["mode"] == "disagg"
    # numpy scalars arrive as numbers and NaN as null, so the page can always parse the JSON
    assert isinstance(result["best"]["tokens_per_s_per_gpu"], float)
    assert result["experiments"][0]["top"][0]["memory_gib"] is None
    assert result["experiments"][0]["top"][1]["memory_gib"] == 60.5
    # The page shows the terminal report's own lines (this fake result has no calibration).
    assert finished["lines"] == {"calibration": RAW_MODEL_LINE, "bands": [NO_BANDS]}


def test_result_lines_are_the_reports_for_a_calibrated_result():
    cal = {"profile": "default profile", "measurements": 95, "workers": {"agg": {"scope": "trtllm"}}}
    rob = {"text": ["80% band: TTFT 600-900 ms", "at the pessimistic end: holds"]}
    lines = result_lines({"calibration": cal, "robustness": rob})
    assert lines == {
        "calibration": "calibrated: default profile, 95 measurements (agg trtllm)",
        "bands": rob["text"],
    }
    sizing = {"sizing": {"calibration": {"profile": "p", "measurements": 3, "scope": "sglang"}}}
    assert result_lines(sizing) == {
        "calibration": "calibrated: p, 3 measurements (scope sglang)",
        "bands": [],
    }


def test_result_json_download(client, finished):
    response = client.get(f"/api/searches/{finished['id']}/result.json")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    assert json.loads(response.text) == finished["result"]


def test_result_csv_download_has_every_top_row(client, finished):
    response = client.get(f"/api/searches/{finished['id']}/result.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 6
    assert list(rows[0])[:3] == ["experiment", "serving_mode", "rank"]
    assert [r["rank"] for r in rows if r["experiment"] == "agg"] == ["1", "2", "3"]
    assert float(rows[0]["tokens_per_s_per_gpu"]) == pytest.approx(
        finished["result"]["experiments"][0]["top"][0]["tokens_per_s_per_gpu"]
    )


def test_deployment_files_of_a_row(client, finished):
    url = f"/api/searches/{finished['id']}/deployment"
    response = client.get(url, params={"experiment": "disagg", "rank": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["rank"] == 2 and set(body["files"]) == {"run.sh", "engine.yaml"}
    assert "max_batch_size: 16" in body["files"]["engine.yaml"]
    zipped = client.get(url, params={"experiment": "disagg", "rank": 2, "format": "zip"})
    assert zipped.status_code == 200 and zipped.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert sorted(archive.namelist()) == ["engine.yaml", "run.sh"]
        assert archive.read("run.sh").decode() == body["files"]["run.sh"]
    again = client.get(url, params={"experiment": "disagg", "rank": 2, "format": "zip"})
    assert again.content == zipped.content  # same input, same bytes


def test_packed_deployment_files_when_the_verdict_says_packed(client):
    response = client.post("/api/searches", json={**DEFAULT_FORM, "total_gpus": 12})
    done = wait_for(client, response.json()["id"])
    verdict = done["result"]["verdict"]
    assert verdict["deploy"] == "packed"
    url = f"/api/searches/{done['id']}/packed-deployment"
    body = client.get(url, params={"experiment": verdict["experiment"]}).json()
    assert set(body["files"]) == {"k8s_deploy.yaml", "g1/run.sh", "g2/run.sh"}
    zipped = client.get(url, params={"experiment": verdict["experiment"], "format": "zip"})
    with zipfile.ZipFile(io.BytesIO(zipped.content)) as archive:
        assert sorted(archive.namelist()) == ["g1/run.sh", "g2/run.sh", "k8s_deploy.yaml"]
    other = next(e["name"] for e in done["result"]["experiments"] if e["name"] != verdict["experiment"])
    refused = client.get(url, params={"experiment": other})
    assert refused.status_code == 422 and "identical replicas" in refused.json()["detail"]


def test_no_packed_deployment_when_identical_wins(client, finished):
    assert finished["result"]["verdict"]["deploy"] == "identical"
    response = client.get(f"/api/searches/{finished['id']}/packed-deployment", params={"experiment": "agg"})
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"experiment": "nope", "rank": 1}, 422, "experiment"),
        ({"experiment": "agg", "rank": 9}, 422, "rank"),
        ({"experiment": "agg", "rank": 0}, 422, "rank"),
        ({"experiment": "agg", "rank": "first"}, 422, "rank"),
        ({"experiment": "agg", "rank": 1, "format": "tar"}, 422, "format"),
        ({"rank": 1}, 422, "experiment"),
    ],
)
def test_deployment_bad_row_names_the_field(client, finished, params, status, field):
    response = client.get(f"/api/searches/{finished['id']}/deployment", params=params)
    assert response.status_code == status
    assert field in _fields(response) or response.json()["detail"].startswith(field)


def test_unknown_and_malformed_search_ids(client):
    unknown = "0" * 32
    for suffix in ("", "/result.json", "/result.csv"):
        response = client.get(f"/api/searches/{unknown}{suffix}")
        assert response.status_code == 404
        assert response.json()["detail"].startswith("search:")
    assert client.delete(f"/api/searches/{unknown}").status_code == 404
    response = client.get("/api/searches/..%2F..%2Fetc%2Fpasswd")
    assert response.status_code in (404, 422)
    response = client.get("/api/searches/XYZ")
    assert response.status_code == 422 and _fields(response) == {"job_id"}


def test_search_with_invalid_input_is_refused_before_queueing(client):
    before = client.get("/api/health").json()["queue"]["submitted"]
    response = client.post("/api/searches", json={**DEFAULT_FORM, "system": "nope"})
    assert response.status_code == 422 and _fields(response) == {"system"}
    assert client.get("/api/health").json()["queue"]["submitted"] == before


def test_yaml_search_runs_every_experiment(client):
    text = client.get("/api/example").json()["yaml"]
    response = client.post("/api/searches", json={"kind": "yaml", "yaml": text, "top_n": 2})
    assert response.status_code == 202
    assert response.json()["experiments"] == ["exp_agg_full", "exp_disagg_full"]
    job = wait_for(client, response.json()["id"])
    assert job["status"] == "done"
    assert {p["experiment"] for p in job["result"]["pareto"]} == {"exp_agg_full", "exp_disagg_full"}


def test_result_of_an_unfinished_search_is_409_and_it_can_be_cancelled(monkeypatch):
    monkeypatch.setenv("FAKE_PIPELINE_MODE", "hang")
    with client_for(job_time_limit_s=60) as client:
        job = client.post("/api/searches", json=DEFAULT_FORM).json()
        wait_for(client, job["id"], until=("running",))
        response = client.get(f"/api/searches/{job['id']}/result.csv")
        assert response.status_code == 409 and response.json()["detail"].startswith("search:")
        assert client.delete(f"/api/searches/{job['id']}").status_code == 200
        assert wait_for(client, job["id"])["status"] == "cancelled"


# ------------------------------------------------------------------ failures in the worker
def _run_in_mode(monkeypatch, mode: str, **settings) -> tuple[dict, dict]:
    monkeypatch.setenv("FAKE_PIPELINE_MODE", mode)
    with client_for(**settings) as client:
        job = wait_for(client, client.post("/api/searches", json=DEFAULT_FORM).json()["id"])
        monkeypatch.setenv("FAKE_PIPELINE_MODE", "ok")  # the next worker process behaves
        follow_up = wait_for(client, client.post("/api/searches", json=DEFAULT_FORM).json()["id"])
        stats = client.get("/api/health").json()["queue"]
        # a fresh worker replaced the broken one only where the worker died
        return job, {"follow_up": follow_up["status"], **stats}


def test_user_error_in_the_search_is_reported_with_its_field(monkeypatch):
    job, after = _run_in_mode(monkeypatch, "infeasible")
    assert job["status"] == "failed"
    (problem,) = job["error"]["problems"]
    assert problem["field"] == "tpot" and "closest" in problem["message"]
    assert after["follow_up"] == "failed"  # the same worker (still in infeasible mode) answered again
    assert after["workers_started"] == 1


def test_internal_error_is_reported_without_details(monkeypatch):
    job, _ = _run_in_mode(monkeypatch, "bug")
    assert job["status"] == "failed"
    text = json.dumps(job)
    assert "/etc/shadow" not in text and "Traceback" not in text
    assert "internal error" in job["error"]["detail"]


def test_crashed_worker_is_replaced(monkeypatch):
    job, after = _run_in_mode(monkeypatch, "crash")
    assert job["status"] == "failed" and "internal error" in job["error"]["detail"]
    assert after["follow_up"] == "done"
    assert after["workers_started"] == 2


def test_search_past_the_time_limit_is_stopped(monkeypatch):
    job, after = _run_in_mode(monkeypatch, "hang", job_time_limit_s=2.0)
    assert job["status"] == "timed_out"
    assert "time limit of 2 s" in job["error"]["detail"]
    assert after["follow_up"] == "done"
    assert after["workers_started"] == 2


def test_full_queue_answers_429_with_retry_after(monkeypatch):
    monkeypatch.setenv("FAKE_PIPELINE_MODE", "hang")
    with client_for(max_queued=2, job_time_limit_s=60) as client:
        answers = [client.post("/api/searches", json=DEFAULT_FORM)]
        wait_for(client, answers[0].json()["id"], until=("running",))
        answers += [client.post("/api/searches", json=DEFAULT_FORM) for _ in range(4)]
        codes = [a.status_code for a in answers]
        # one search runs, two wait, the rest are refused
        assert codes[:3] == [202, 202, 202] and codes[3:] == [429, 429], codes
        refused = answers[-1]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["detail"].startswith("queue:")
        queued = answers[2].json()
        assert queued["status"] == "queued" and queued["position"] >= 1
        for answer in answers[:3]:
            client.delete(f"/api/searches/{answer.json()['id']}")
        stats = client.get("/api/health").json()["queue"]
        assert stats["refused"] == 2 and stats["submitted"] == 3


# ------------------------------------------------------------------ the page and the guards around it
def test_page_and_its_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>servopt" in page.text
    scripts = ("/static/app.js", "/static/dom.js", "/static/editor.js", "/static/results.js")
    for asset in (*scripts, "/static/app.css", "/static/plotly.min.js"):
        response = client.get(asset)
        assert response.status_code == 200, asset
    plotly = client.get("/static/plotly.min.js")
    assert "javascript" in plotly.headers["content-type"] and len(plotly.content) > 1_000_000
    for text in (page.text, client.get("/static/app.css").text, *(client.get(s).text for s in scripts)):
        assert "http://" not in text and "https://" not in text  # no CDN: it works offline


def test_security_headers(client):
    headers = client.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


def test_foreign_host_header_is_refused_on_loopback(client):
    response = client.get("/api/health", headers={"Host": "attacker.example"})
    assert response.status_code == 400


def test_no_interactive_docs_from_a_cdn(client):
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404


EXPERIMENT_KEYS = st.sampled_from(
    [
        "mode",
        "serving_mode",
        "model_name",
        "total_gpus",
        "system_name",
        "decode_system_name",
        "backend_name",
        "backend_version",
        "isl",
        "osl",
        "ttft",
        "tpot",
        "enable_wide_ep",
        "profiles",
        "config",
    ]
)
CONFIG_KEYS = st.sampled_from(
    [
        "nextn",
        "nextn_accept_rates",
        "worker_config",
        "prefill_worker_config",
        "decode_worker_config",
        "replica_config",
        "advanced_tuning_config",
        "tp_list",
        "num_gpu_per_worker",
        "gemm_quant_mode",
    ]
)
YAML_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-10, 10**6)
    | st.floats()
    | st.sampled_from(
        ["agg", "disagg", "patch", "replace", "QWEN3_32B", "h200_sxm", "trtllm", "fp8", "current", ""]
    )
)
YAML_VALUES = st.recursive(
    YAML_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(CONFIG_KEYS, inner, max_size=4),
    max_leaves=10,
)
BASE_EXPERIMENT = {
    "mode": "patch",
    "serving_mode": "agg",
    "model_name": "QWEN3_32B",
    "total_gpus": 8,
    "system_name": "h200_sxm",
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(EXPERIMENT_KEYS, YAML_VALUES, max_size=4))
def test_arbitrary_experiment_yaml_is_never_a_500(client, changes):
    import yaml

    text = yaml.safe_dump({"e": {**BASE_EXPERIMENT, **changes}})
    response = client.post("/api/validate", json={"kind": "yaml", "yaml": text})
    assert response.status_code in (200, 422), f"{response.status_code} for\n{text}\n{response.text}"
    _no_trace(response)


def test_stopping_the_app_stops_its_worker_process(monkeypatch):
    monkeypatch.delenv("FAKE_PIPELINE_MODE", raising=False)
    with client_for() as client:
        wait_for(client, client.post("/api/searches", json=DEFAULT_FORM).json()["id"])
        worker = client.app.state.jobs.worker
        process = worker._process
        assert worker.alive
    assert not worker.alive
    assert process.exitcode is not None  # reaped, not left running


# ------------------------------------------------------------------ a load on the form (rate sizing)
LOADED = {
    **DEFAULT_FORM,
    "request_rate": 12.5,
    "ttft_percentile": 90,
    "objective": "min_cost",
    "arrival": "gamma",
    "arrival_cv": 2.5,
    "gpu_hour_price": "h200_sxm=3.5, h100_sxm=2",
}


def test_a_load_on_the_form_runs_rate_sizing(client):
    response = client.post("/api/searches", json=LOADED)
    assert response.status_code == 202, response.text
    job = wait_for(client, response.json()["id"])
    assert job["status"] == "done", job
    doc = job["result"]["sizing"]
    # The form's fields reach the sizing question: load and arrivals, targets and percentiles,
    # objective, prices.
    assert doc["load"]["request_rate"] == 12.5 and doc["targets"]["ttft_percentile"] == 90
    assert doc["load"]["arrival"] == "gamma"
    assert doc["targets"]["tpot_percentile"] == 99 and doc["objective"] == "min_cost"
    assert doc["best"]["cost"]["usd_per_hour"] == 3.5 * doc["best"]["total_gpus_used"]
    assert doc["best"]["analytic"]["tpot_ms"] is None  # null survives as null
    assert job["lines"] == {"calibration": RAW_MODEL_LINE, "bands": []}
    csv_text = client.get(f"/api/searches/{job['id']}/result.csv").text
    assert csv_text.splitlines()[0].startswith("experiment,serving_mode,rank,") and "agg,agg,1," in csv_text


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"request_rate": 0}, "request_rate"),
        ({"request_rate": -3}, "request_rate"),
        ({"concurrency": 0}, "concurrency"),
        ({"request_rate": 4, "concurrency": 8}, "concurrency"),
        ({"request_rate": 4, "ttft_percentile": 100}, "ttft_percentile"),
        ({"request_rate": 4, "tpot_percentile": 0}, "tpot_percentile"),
        ({"request_rate": 4, "objective": "min_gpu"}, "objective"),
        ({"concurrency": 8, "objective": "max_goodput_per_gpu"}, "objective"),
        ({"request_rate": 4, "decode_system": "h300"}, "decode_system"),
        ({"request_rate": 4, "arrival": "bursty"}, "arrival"),
        ({"request_rate": 4, "arrival": "gamma", "arrival_cv": 0}, "arrival_cv"),
        ({"request_rate": 4, "arrival_cv": -1}, "arrival_cv"),
        ({"request_rate": 4, "objective": "min_cost"}, "gpu_hour_price"),
        ({"request_rate": 4, "gpu_hour_price": "h200_sxm"}, "gpu_hour_price"),
        ({"request_rate": 4, "gpu_hour_price": "h200_sxm=-2"}, "gpu_hour_price"),
        ({"request_rate": 4, "gpu_hour_price": "h300=2"}, "gpu_hour_price"),
        ({"request_rate": 4, "gpu_hour_price": "b200_sxm=2"}, "gpu_hour_price"),
        ({"request_rate": 4, "decode_system": "h100_sxm", "gpu_hour_price": "h200_sxm=2"}, "gpu_hour_price"),
    ],
)
def test_bad_loads_are_422_naming_the_field(client, extra, field):
    for path in ("/api/validate", "/api/searches"):
        response = client.post(path, json={**DEFAULT_FORM, **extra})
        assert response.status_code == 422, response.text
        assert field in _fields(response)
        _no_trace(response)
