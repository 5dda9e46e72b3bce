"""End to end in a real headless browser: open the page, run a small search, see the table and chart;
and size a load from the form's load section, see the sizing headline and table.

Debian's chromium is driven by playwright-core (``tests/webapp/e2e``; ``npm ci`` there). The search
runs on ``servopt.pipeline`` when it exists, else on the fake pipeline (the page, the API, the queue
and the worker process are real either way). Screenshots go to the test's tmp folder, or to
``$SERVOPT_E2E_SCREENSHOTS`` when set (to look at them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import FAKE_PIPELINE, require_web_extra

require_web_extra()

from servopt.report.robustness import NO_BANDS  # noqa: E402
from servopt.report.tables import RAW_MODEL_LINE  # noqa: E402
from servopt.webapp.settings import WebSettings  # noqa: E402

from .loopback import LoopbackServer  # noqa: E402

E2E_DIR = Path(__file__).parent / "e2e"
SCRIPT = E2E_DIR / "run_search.mjs"
SIZING_SCRIPT = E2E_DIR / "run_sizing.mjs"
# Browser start, a search (a real one compiles kernels on first use) and two screenshots.
BROWSER_TIMEOUT_S = 420
SCREENSHOTS_ENV = "SERVOPT_E2E_SCREENSHOTS"


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


def _pipeline_module() -> str:
    return "servopt.pipeline" if importlib.util.find_spec("servopt.pipeline") else FAKE_PIPELINE


def _browser_run(script: Path, tmp_path: Path, monkeypatch) -> tuple[dict, Path, str]:
    """Serve the app on loopback and drive it with ``script``; (what it saw, screenshots, pipeline).
    Skips, saying what to install, where node, chromium or playwright-core is missing."""
    node = shutil.which("node")
    chromium = _chromium()
    if node is None:
        pytest.skip("node is not installed (apt-get install -y nodejs npm)")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    if not (E2E_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.skip("playwright-core is not installed (cd tests/webapp/e2e && npm ci)")
    monkeypatch.delenv("FAKE_PIPELINE_MODE", raising=False)
    shots = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)

    pipeline = _pipeline_module()
    server = LoopbackServer(WebSettings(pipeline_module=pipeline, job_time_limit_s=BROWSER_TIMEOUT_S))
    base = server.start()
    try:
        run = subprocess.run(
            [node, str(script), base, chromium, str(shots)],
            cwd=E2E_DIR,
            capture_output=True,
            text=True,
            timeout=BROWSER_TIMEOUT_S,
        )
    finally:
        server.stop()
    assert run.returncode == 0, f"browser run failed ({pipeline}):\n{run.stdout}\n{run.stderr}"
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"\ne2e ({pipeline}): {json.dumps(seen)}\nscreenshots: {shots}")
    return seen, shots, pipeline


@pytest.mark.slow
def test_page_runs_a_search_and_shows_table_and_chart(tmp_path, monkeypatch):
    seen, shots, pipeline = _browser_run(SCRIPT, tmp_path, monkeypatch)

    assert seen["tables"] and all(t["rows"] >= 1 for t in seen["tables"])
    assert seen["traces"] >= 1 and seen["points"] >= 1
    assert "tokens/s/GPU" in seen["verdict"]
    if pipeline == "servopt.pipeline":  # the calibrated answer's lines, as the terminal's
        assert "80% band: TTFT" in seen["verdict"] and "pessimistic end" in seen["verdict"]
        assert "calibrated: default profile" in seen["verdict"]
    else:
        assert RAW_MODEL_LINE in seen["verdict"] and NO_BANDS in seen["verdict"]
    assert "tokens/s/user" in seen["hover"]
    assert seen["files"], "the first row's deployment configs were not shown"
    assert seen["note"]["line"] in seen["gutterBad"]
    assert any(t.startswith("run 1: ") for t in seen["legend"])
    for name in ("result.png", "yaml-problem.png", "two-runs.png"):
        assert (shots / name).stat().st_size > 10_000, name


@pytest.mark.slow
def test_page_sizes_a_load_at_least_cost_and_shows_headline_and_table(tmp_path, monkeypatch):
    # The load section: 4 req/s (gamma arrivals), p90 TTFT / p99 TPOT, min_cost at a user price;
    # first without the price (422 next to the field), then with it.
    seen, shots, pipeline = _browser_run(SIZING_SCRIPT, tmp_path, monkeypatch)
    assert "gpu_hour_price" in seen["priceError"] and "min_cost" in seen["priceError"]
    assert "4 req/s (gamma)" in seen["verdict"] and "USD/hour" in seen["verdict"]
    assert ("calibrated: " if pipeline == "servopt.pipeline" else RAW_MODEL_LINE) in seen["verdict"]
    assert seen["head"][:3] == ["mode", "GPUs", "USD/hour"]
    best = seen["rows"][0]
    gpus = int(best[1].split()[0])
    # The price reaches the answer: the best row costs its GPUs x 3.5 USD/hour.
    assert best[2] == f"{3.5 * gpus:.2f}", best
    if pipeline == "servopt.pipeline":
        assert 1 <= gpus <= 16
    assert (shots / "sizing.png").stat().st_size > 10_000
