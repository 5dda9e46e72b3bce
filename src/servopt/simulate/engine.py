"""A deployment as engine instances, run through the simulator kernel; per-request times out.

An aggregated worker with attention data parallelism ``dp`` and pipeline depth ``pp`` is
``dp * pp`` engine instances (each dp rank schedules its own batch; pp stages keep ``pp``
micro-batches in flight, the peer's throughput assumption), each with its share of the worker's
KV cache. A disaggregated replica is ``x`` prefill workers and ``y`` decode workers, expanded the
same way. Instances of one *kind* share a policy and step tables.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from servopt.errors import InfeasibleError, ServoptError
from servopt.simulate.policy import SchedulerPolicy
from servopt.simulate.step_time import StepTables
from servopt.simulate.workload import Requests
from servopt_kernels import sim

ROLES = {"agg": 0, "prefill": 1, "decode": 2}
TIMELINE_ROWS = 4096


@dataclass(frozen=True)
class InstanceKind:
    """``count`` identical engine instances."""

    role: str  # agg | prefill | decode
    count: int
    policy: SchedulerPolicy
    kv_tokens: int  # KV-cache capacity of one instance, tokens
    tables: StepTables
    gpus_per_instance: float
    label: str = ""
    kv_bytes_per_token: float = 0.0  # one GPU's share, for messages
    pull: bool | None = None  # routing: shared queue (None: prefill pulls, others are pushed to)
    ranks_per_worker: int = 1  # consecutive instances of one worker (its dp x pp lanes)

    @property
    def pulls(self) -> bool:
        return self.role == "prefill" if self.pull is None else self.pull


@dataclass(frozen=True)
class Deployment:
    kinds: tuple[InstanceKind, ...]
    xfer_fixed_ms: float = 0.0  # disaggregated KV transfer: fixed part
    xfer_ms_per_token: float = 0.0  # and per prompt token
    # From a client's send to the engines' queue (tokenization, HTTP, frontend): part of TTFT/E2E.
    request_overhead_ms: float = 0.0

    @property
    def gpus(self) -> float:
        return float(sum(k.count * k.gpus_per_instance for k in self.kinds))

    @property
    def disagg(self) -> bool:
        return any(k.role == "prefill" for k in self.kinds)


@dataclass(frozen=True)
class EarlyStop:
    """Stop an open-loop run once the ``watch``ed requests' verdict is settled (``sim.simulate``):
    all of them done, or ``ttft_fail_at`` of them with TTFT > ``ttft_limit_ms``, or ``tpot_fail_at``
    (osl > 1) with TPOT > ``tpot_limit_ms``. The watched requests' times are then exactly the whole
    run's (the loop is causal); the others' may be missing (-1)."""

    watch: np.ndarray  # (n,) bool
    ttft_limit_ms: float = np.inf
    tpot_limit_ms: float = np.inf
    ttft_fail_at: int = np.iinfo(np.int64).max
    tpot_fail_at: int = np.iinfo(np.int64).max


@dataclass
class RawRun:
    """What the kernel wrote, per request in issue order (ms; -1 = never happened)."""

    t_arrive: np.ndarray
    t_first: np.ndarray
    t_done: np.ndarray
    preemptions: np.ndarray
    itl_hist: np.ndarray
    timeline: np.ndarray  # (rows, 5): t, queued, running, KV tokens used, output tokens so far
    iterations: int
    # With record_tokens: every decoding pass's end (ms) and instance, and each request's last
    # decoding stint (first pass index among its instance's decoding passes, tokens before it).
    pass_end_ms: np.ndarray | None = None
    pass_instance: np.ndarray | None = None
    stint_pass: np.ndarray | None = None
    stint_tokens: np.ndarray | None = None
    instance: np.ndarray | None = None
    stop: int = sim.STOP_NONE  # why the run ended (``EarlyStop``): sim.STOP_*

    def token_times_ms(self, r: int, osl: int) -> np.ndarray:
        """When each of request ``r``'s ``osl`` tokens was produced (needs ``record_tokens``). Tokens
        of an earlier stint cut short by preemption are spaced evenly up to the last stint."""
        if self.pass_end_ms is None:
            raise ValueError("run(..., record_tokens=True) records token times")
        times = np.empty(osl)
        times[0] = self.t_first[r]
        g0 = int(self.stint_tokens[r])
        if osl > 1 and g0 >= 1 and self.instance[r] >= 0:
            ends = self.pass_end_ms[self.pass_instance == self.instance[r]]
            later = ends[int(self.stint_pass[r]) : int(self.stint_pass[r]) + osl - g0]
            times[g0:] = later
            if g0 > 1:  # an earlier stint, cut short by preemption
                times[1:g0] = np.linspace(times[0], later[0], g0 + 1)[1:-1]
        elif osl > 1:
            times[1:] = np.linspace(self.t_first[r], self.t_done[r], osl)[1:]
        return times


def _pad(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack 1-D arrays of different lengths (padded with their last value) and their lengths."""
    width = max(len(a) for a in arrays)
    out = np.zeros((len(arrays), width))
    for i, a in enumerate(arrays):
        out[i, : len(a)] = a
        out[i, len(a) :] = a[-1]
    return out, np.array([len(a) for a in arrays], dtype=np.int64)


