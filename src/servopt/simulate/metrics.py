"""Per-request times -> the figures benchmark clients report: TTFT, TPOT, ITL, E2E percentiles,
throughput, goodput.

Definitions follow the benchmark clients (AIPerf, ``vllm bench serve``): TTFT = first token -
arrival; TPOT = (last token - first token) / (output tokens - 1), per request; ITL = every gap
between consecutive tokens of a request; E2E = last token - arrival. Throughput counts output
tokens of the measured requests over the measured window (first measured arrival to last measured
completion). Warm-up requests (the first ``warmup`` issued) and, in a closed loop, the last
``cooldown`` issued (which run while the client pool drains) are excluded from every statistic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servopt.simulate.engine import RawRun
from servopt.simulate.workload import Requests
from servopt_kernels.sim import ITL_LO_MS, ITL_RATIO

PERCENTILES = (50, 90, 99)


def summary(values: np.ndarray) -> dict[str, float] | None:
    """mean, p50, p90, p99 (None when there is nothing to summarise: JSON never holds NaN)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    out = {"mean": float(v.mean())}
    for p, value in zip(PERCENTILES, np.percentile(v, PERCENTILES), strict=True):
        out[f"p{p}"] = float(value)
    return out


def histogram_summary(hist: np.ndarray, lo_ms: float, ratio: float) -> dict[str, float] | None:
    """The same figures from the kernel's log-binned inter-token-gap histogram (bin midpoints)."""
    total = float(hist.sum())
    if total <= 0:
        return None
    edges = lo_ms * ratio ** np.arange(len(hist) + 1)
    mids = np.sqrt(edges[:-1] * edges[1:])
    cum = np.cumsum(hist) / total
    out = {"mean": float((hist * mids).sum() / total)}
    for p in PERCENTILES:
        k = int(np.searchsorted(cum, p / 100.0))
        out[f"p{p}"] = float(mids[min(k, len(mids) - 1)])
    return out


@dataclass
class SimResult:
    """Figures of one simulation (ms, per-second rates)."""

    ttft_ms: dict | None
    tpot_ms: dict | None
    itl_ms: dict | None
    e2e_ms: dict | None
    output_tokens_per_s: float
    output_tokens_per_s_per_gpu: float
    requests_per_s: float
    goodput_requests_per_s: float | None
    num_requests: int
    gpus: float
    preempted_requests: int
    iterations: int
    kv_utilization: dict | None
    queue_length: dict | None
    per_request: dict[str, np.ndarray]
    timeline: np.ndarray
    unfinished: int

    def to_json(self) -> dict:
        return {
            "ttft_ms": self.ttft_ms,
            "tpot_ms": self.tpot_ms,
            "itl_ms": self.itl_ms,
            "e2e_ms": self.e2e_ms,
            "output_tokens_per_s": self.output_tokens_per_s,
            "output_tokens_per_s_per_gpu": self.output_tokens_per_s_per_gpu,
            "requests_per_s": self.requests_per_s,
            "goodput_requests_per_s": self.goodput_requests_per_s,
            "num_requests": self.num_requests,
            "gpus": self.gpus,
            "preempted_requests": self.preempted_requests,
            "iterations": self.iterations,
            "kv_utilization": self.kv_utilization,
            "queue_length": self.queue_length,
        }


def measured_mask(n: int, warmup: int, cooldown: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[warmup : max(warmup, n - cooldown)] = True
    return mask


def summarize(
    raw: RawRun,
    requests: Requests,
    *,
    mask: np.ndarray,
    gpus: float,
    kv_capacity_tokens: float,
    ttft_target_ms: float | None = None,
    tpot_target_ms: float | None = None,
) -> SimResult:
    finished = raw.t_done >= 0
    m = mask & finished
    ttft = raw.t_first - raw.t_arrive
    e2e = raw.t_done - raw.t_arrive
    steps = requests.osl - 1
    tpot = np.where(steps > 0, (raw.t_done - raw.t_first) / np.maximum(steps, 1), np.nan)
    span_ms = float(raw.t_done[m].max() - raw.t_arrive[m].min()) if m.any() else 0.0
    per_s = 1000.0 / span_ms if span_ms > 0 else 0.0
    out_tok_s = float(requests.osl[m].sum()) * per_s
    goodput = None
    if ttft_target_ms is not None or tpot_target_ms is not None:
        ok = m.copy()
        if ttft_target_ms is not None:
            ok &= ttft <= ttft_target_ms
        if tpot_target_ms is not None:
            ok &= ~(tpot > tpot_target_ms)  # single-token requests have no TPOT to miss
        goodput = float(ok.sum()) * per_s
    tl = raw.timeline
    kv_util = summary(tl[:, 3] / kv_capacity_tokens) if len(tl) and kv_capacity_tokens > 0 else None
    queue = summary(tl[:, 1]) if len(tl) else None
    return SimResult(
        ttft_ms=summary(ttft[m]),
        tpot_ms=summary(tpot[m]),
        itl_ms=histogram_summary(raw.itl_hist, ITL_LO_MS, ITL_RATIO),
        e2e_ms=summary(e2e[m]),
        output_tokens_per_s=out_tok_s,
        output_tokens_per_s_per_gpu=out_tok_s / gpus if gpus > 0 else 0.0,
        requests_per_s=float(m.sum()) * per_s,
        goodput_requests_per_s=goodput,
        num_requests=int(m.sum()),
        gpus=gpus,
        preempted_requests=int((raw.preemptions[mask] > 0).sum()),
        iterations=raw.iterations,
        kv_utilization=kv_util,
        queue_length=queue,
        per_request={
            "arrival_ms": raw.t_arrive,
            "first_token_ms": raw.t_first,
            "done_ms": raw.t_done,
            "ttft_ms": ttft,
            "tpot_ms": tpot,
            "e2e_ms": e2e,
            "isl": requests.isl,
            "osl": requests.osl,
            "preemptions": raw.preemptions,
            "measured": mask,
        },
        timeline=tl,
        unfinished=int((~finished).sum()),
    )
