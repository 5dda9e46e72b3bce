"""`servopt emulate` under 200 concurrent streaming clients on loopback, in bounded rounds.

Starts the emulator (a child process, `--max_in_flight 150`), runs ROUNDS rounds of 200 concurrent
streaming chat requests (httpx), and after each round reads the server's resident memory
(/proc/PID/status VmRSS). Then stops it with SIGINT and reports how long it took and its exit
code. What the issue asks: no errors but 429s, memory flat across rounds, a clean stop.

    python experiments/emulate_load.py [--rounds 6] [--clients 200] [--speedup 20]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def one(c: httpx.AsyncClient, k: int, max_tokens: int) -> str:
    body = {"model": "m", "messages": [{"role": "user", "content": f"{k} " + "word " * 400}]}
    body |= {"max_tokens": max_tokens, "stream": True}
    try:
        async with c.stream("POST", "/v1/chat/completions", json=body) as s:
            if s.status_code != 200:
                await s.aread()
                return str(s.status_code)
            n = 0
            async for line in s.aiter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    n += 1
            return "200" if n == max_tokens else f"200 short ({n})"
    except httpx.HTTPError as err:
        return type(err).__name__


async def round_(port: int, clients: int, max_tokens: int) -> collections.Counter:
    limits = httpx.Limits(max_connections=clients + 10)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120) as c:
        return collections.Counter(await asyncio.gather(*(one(c, k, max_tokens) for k in range(clients))))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--max_tokens", type=int, default=50)
    ap.add_argument("--speedup", type=float, default=20.0)
    args = ap.parse_args(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [str(Path(sys.executable).parent / "servopt"), "emulate", "--model", "QWEN3_32B"]
    cmd += ["--system", "h200_sxm", "--tp", "2", "--port", str(port), "--max_in_flight", "150"]
    cmd += ["--speedup", str(args.speedup)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"emulator did not start: {proc.stderr.read()}") from None
            time.sleep(0.5)
    rows = []
    for r in range(args.rounds):
        t0 = time.monotonic()
        codes = asyncio.run(round_(port, args.clients, args.max_tokens))
        rows.append({"round": r, "codes": dict(codes), "s": round(time.monotonic() - t0, 1), "rss_mib": 0.0})
        time.sleep(1.0)  # the epoch ends: every request has finished
        rows[-1]["rss_mib"] = round(rss_mib(proc.pid), 1)
        print(json.dumps(rows[-1]), flush=True)
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=60)
    stop_s = time.monotonic() - t0
    lag = [ln for ln in metrics.splitlines() if ln.startswith("servopt_emulate_token_lag_seconds_bucket")]
    print("token lag buckets:", "; ".join(ln.split("{")[1] for ln in lag))
    bad = {k for row in rows for k in row["codes"] if k not in ("200", "429")}
    growth = rows[-1]["rss_mib"] - rows[1]["rss_mib"] if len(rows) > 1 else 0.0
    print(
        f"codes other than 200/429: {sorted(bad) or 'none'}; RSS after round 1 {rows[1]['rss_mib']} MiB, "
        f"after round {len(rows) - 1} {rows[-1]['rss_mib']} MiB ({growth:+.1f}); "
        f"stopped in {stop_s:.1f} s, exit code {rc}"
    )
    return 0 if not bad and rc == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