def _pad2(arrays: list[np.ndarray]) -> np.ndarray:
    w0 = max(a.shape[0] for a in arrays)
    w1 = max(a.shape[1] for a in arrays)
    out = np.zeros((len(arrays), w0, w1))
    for i, a in enumerate(arrays):
        out[i, : a.shape[0], : a.shape[1]] = a
    return out


def check_fits(deployment: Deployment, requests: Requests) -> None:
    """Every request must fit one instance of each role it visits, or the run would stall."""
    roles = {k.role for k in deployment.kinds}
    if roles not in ({"agg"}, {"prefill", "decode"}):
        raise ServoptError(
            "mode", sorted(roles), "a deployment is agg instances, or prefill + decode instances"
        )
    longest_prompt = int(requests.isl.max())
    longest = int((requests.isl + requests.osl).max())
    for kind in deployment.kinds:
        p = kind.policy
        need = (
            longest_prompt
            if kind.role == "prefill"
            else (longest if p.reserve_full_kv else longest_prompt + 1)
        )
        if kind.kv_tokens < need:
            gib = (
                f" ({kind.kv_tokens * kind.kv_bytes_per_token / (1 << 30):.2f} GiB per GPU at "
                f"{kind.kv_bytes_per_token / 1024:.1f} KiB per token)"
                if kind.kv_bytes_per_token
                else ""
            )
            raise InfeasibleError(
                "kv_cache",
                None,
                f"a {kind.role} instance{(' (' + kind.label + ')') if kind.label else ''} holds "
                f"{kind.kv_tokens} KV tokens{gib}; the longest request needs {need}",
            )
        if kind.role != "decode" and not p.chunked_prefill and p.max_num_tokens < longest_prompt:
            raise ServoptError(
                "max_num_tokens",
                p.max_num_tokens,
                f"is below the longest prompt ({longest_prompt} tokens) and chunked prefill is off",
            )


def run_many(jobs: list[tuple[Deployment, Requests, int]], threads: int | None = None) -> list[RawRun]:
    """Simulate many (deployment, requests, clients) jobs; the kernel releases the GIL, so threads
    run them on every core. Results are in job order and do not depend on the thread count."""
    if not jobs:
        return []
    first = run(*jobs[0][:2], clients=jobs[0][2])  # compiles (or loads) the kernel once
    workers = threads or os.cpu_count() or 1
    if workers == 1 or len(jobs) == 1:
        return [first, *(run(d, r, clients=c) for d, r, c in jobs[1:])]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        rest = list(pool.map(lambda job: run(job[0], job[1], clients=job[2]), jobs[1:]))
    return [first, *rest]


