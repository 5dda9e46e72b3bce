"""Hostile experiment files: names that would write outside --save_dir or inject commands into the
generated run.sh are refused at their file:line; run.sh quotes whatever it is given."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from servopt.config import ConfigError, load_experiments, load_experiments_text
from servopt.errors import ServoptError
from servopt.report import deploy
from servopt.report.document import result_document
from servopt.report.save import save_run

from .conftest import one_error_line, servopt

BODY = (
    "  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: 8\n  system_name: h200_sxm\n"
)
HOSTILE = [
    "../../escape",
    "/tmp/absolute_escape",
    "a/b",
    "a\\b",
    "..",
    ".",
    "x\ncd; touch INJECTED\n",
    "tab\there",
    "x" * 129,
]


def _yaml(name: str) -> str:
    quoted = (
        '"' + name.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace('"', '\\"') + '"'
    )
    return f"ok:\n{BODY}{quoted}:\n{BODY}"


@pytest.mark.parametrize("name", HOSTILE)
def test_unsafe_experiment_names_are_refused_at_their_line(tmp_path, name):
    path = tmp_path / "exp.yaml"
    path.write_text(_yaml(name))
    with pytest.raises(ConfigError) as err:
        load_experiments(path)
    (problem,) = err.value.problems
    assert (problem.file, problem.line, problem.field) == (str(path), 7, "experiment name")
    assert "\n" not in str(err.value)  # one problem, one line
    with pytest.raises(ConfigError):  # the web app's loader: the same rule
        load_experiments_text(_yaml(name))


@pytest.mark.parametrize(
    "name", ['it\'s "quoted"', "x$(touch INJECTED)`touch INJECTED`", "spaces and ünïcode"]
)
def test_odd_but_safe_names_are_folder_names(tmp_path, name):
    path = tmp_path / "exp.yaml"
    path.write_text(_yaml(name))
    assert [e.name for e in load_experiments(path)] == ["ok", name]


def test_save_run_refuses_an_unsafe_name_before_writing_anything(tmp_path):
    result = SimpleNamespace(runs=[SimpleNamespace(name="ok"), SimpleNamespace(name="../../escape")])
    with pytest.raises(ServoptError) as err:
        save_run(result, {"experiments": []}, tmp_path / "save", top_n=1)
    assert err.value.field == "experiment name"
    assert list(tmp_path.iterdir()) == []


NASTY = [
    "x\ncd; touch INJECTED\n",
    "x$(cd; touch INJECTED)",
    "x`cd; touch INJECTED`",
    'it\'s "quoted"; cd; touch INJECTED',
    "x\r\ncd; touch INJECTED #",
]


def _plan(name: str, model: str, backend: str) -> deploy.DeploymentPlan:
    worker = deploy.WorkerPlan("agg", 1, 2, 1, 1, 1, 1, 16, 4096)
    return deploy.DeploymentPlan(name, model, backend, "1.0", 1, (worker,), 4000, 1000, "fp8", False)


@pytest.mark.parametrize("backend", ["trtllm", "vllm", "sglang"])
@pytest.mark.parametrize("nasty", NASTY)
def test_run_sh_is_inert_whatever_the_names(tmp_path, nasty, backend):
    script = tmp_path / "run.sh"
    script.write_text(deploy.run_script(_plan(nasty, "/models/" + nasty, backend)))
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    # Every command the script may start is a stub that records its arguments and does nothing.
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for cmd in ("python3", "python", "trtllm-serve"):
        (stubs / cmd).write_text('#!/bin/sh\nprintf "%s\\n" "$0" "$@" >> "$HOME/calls"\n')
        (stubs / cmd).chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    run = subprocess.run(
        ["bash", str(script)],
        cwd=home,
        capture_output=True,
        text=True,
        env={"PATH": f"{stubs}:/usr/bin:/bin", "HOME": str(home)},
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in home.iterdir()) == ["calls"]  # nothing touched, only the stubs ran
    calls = (home / "calls").read_bytes().decode()
    assert "/models/" + nasty in calls  # the model path reached the engine as one argument


def test_cli_refuses_a_hostile_name_in_one_line_and_writes_nothing(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(_yaml("../../escape"))
    save = tmp_path / "save"
    out = servopt("cli", "exp", "--yaml_path", str(path), "--save_dir", str(save), "--json")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"{path}:7:1: experiment name" in out.stderr
    assert not save.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["exp.yaml"]


def test_cli_save_dir_that_is_a_file_is_one_error_line(tmp_path):
    (tmp_path / "file").write_text("in the way")
    out = servopt("cli", "default", "--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm",
                  "--save_dir", str(tmp_path / "file"), "--json")  # fmt: skip
    assert "--save_dir" in one_error_line(out)


def test_save_dir_files_stay_inside(qwen8_result, tmp_path):
    _, result = qwen8_result
    where = save_run(result, result_document(result), tmp_path / "save", top_n=1)
    assert where.parent == tmp_path / "save"
    for f in (tmp_path / "save").rglob("*"):
        assert Path(f).resolve().is_relative_to((tmp_path / "save").resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["save"]


@pytest.mark.parametrize("name", ["x\ncd; touch INJECTED\n", "../../escape"])
def test_the_web_app_refuses_the_same_names_at_their_line(name):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from servopt.webapp.server import create_app
    from servopt.webapp.settings import WebSettings

    # /api/validate runs the loader only; no search, so the real pipeline module is never started.
    with TestClient(create_app(WebSettings(prewarm=False)), base_url="http://127.0.0.1") as client:
        response = client.post("/api/validate", json={"kind": "yaml", "yaml": _yaml(name)})
    assert response.status_code == 422
    (problem,) = response.json()["problems"]
    assert problem["field"] == "experiment name" and problem["line"] == 7
