"""``servopt webapp``: the command's options, its loopback default, and the settings' checks."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from servopt.cli import webapp_cmd
from servopt.errors import ServoptError
from servopt.webapp.settings import WebSettings

from .conftest import require_web_extra


def _app() -> typer.Typer:
    # The command as the root app mounts it: app.command("webapp")(webapp_cmd.webapp)
    app = typer.Typer()
    app.command("webapp")(webapp_cmd.webapp)
    app.command("other")(lambda: None)  # two commands, so "webapp" is addressed by name
    return app


@pytest.fixture
def served(monkeypatch):
    require_web_extra()
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def test_defaults_bind_loopback_port_8000(served):
    result = CliRunner().invoke(_app(), ["webapp"])
    assert result.exit_code == 0, result.output
    (app, kw) = served[0]
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8000 and kw["workers"] == 1
    assert app.state.settings.loopback_only
    assert "warning" not in result.output


def test_other_hosts_are_warned_about(served):
    result = CliRunner().invoke(_app(), ["webapp", "--host", "0.0.0.0", "--port", "9001"])
    assert result.exit_code == 0
    assert served[0][1]["port"] == 9001
    assert "warning: binding 0.0.0.0" in result.output


def test_bad_port_is_refused_naming_the_flag():
    with pytest.raises(ServoptError) as err:
        WebSettings(port=70000)
    assert err.value.field == "--port"


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_queued", -1), ("job_time_limit_s", 0), ("results_kept", 0), ("max_body_bytes", 10), ("host", "")],
)
def test_settings_checks_name_the_field(field, value):
    with pytest.raises(ServoptError) as err:
        WebSettings(**{field: value})
    assert err.value.field.lstrip("-") == field


def test_missing_web_extra_is_one_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_uvicorn(name, *args, **kwargs):
        if name == "uvicorn":
            raise ImportError("No module named 'uvicorn'", name="uvicorn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvicorn)
    result = CliRunner().invoke(_app(), ["webapp"])
    assert isinstance(result.exception, ServoptError)
    assert "pip install 'servopt[web]'" in str(result.exception)
