"""Fault injection: damaged caches, unusable cache folders, hostile experiment files and inputs.

Every test here injects one fault the way a killed run, a bad disk or a hostile user would, and
checks the standard: one clear line (a warning, or an error with exit code 2), never a traceback,
a hang, a silent wrong answer or a file outside where the user asked. No test times anything.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest


@pytest.fixture
def cache_warnings(caplog):
    """The one-line warnings of servopt's cache handling, as a list of messages."""
    caplog.set_level(logging.WARNING, logger="servopt.cache")

    def messages() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "servopt.cache"]

    return messages


@pytest.fixture(autouse=True)
def _fresh_cache_location():
    """resources.cache_dir checks a location once per process; each test starts unchecked."""
    from servopt import resources

    resources._checked.cache_clear()
    yield
    resources._checked.cache_clear()


def servopt(
    *args: str, env: dict | None = None, cwd=None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """The CLI in a subprocess: real exit codes and streams."""
    import os

    return subprocess.run(
        [sys.executable, "-m", "servopt", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def one_error_line(out: subprocess.CompletedProcess) -> str:
    """The CLI refused its input the standard way: exit 2, one error line on stderr, no traceback
    (informational WARNING lines, e.g. data borrowed from another version, may precede it)."""
    lines = [line for line in out.stderr.strip().splitlines() if not line.startswith("WARNING ")]
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr and len(lines) == 1, out.stderr[-2000:]
    return lines[0]
