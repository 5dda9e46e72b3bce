#!/usr/bin/env python3
"""Run servopt and aiconfigurator 0.12.0 side by side on the same problems and print one table.

Both tools run as black boxes in subprocesses, alternating (servopt, peer, servopt, peer, ...) so
machine noise hits both alike. For each problem: wall time (median, min, max) of each tool, the
ratio of medians, peak RSS of each, the best tokens/s/gpu of each under the same SLA, and whether
the chosen configurations agree (mode and the decode/agg layout).

    python experiments/compare_aiconfigurator.py --reps 3
    python experiments/compare_aiconfigurator.py --problem QWEN3_32B:512:h200_sxm --reps 5 --json out.json

The peer is looked up on PATH (or --peer); it is the optional `aiconfigurator==0.12.0` dev extra.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field

# The reference problems of the benchmark issue: (servopt model name, total GPUs, system).
REFERENCE_PROBLEMS = [
    ("QWEN3_32B", 8, "h200_sxm"),
    ("QWEN3_32B", 512, "h200_sxm"),
    ("LLAMA3.1_70B", 64, "h100_sxm"),
    ("QWEN3_30B_A3B", 64, "h200_sxm"),
    ("QWEN3_235B", 64, "h200_sxm"),
    ("DEEPSEEK_V3", 32, "h200_sxm"),
    ("DEEPSEEK_V3", 512, "h200_sxm"),
]


@dataclass
class Run:
    wall_s: float
    peak_rss_mib: float
    best_tokens_per_s_per_gpu: float | None
    mode: str | None
    layout: str | None
    returncode: int


@dataclass
class Row:
    problem: str
    servopt: list[Run] = field(default_factory=list)
    peer: list[Run] = field(default_factory=list)


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """Run a command; return (wall seconds, peak RSS MiB of the child, return code, stdout)."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return wall, usage.ru_maxrss / 1024.0, proc.returncode, text


def _hf_id(model: str) -> str:
    from servopt.models.registry import resolve_model

    arch = resolve_model(model)
    return arch.hf_id or model


def run_servopt(servopt: str, model: str, gpus: int, system: str, sla: dict) -> Run:
    # --calibration none: the raw model, like for like with the peer.
    cmd = [servopt, "cli", "default", "--model", model, "--total_gpus", str(gpus), "--system", system,
           "--isl", str(sla["isl"]), "--osl", str(sla["osl"]), "--ttft", str(sla["ttft"]),
           "--tpot", str(sla["tpot"]), "--backend", sla["backend"], "--json",
           "--calibration", "none"]  # fmt: skip
    wall, rss, rc, text = _run(cmd)
    best = mode = layout = None
    if rc == 0:
        doc = json.loads(text)
        b = doc["best"]
        best, mode = b["tokens_per_s_per_gpu"], b["mode"]
        layout = _short_parallel(b.get("parallel") or b.get("decode_parallel"))
    return Run(wall, rss, best, mode, layout, rc)


def _short_parallel(label: str | None) -> str | None:
    """servopt's tp2pp1dp1etp1ep1 in the peer's spelling (tp2pp1 for dense layouts)."""
    if label is None:
        return None
    m = re.fullmatch(r"tp(\d+)pp(\d+)dp(\d+)etp(\d+)ep(\d+)", label)
    if m and m.group(3) == m.group(4) == m.group(5) == "1":
        return f"tp{m.group(1)}pp{m.group(2)}"
    return label


_PEER_BEST = re.compile(r"Best Experiment Chosen: (\w+) at ([\d.,]+) tokens/s/gpu")


def _peer_layout(text: str, mode: str) -> str | None:
    """The rank-1 row's parallel layout from the peer's top-configuration table of ``mode``."""
    section = text.split(f"{mode} Top Configurations", 1)
    if len(section) < 2:
        return None
    rows = [r for r in section[1].splitlines() if r.startswith("|  1 ")]
    if not rows:
        return None
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    parallels = [c for c in cells if re.fullmatch(r"tp\d+pp\d+(dp\d+)?(etp\d+ep\d+)?", c)]
    return parallels[-1] if parallels else None


