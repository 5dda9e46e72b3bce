"""servopt emulate: the simulator's schedule served over HTTP (in-process ASGI; a loopback load test)."""

import asyncio
import io
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


def test_a_request_arrives_when_received_and_arrivals_stay_in_order():
    clock = FakeClock()
    live = LiveSchedule(deployment("trtllm", False, 10**6), clock=clock, speedup=2.0)
    received = clock.t + 0.010
    clock.t += 0.015  # body read, tokens counted: 5 ms later
    a = live.add(100, 5, at=received)
    assert live.arrival(a) == pytest.approx(20.0)  # 10 ms of clock at speedup 2
    b = live.add(100, 5, at=received - 0.004)  # overtaken by a: arrives with it
    assert live.arrival(b) == live.arrival(a)
    assert live.add(100, 5) > b and live.arrival(b + 1) == pytest.approx(30.0)


def test_a_closed_epoch_keeps_its_final_times_for_late_readers():
    """A handler that slept through the end of its epoch reads the times the later arrivals set."""
    clock = FakeClock()
    dep = deployment("vllm", False, 10**6)
    live = LiveSchedule(dep, clock=clock)
    a = live.add(2000, 20)
    epoch = live.epoch
    alone = live.token_times_ms(a).copy()
    clock.t += 0.05
    b = live.add(3000, 20)  # on the other instance, or with a: a's later tokens move
    live.add(3000, 20)
    joint = live.token_times_ms(a).copy()
    assert joint[-1] > alone[-1]
    clock.t += 100.0
    live.add(10, 2)  # long after both ended: a new epoch
    assert not live.in_epoch(a) and a in epoch and b in epoch
    np.testing.assert_array_equal(epoch.token_times_ms(a), joint)
    req = Requests(np.array([0.0, 50.0, 50.0]), np.array([2000, 3000, 3000]), np.array([20, 20, 20]))
    raw = run(dep, req, record_tokens=True)
    np.testing.assert_allclose(joint, raw.token_times_ms(0, 20), rtol=1e-9)


def client(speedup=200.0, limits=Limits(), request_log=None, **kw):
    live = LiveSchedule(deployment("vllm", False, 10**6), speedup=speedup)
    app = create_app(live, "test-model", limits, request_log=request_log, **kw)
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


def test_a_tokenizer_counts_the_prompt_in_a_worker_thread():
    import threading

    seen = []

    def words(text: str) -> int:
        seen.append(threading.current_thread() is threading.main_thread())
        return len(text.split())

    async def go():
        async with client(count=words) as c:
            r = await c.post("/v1/completions", json={"prompt": "a b c d e", "max_tokens": 2})
            assert r.json()["usage"]["prompt_tokens"] == 5

    asyncio.run(go())
    assert seen == [False]  # off the event loop's thread


def test_request_log_times_are_the_simulators_and_tokens_are_not_early():
    """The log's due times are the simulator's (replayed from the logged arrivals); sent >= due."""
    log, speedup = io.StringIO(), 20.0
    rng = np.random.default_rng(3)
    isl, osl = rng.integers(50, 3000, 12), rng.integers(2, 30, 12)

    async def one(c, k):
        await asyncio.sleep(float(rng.exponential(0.004)) * k)
        body = {"messages": [{"role": "user", "content": "x" * (4 * int(isl[k]))}], "max_tokens": int(osl[k])}
        r = await c.post(
            "/v1/chat/completions", json=body | {"stream": k % 2 == 0}, headers={"X-Request-ID": f"r{k}"}
        )
        if k % 2:
            assert r.json()["usage"]["completion_tokens"] == osl[k]
        else:
            assert r.text.count("data: ") == osl[k] + 1

    async def go():
        async with client(speedup=speedup, request_log=log) as c:
            await asyncio.gather(*(one(c, k) for k in range(12)))
            return (await c.get("/metrics")).text

    metrics = asyncio.run(go())
    rows = sorted((json.loads(line) for line in log.getvalue().splitlines()), key=lambda r: r["arrival_ns"])
    assert sorted(r["id"] for r in rows) == sorted(f"r{k}" for k in range(12))
    k_of = [int(r["id"][1:]) for r in rows]
    assert [r["isl"] for r in rows] == [int(isl[k]) for k in k_of] and all(r["finished"] for r in rows)
    t0 = rows[0]["arrival_ns"]
    arrival = np.array([(r["arrival_ns"] - t0) / 1e6 * speedup for r in rows])
    raw = run(deployment("vllm", False, 10**6), Requests(arrival, isl[k_of], osl[k_of]))
    first_due = np.array([(r["first_due_ns"] - t0) / 1e6 * speedup for r in rows])
    last_due = np.array([(r["last_due_ns"] - t0) / 1e6 * speedup for r in rows])
    np.testing.assert_allclose(first_due, raw.t_first, atol=1e-3)
    np.testing.assert_allclose(last_due, raw.t_done, atol=1e-3)
    for r in rows:
        assert r["received_ns"] <= r["arrival_ns"] <= r["first_due_ns"] <= r["first_sent_ns"]
        assert r["last_due_ns"] <= r["last_sent_ns"]
    assert f"servopt_emulate_token_lag_seconds_count {float(osl.sum())}" in metrics


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
