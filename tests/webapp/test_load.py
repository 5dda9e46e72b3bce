"""Load on loopback: 50 concurrent search requests against a real uvicorn server.

Every request must be answered (202 queued, or 429 refused: the queue holds one running search and
``max_queued`` waiting ones), and the server must stay up and keep answering. The searches hang in
the fake pipeline, so the counts do not depend on timing; all of them are cancelled at the end.
Bounded: 50 searches + 50 reads, each with a 30 s client timeout, one server on 127.0.0.1.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from .conftest import DEFAULT_FORM, FAKE_PIPELINE, require_web_extra

require_web_extra()
import httpx  # noqa: E402

from servopt.webapp.settings import WebSettings  # noqa: E402

from .loopback import LoopbackServer  # noqa: E402

CONCURRENT_REQUESTS = 50
MAX_QUEUED = 8
CLIENT_TIMEOUT_S = 30.0


def _post(client, url: str) -> tuple[int, float, dict]:
    start = time.perf_counter()
    response = client.post(url, json=DEFAULT_FORM)
    return response.status_code, time.perf_counter() - start, response.json()


def test_fifty_concurrent_searches_are_all_answered(monkeypatch):
    monkeypatch.setenv("FAKE_PIPELINE_MODE", "hang")
    settings = WebSettings(
        pipeline_module=FAKE_PIPELINE, max_queued=MAX_QUEUED, job_time_limit_s=120, prewarm=True
    )
    server = LoopbackServer(settings)
    base = server.start()
    limits = httpx.Limits(max_connections=CONCURRENT_REQUESTS + 10)
    try:
        with httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT_S, limits=limits) as client:
            burst_start = time.perf_counter()
            with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
                answers = list(pool.map(lambda _: _post(client, "/api/searches"), range(CONCURRENT_REQUESTS)))
            burst_s = time.perf_counter() - burst_start

            codes = Counter(code for code, _, _ in answers)
            assert set(codes) <= {202, 429}, codes
            # one running + MAX_QUEUED waiting; one fewer if every request beat the worker's first pick
            assert MAX_QUEUED <= codes[202] <= MAX_QUEUED + 1, codes
            assert codes[429] == CONCURRENT_REQUESTS - codes[202]
            assert all(body["detail"].startswith("queue:") for code, _, body in answers if code == 429)

            # the server still answers while the queue is full: reads and validations
            with ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS) as pool:
                reads = list(
                    pool.map(
                        lambda i: (
                            client.get("/api/health")
                            if i % 2
                            else client.post("/api/validate", json=DEFAULT_FORM)
                        ),
                        range(CONCURRENT_REQUESTS),
                    )
                )
            assert all(r.status_code == 200 for r in reads)
            stats = client.get("/api/health").json()["queue"]
            assert stats["running"] == 1 and stats["queued"] == codes[202] - 1
            assert stats["refused"] == codes[429]

            # drain: cancel everything; the next search runs on a fresh worker that behaves
            monkeypatch.setenv("FAKE_PIPELINE_MODE", "ok")
            for code, _, body in answers:
                if code == 202:
                    assert client.delete(f"/api/searches/{body['id']}").status_code == 200
            job = client.post("/api/searches", json=DEFAULT_FORM).json()
            deadline = time.monotonic() + 120
            while client.get(f"/api/searches/{job['id']}").json()["status"] != "done":
                assert time.monotonic() < deadline, "the search after the flood did not finish"
                time.sleep(0.1)

            latencies = sorted(t for _, t, _ in answers)
            print(
                f"\nload: {CONCURRENT_REQUESTS} concurrent POST /api/searches in {burst_s:.2f} s: "
                f"{codes[202]} queued (202), {codes[429]} refused (429); latency p50 "
                f"{statistics.median(latencies) * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
                f"{CONCURRENT_REQUESTS} reads while full: all 200"
            )
    finally:
        server.stop()
    assert not server.thread.is_alive()
