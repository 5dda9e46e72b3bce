"""An OpenAI-compatible HTTP endpoint whose timings are a planned deployment's simulated ones.

``/v1/completions`` and ``/v1/chat/completions`` (streaming and not), ``/v1/models``, ``/health``
and Prometheus ``/metrics``. Each request joins :class:`LiveSchedule`; its tokens are sent when the
simulated forward pass that produces them ends. Output text is filler (one word per token).

Token counts: the prompt's as :mod:`servopt.emulate.prompt` counts them (a token-id list's length,
else characters / 4 or a tokenizer's count); the output is ``max_tokens`` (or ``max_completion_tokens``; default 16 for completions, 256 for chat): the
emulator always generates exactly that many, as benchmark clients ask with ``ignore_eos``.

The web extra (FastAPI, uvicorn, prometheus-client) is imported here: only ``servopt emulate``
imports this module.

Bounded: request bodies over ``max_body_bytes`` get 413; more than ``max_in_flight`` requests in
flight get 429 with ``Retry-After``; prompts and outputs are capped at the model length the step
tables were built for.

Request log (optional, one JSON line per finished request, wall-clock Unix ns): when the server
had the request's body (its arrival) and when it joined the schedule, when its first and last tokens were due and when they
were sent (null if the client left first), and the client's ``X-Request-ID``. It separates what the client
and HTTP add before a request reaches the emulator from the emulator's own lag (sent - due).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from servopt.emulate.prompt import chars_over_four, prompt_tokens
from servopt.emulate.schedule import LiveSchedule

DEFAULT_MAX_TOKENS = {"completions": 16, "chat": 256}
FILLER = " the"  # one token in every common tokenizer (clients count output tokens themselves)


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 4 << 20
    max_in_flight: int = 1024
    max_model_len: int = 32768
    retry_after_s: int = 1


def output_tokens(body: dict, kind: str) -> int:
    value = body.get("max_completion_tokens", body.get("max_tokens", DEFAULT_MAX_TOKENS[kind]))
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_tokens: {value!r}: must be an integer >= 1")
    return value


def create_app(
    schedule: LiveSchedule,
    model_name: str,
    limits: Limits = Limits(),
    count: Callable[[str], int] = chars_over_four,
    request_log: TextIO | None = None,
):
    app = FastAPI(title="servopt emulate", docs_url=None, redoc_url=None)
    registry = CollectorRegistry()
    buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
    m_requests = Counter("servopt_emulate_requests", "Requests accepted", registry=registry)
    m_rejected = Counter(
        "servopt_emulate_rejected", "Requests refused (429/413/400)", ["code"], registry=registry
    )
    m_waiting = Gauge(
        "servopt_emulate_requests_waiting", "Requests waiting for a first token", registry=registry
    )
    m_running = Gauge("servopt_emulate_requests_running", "Requests generating", registry=registry)
    m_kv = Gauge("servopt_emulate_kv_cache_tokens", "KV-cache tokens in use (simulated)", registry=registry)
    m_ttft = Histogram(
        "servopt_emulate_time_to_first_token_seconds",
        "TTFT (simulated s)",
        buckets=buckets,
        registry=registry,
    )
    m_itl = Histogram(
        "servopt_emulate_inter_token_latency_seconds", "ITL (simulated s)", buckets=buckets, registry=registry
    )
    m_lag = Histogram(
        "servopt_emulate_token_lag_seconds",
        "Wall-clock lateness of each token after the time the schedule set (event-loop lag)",
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1),
        registry=registry,
    )
    state = {"in_flight": 0}
    # The schedule's clock (monotonic) -> Unix ns, for the request log.
    unix_offset_ns = time.time_ns() - round(schedule.clock() * 1e9)

    def unix_ns(clock_s: float) -> int:
        return unix_offset_ns + round(clock_s * 1e9)

    def error(code: int, message: str, headers: dict | None = None):
        m_rejected.labels(str(code)).inc()
        return JSONResponse({"error": {"message": message, "code": code}}, status_code=code, headers=headers)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "servopt"}]}

    @app.get("/metrics")
    async def metrics():
        waiting, running, kv = schedule.load_now()
        m_waiting.set(waiting)
        m_running.set(running)
        m_kv.set(kv)
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    async def handle(request: Request, kind: str):
        # The request's clock starts once its body is in (as a real server's handler gets it parsed):
        # a client slow to send its body is the client's time, not the server's.
        raw = await request.body()
        received = schedule.clock()
        if len(raw) > limits.max_body_bytes:
            return error(413, f"request body over {limits.max_body_bytes} bytes")
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if count is chars_over_four:
                isl = prompt_tokens(body, kind, count)
            else:  # a tokenizer takes ~2 ms per 1000 tokens: off the event loop (it frees the GIL)
                isl = await asyncio.to_thread(prompt_tokens, body, kind, count)
            osl = output_tokens(body, kind)
        except (ValueError, json.JSONDecodeError) as err:
            return error(400, str(err))
        if isl + osl > limits.max_model_len:
            return error(
                400, f"prompt ({isl}) + max_tokens ({osl}) exceed the model length {limits.max_model_len}"
            )
        if state["in_flight"] >= limits.max_in_flight:
            return error(429, "too many requests in flight", {"Retry-After": str(limits.retry_after_s)})
        state["in_flight"] += 1
        m_requests.inc()
        rid = schedule.add(isl, osl, at=received)
        epoch = schedule.epoch  # this request's, even after the schedule moves on to the next
        arrival, origin = epoch.arrival(rid), epoch.origin
        created = int(time.time())
        ident = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        usage = {"prompt_tokens": isl, "completion_tokens": osl, "total_tokens": isl + osl}

        sent = {}  # token index (first, last) -> (clock due, clock sent), for the request log

        async def tokens():
            """Yield lists of (index, simulated ms): the tokens due, as their time comes, following the
            schedule. Tokens already due together (an event loop behind) go out in one write."""
            seen, times, k = -1, None, 0
            while k < osl:
                while True:
                    if epoch.arrivals != seen:  # re-simulated after each later arrival
                        seen, times = epoch.arrivals, epoch.token_times_ms(rid)
                    due = origin + times[k] / 1000.0 / schedule.speedup
                    wait = due - schedule.clock()
                    if wait <= 0:
                        break
                    await asyncio.sleep(min(wait, 0.05))
                now = schedule.clock()
                batch = []
                while k < osl and (due := origin + times[k] / 1000.0 / schedule.speedup) <= now:
                    m_lag.observe(now - due)
                    if k in (0, osl - 1):
                        sent[k] = (due, now)
                    batch.append((k, float(times[k])))
                    k += 1
                yield batch

        def log() -> None:
            if request_log is None:
                return
            record = {
                "id": request.headers.get("x-request-id", ident), "kind": kind, "isl": isl, "osl": osl,
                "finished": osl - 1 in sent, "speedup": schedule.speedup, "received_ns": unix_ns(received),
                "arrival_ns": unix_ns(origin + arrival / 1000.0 / schedule.speedup),
            }  # fmt: skip
            for k, name in ((0, "first"), (osl - 1, "last")):
                due, at = sent.get(k, (None, None))
                record[f"{name}_due_ns"] = None if due is None else unix_ns(due)
                record[f"{name}_sent_ns"] = None if at is None else unix_ns(at)
            request_log.write(json.dumps(record) + "\n")

        def observe(k: int, t: float, last: float) -> float:
            """Record token k's latency (TTFT for the first, ITL after) in simulated seconds."""
            (m_ttft if k == 0 else m_itl).observe((t - last) / 1000.0)
            return t

        def chunk(k: int, text: str, finish: str | None) -> dict:
            if kind == "chat":
                delta = {"role": "assistant", "content": text} if k == 0 else {"content": text}
                return {
                    "id": ident, "object": "chat.completion.chunk", "created": created, "model": model_name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }  # fmt: skip
            return {
                "id": ident, "object": "text_completion", "created": created, "model": model_name,
                "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
            }  # fmt: skip

        # Serialised once: the first (role), a middle and the last (finish_reason) event.
        events = {
            k: f"data: {json.dumps(chunk(k, FILLER, 'length' if k == osl - 1 else None))}\n\n"
            for k in {0, min(1, osl - 1), osl - 1}
        }

        async def stream():
            last = arrival
            try:
                async for batch in tokens():
                    for k, t in batch:
                        last = observe(k, t, last)
                    yield "".join(events.get(k, events[min(1, osl - 1)]) for k, _ in batch)
                if (body.get("stream_options") or {}).get("include_usage"):
                    tail = chunk(osl, "", None) | {"choices": [], "usage": usage}
                    yield f"data: {json.dumps(tail)}\n\n"
                yield "data: [DONE]\n\n"
            finally:  # also when the client goes away mid-stream
                state["in_flight"] -= 1
                log()

        if body.get("stream"):
            return StreamingResponse(stream(), media_type="text/event-stream")
        try:
            last = arrival
            async for batch in tokens():
                for k, t in batch:
                    last = observe(k, t, last)
        finally:
            state["in_flight"] -= 1
            log()
        text = FILLER * osl
        if kind == "chat":
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "length",
            }
            return {"id": ident, "object": "chat.completion", "created": created, "model": model_name,
                    "choices": [choice], "usage": usage}  # fmt: skip
        choice = {"index": 0, "text": text, "finish_reason": "length", "logprobs": None}
        return {"id": ident, "object": "text_completion", "created": created, "model": model_name,
                "choices": [choice], "usage": usage}  # fmt: skip

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await handle(request, "completions")

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        return await handle(request, "chat")

    app.state.schedule = schedule
    return app