def run(
    deployment: Deployment,
    requests: Requests,
    *,
    clients: int = 0,
    itl_weight: np.ndarray | None = None,
    record_tokens: bool = False,
    early_stop: EarlyStop | None = None,
) -> RawRun:
    """Simulate ``requests`` on ``deployment`` (``clients > 0``: closed loop; ``early_stop``: open
    loop, stop once the watched requests' verdict is settled)."""
    check_fits(deployment, requests)
    kinds = deployment.kinds
    n = len(requests.isl)
    policy = np.zeros((len(kinds), sim.N_POLICY))
    for k, kind in enumerate(kinds):
        p = kind.policy
        policy[k, sim.P_MAX_BATCH] = p.max_batch_size
        policy[k, sim.P_MAX_TOKENS] = p.max_num_tokens
        policy[k, sim.P_CHUNKED] = p.chunked_prefill
        policy[k, sim.P_MIXED] = p.mixed_batches
        policy[k, sim.P_RESERVE_FULL] = p.reserve_full_kv
        policy[k, sim.P_KV_TOKENS] = kind.kv_tokens
        policy[k, sim.P_BLOCK] = p.kv_block_tokens
        policy[k, sim.P_OVERHEAD_MS] = p.iteration_overhead_ms
        policy[k, sim.P_PULL] = 1.0 if kind.pulls else 0.0
        policy[k, sim.P_RECV_INTERVAL] = p.recv_interval
        policy[k, sim.P_ADP_RANKS] = kind.ranks_per_worker
        policy[k, sim.P_ADP_TIMEOUT] = p.adp_balance_timeout_iters
        policy[k, sim.P_BATCH_WAIT_ITERS] = p.batch_wait_timeout_iters
        policy[k, sim.P_BATCH_WAIT_RATIO] = p.batch_wait_max_tokens_ratio
    role = np.concatenate([np.full(k.count, ROLES[k.role], dtype=np.int64) for k in kinds])
    kind_of = np.concatenate([np.full(k.count, i, dtype=np.int64) for i, k in enumerate(kinds)])
    tabs = [k.tables for k in kinds]
    tok_axis, tok_n = _pad([t.tok_axis for t in tabs])
    tok_ms, _ = _pad([t.tok_ms for t in tabs])
    dec_axis, dec_n = _pad([t.dec_axis for t in tabs])
    kv_axis, kv_n = _pad([t.kv_axis for t in tabs])
    new_axis, new_n = _pad([t.new_axis for t in tabs])
    pre_axis, pre_n = _pad([t.pre_axis for t in tabs])
    out = RawRun(
        t_arrive=np.zeros(n),
        t_first=np.zeros(n),
        t_done=np.zeros(n),
        preemptions=np.zeros(n, dtype=np.int64),
        itl_hist=np.zeros(sim.ITL_BINS),
        timeline=np.zeros((TIMELINE_ROWS, sim.TL_COLS)),
        iterations=0,
    )
    log = int(requests.osl.sum()) + 1 if record_tokens else 0
    dlog_t, dlog_i = np.zeros(log), np.zeros(log, dtype=np.int64)
    stint = n if record_tokens else 0
    stint_pass, stint_tokens, instance = (np.zeros(stint, dtype=np.int64) for _ in range(3))
    es = early_stop or EarlyStop(np.zeros(0, dtype=np.bool_))
    iterations, rows, _stride, logged, stop = sim.simulate(
        np.ascontiguousarray(requests.arrival_ms, dtype=np.float64),
        np.ascontiguousarray(requests.isl, dtype=np.int64),
        np.ascontiguousarray(requests.osl, dtype=np.int64),
        int(clients),
        role,
        kind_of,
        policy,
        tok_axis,
        tok_n,
        tok_ms,
        dec_axis,
        dec_n,
        kv_axis,
        kv_n,
        _pad2([t.gen_full_ms for t in tabs]),
        _pad2([t.gen_attn_ms for t in tabs]),
        new_axis,
        new_n,
        pre_axis,
        pre_n,
        _pad2([t.ctx_full_ms for t in tabs]),
        _pad2([t.ctx_attn_ms for t in tabs]),
        float(deployment.xfer_ms_per_token),
        float(deployment.xfer_fixed_ms),
        float(deployment.request_overhead_ms),
        int(max(k.policy.max_batch_size for k in kinds)),
        np.ones(n) if itl_weight is None else np.ascontiguousarray(itl_weight, dtype=np.float64),
        out.t_arrive,
        out.t_first,
        out.t_done,
        out.preemptions,
        out.itl_hist,
        out.timeline,
        dlog_t,
        dlog_i,
        stint_pass,
        stint_tokens,
        instance,
        np.ascontiguousarray(es.watch, dtype=np.bool_),
        float(es.ttft_limit_ms),
        float(es.tpot_limit_ms),
        int(es.ttft_fail_at),
        int(es.tpot_fail_at),
    )
    out.iterations = int(iterations)
    out.stop = int(stop)
    if record_tokens:
        out.pass_end_ms, out.pass_instance = dlog_t[:logged], dlog_i[:logged]
        out.stint_pass, out.stint_tokens, out.instance = stint_pass, stint_tokens, instance
    out.timeline = out.timeline[:rows].copy()
    return out
