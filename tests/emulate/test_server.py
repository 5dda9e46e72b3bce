"""servopt emulate: the simulator's schedule served over HTTP (in-process ASGI; a loopback load test)."""

import asyncio
import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from tests.simulate.test_engine import deployment

from servopt.emulate.schedule import LiveSchedule
from servopt.emulate.server import Limits, create_app
from servopt.simulate.engine import run
from servopt.simulate.workload import Requests


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_live_schedule_gives_the_simulators_token_times():
    clock = FakeClock()
    dep = deployment("vllm", False, 10**6)
    live = LiveSchedule(dep, clock=clock)
    rng = np.random.default_rng(0)
    arrivals, isl, osl, ids = [], rng.integers(1, 1500, 60), rng.integers(1, 80, 60), []
    for k in range(60):
        clock.t += float(rng.exponential(0.01))
        ids.append(live.add(int(isl[k]), int(osl[k])))
        arrivals.append(live.now_ms())
        live.token_times_ms(ids[-1])  # the server reads as requests arrive: re-simulations in between
    raw = run(
        dep, Requests(np.array(arrivals), isl.astype(np.int64), osl.astype(np.int64)), record_tokens=True
    )
    for k, rid in enumerate(ids):
        np.testing.assert_allclose(live.token_times_ms(rid), raw.token_times_ms(k, int(osl[k])), rtol=1e-12)


def test_an_idle_gap_starts_a_new_epoch():
    clock = FakeClock()
    live = LiveSchedule(deployment("trtllm", False, 10**6), clock=clock)
    a = live.add(100, 5)
    clock.t += 100.0  # long after it finished
    b = live.add(100, 5)
    assert live.in_epoch(b) and not live.in_epoch(a)
    assert live.arrival(b) == 0.0


def client(speedup=200.0, limits=Limits()):
    live = LiveSchedule(deployment("vllm", False, 10**6), speedup=speedup)
    app = create_app(live, "test-model", limits)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emu")


def test_completions_chat_models_health_metrics():
    async def go():
        async with client() as c:
            assert (await c.get("/health")).json() == {"status": "ok"}
            assert (await c.get("/v1/models")).json()["data"][0]["id"] == "test-model"
            r = await c.post("/v1/completions", json={"prompt": [1, 2, 3, 4], "max_tokens": 7})
            body = r.json()
            assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 7, "total_tokens": 11}
            assert body["choices"][0]["text"].count("the") == 7
            chunks = []
            async with c.stream(
                "POST",
                "/v1/chat/completions",
                json={
                    "messages": [{"role": "user", "content": "x" * 400}],
                    "max_tokens": 5,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                },
            ) as s:
                async for line in s.aiter_lines():
                    if line.startswith("data: "):
                        chunks.append(line[6:])
            assert chunks[-1] == "[DONE]"
            parsed = [json.loads(x) for x in chunks[:-1]]
            assert sum(1 for p in parsed if p["choices"]) == 5
            assert parsed[-1]["usage"]["prompt_tokens"] == 100  # 400 characters / 4
            metrics = (await c.get("/metrics")).text
            assert "servopt_emulate_time_to_first_token_seconds_count 2.0" in metrics
            assert "servopt_emulate_inter_token_latency_seconds_count 10.0" in metrics

    asyncio.run(go())


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"not json", 400),
        (b'{"prompt": "x", "max_tokens": 0}', 400),
        (b'{"prompt": 5}', 400),
        (b'{"messages": []}', 400),
        (b'{"prompt": "x", "max_tokens": 100000}', 400),
        (b'{"prompt": "' + b"x" * (5 << 20) + b'"}', 413),
    ],
)
def test_bad_requests_are_refused_with_one_message(body, code):
    async def go():
        async with client() as c:
            path = "/v1/chat/completions" if b"messages" in body else "/v1/completions"
            r = await c.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code == code
            assert r.json()["error"]["message"]

    asyncio.run(go())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_200_streaming_clients_on_loopback_only_429s_and_a_clean_stop():
    import uvicorn

    live = LiveSchedule(deployment("vllm", False, 10**6), speedup=100.0)
    app = create_app(live, "m", Limits(max_in_flight=150))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started

    async def one(c: httpx.AsyncClient) -> int:
        async with c.stream(
            "POST", "/v1/completions", json={"prompt": "y" * 800, "max_tokens": 20, "stream": True}
        ) as s:
            if s.status_code != 200:
                return s.status_code
            lines = [line async for line in s.aiter_lines() if line.startswith("data: ")]
            assert lines[-1] == "data: [DONE]" and len(lines) == 21
            return 200

    async def go():
        limits = httpx.Limits(max_connections=250)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60) as c:
            return await asyncio.gather(*(one(c) for _ in range(200)))

    codes = asyncio.run(go())
    server.should_exit = True
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert set(codes) <= {200, 429} and codes.count(200) >= 150