def run_peer(peer: str, model: str, gpus: int, system: str, sla: dict) -> Run:
    cmd = [peer, "cli", "default", "--model", _hf_id(model), "--total-gpus", str(gpus), "--system", system,
           "--isl", str(sla["isl"]), "--osl", str(sla["osl"]), "--ttft", str(sla["ttft"]),
           "--tpot", str(sla["tpot"]), "--backend", sla["backend"]]  # fmt: skip
    env = dict(os.environ, NO_COLOR="1")
    wall, rss, rc, text = _run(cmd, env)
    m = _PEER_BEST.search(text)
    best = float(m.group(2).replace(",", "")) if m else None
    mode = m.group(1) if m else None
    layout = _peer_layout(text, mode) if mode else None
    return Run(wall, rss, best, mode, layout, rc)


def _fmt_times(runs: list[Run]) -> str:
    walls = [r.wall_s for r in runs]
    return f"{statistics.median(walls):7.2f} ({min(walls):.2f}-{max(walls):.2f})"


def render(rows: list[Row]) -> str:
    head = (f"{'problem':<28} {'servopt s med (min-max)':>24} {'peer s med (min-max)':>24} {'speedup':>8} "
            f"{'RSS MiB s/p':>12} {'tok/s/gpu servopt':>18} {'tok/s/gpu peer':>15} {'same choice':>11}")  # fmt: skip
    lines = [head, "-" * len(head)]
    for row in rows:
        s, p = row.servopt, row.peer
        ratio = statistics.median(r.wall_s for r in p) / statistics.median(r.wall_s for r in s)
        rss = f"{max(r.peak_rss_mib for r in s):.0f}/{max(r.peak_rss_mib for r in p):.0f}"
        bs, bp = s[-1].best_tokens_per_s_per_gpu, p[-1].best_tokens_per_s_per_gpu
        same = (s[-1].mode == p[-1].mode) and (s[-1].layout == p[-1].layout)
        best_s = "failed" if bs is None else f"{bs:.2f}"
        best_p = "failed" if bp is None else f"{bp:.2f}"
        lines.append(
            f"{row.problem:<28} {_fmt_times(s):>24} {_fmt_times(p):>24} {ratio:7.1f}x {rss:>12} "
            f"{best_s:>18} {best_p:>15} {'yes' if same else 'no':>11}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--problem", action="append", help="MODEL:GPUS:SYSTEM (repeatable); default: all reference problems"
    )
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--isl", type=int, default=4000)
    ap.add_argument("--osl", type=int, default=1000)
    ap.add_argument("--ttft", type=float, default=1000.0)
    ap.add_argument("--tpot", type=float, default=40.0)
    ap.add_argument("--backend", default="trtllm", choices=("trtllm", "sglang", "vllm"))
    here = os.path.dirname(sys.executable)  # a venv that is not activated
    ap.add_argument(
        "--servopt", default=shutil.which("servopt") or shutil.which("servopt", path=here) or "servopt"
    )
    ap.add_argument(
        "--peer",
        default=shutil.which("aiconfigurator")
        or shutil.which("aiconfigurator", path=here)
        or "aiconfigurator",
    )
    ap.add_argument("--json", dest="json_path", help="also write the raw runs as JSON here")
    args = ap.parse_args(argv)
    problems = (
        [(m, int(g), s) for m, g, s in (p.split(":") for p in args.problem)]
        if args.problem
        else REFERENCE_PROBLEMS
    )
    sla = {"isl": args.isl, "osl": args.osl, "ttft": args.ttft, "tpot": args.tpot, "backend": args.backend}
    rows = []
    for model, gpus, system in problems:
        row = Row(f"{model} {gpus}x{system}")
        # Warm-up: perf database cached, kernels' AOT module built (not in the background while
        # timing), then one run.
        subprocess.run(
            [args.servopt, "perfdb", "warm", "--system", system, "--backend", args.backend],
            stdout=subprocess.DEVNULL,
            check=False,
        )
        run_servopt(args.servopt, model, gpus, system, sla)
        for _ in range(args.reps):
            row.servopt.append(run_servopt(args.servopt, model, gpus, system, sla))
            row.peer.append(run_peer(args.peer, model, gpus, system, sla))
        rows.append(row)
        print(f"done: {row.problem}", file=sys.stderr)
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump([asdict(r) for r in rows], fh, indent=2)
    print(render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
