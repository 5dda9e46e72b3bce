"""Worker-option tables for the search: agg, prefill and decode workers of every layout.

Each builder evaluates a whole candidate grid (layouts x batch sizes [x context-token budgets])
in one pass, applies the memory checks, and hands the search a
:class:`servopt.search.options.WorkerOptions` of the rows that fit. Like the peer, a batch sweep
stops at the first batch that does not fit (memory grows with the batch, so larger batches would
not fit either); for agg the context-token sweep of one batch size stops likewise.

Rates are requests/s of one worker. Prefill TTFT carries the prefill latency correction, decode
TPOT the decode correction (the seed's ``advanced_tuning_config``; the peer's defaults 1.1 and
1.08 apply when unset); speculative decoding multiplies decode rates by the expected tokens per
step. A calibration profile's adjustments (``servopt.evaluate.calibration``) apply to the
evaluated arrays after the correction scales, before rates are rounded and options are cut, so the
search judges its targets on calibrated figures.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from servopt.errors import UnknownNameError
from servopt.evaluate.agg import AGG_POLICIES, AggResult, agg_memory, run_agg
from servopt.evaluate.batch_sizes import (
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_PREFILL_MAX_NUM_TOKENS,
    agg_points,
    decode_batch_sizes,
    prefill_batch_sizes,
)
from servopt.evaluate.calibration import adjust_agg, adjust_static
from servopt.evaluate.candidates import Candidates, LayoutOps, Workload, build_layout_ops, grid
from servopt.evaluate.nextn import expected_accepted_tokens
from servopt.evaluate.static import StaticResult, run_static, static_memory
from servopt.search.options import WorkerOptions

# The peer's default advanced-tuning corrections for disaggregated workers.
DEFAULT_PREFILL_CORRECTION = 1.1
DEFAULT_DECODE_CORRECTION = 1.08
# The peer composes disaggregated replicas from its per-worker summary tables, which it rounds to
# 3 decimals (``get_summary_df().round(3)``): a prefill worker's 5.6396 req/s enters its rate
# matching as 5.640. Worker rates are rounded the same way so composed answers compare exactly.
PEER_WORKER_RATE_DECIMALS = 3


def peer_worker_rate(seq_per_s: np.ndarray) -> np.ndarray:
    """A disaggregated worker's request rate as the peer's rate matching reads it."""
    return np.round(np.asarray(seq_per_s, dtype=np.float64), PEER_WORKER_RATE_DECIMALS)


class WorkerTable(NamedTuple):
    """Evaluated candidates of one role and the options the search may use."""

    role: str  # agg | prefill | decode
    layouts: LayoutOps
    candidates: Candidates  # the priced candidates: the sweep up to each layout's first memory failure
    metrics: StaticResult | AggResult
    memory_gib: np.ndarray
    fits: np.ndarray  # memory fits, priced, and no smaller batch (or ctx budget) of the sweep failed
    options: WorkerOptions  # fitting, finite rows; options.row indexes ``candidates``

    def largest_batch(self) -> dict[int, int]:
        """Largest fitting batch size per layout id (layouts with none are absent)."""
        out: dict[int, int] = {}
        for lay, b in zip(self.candidates.layout[self.fits], self.candidates.batch[self.fits], strict=True):
            out[int(lay)] = max(out.get(int(lay), 0), int(b))
        return out


def _first_failure_cut(group: np.ndarray, order_key: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Keep rows whose ``order_key`` is below the smallest failing key of their group."""
    groups, inverse = np.unique(group, return_inverse=True)
    first_bad = np.full(len(groups), np.inf)
    np.minimum.at(first_bad, inverse[~ok], order_key[~ok].astype(np.float64))
    return ok & (order_key < first_bad[inverse])


def _memory_cut(cand: Candidates, memory) -> Candidates:
    """Drop candidates at and after a layout's first batch that does not fit, before pricing them:
    the peer's sweep never evaluates them and they would only cost lookups."""
    return cand.take(np.flatnonzero(_first_failure_cut(cand.layout, cand.batch, memory.fits)))


def _options(
    cand: Candidates, fits: np.ndarray, gpus, rate, ttft, tpot, concurrency, role: str
) -> WorkerOptions:
    usable = fits & np.isfinite(rate) & (rate > 0) & np.isfinite(ttft) & np.isfinite(tpot)
    idx = np.flatnonzero(usable)
    return WorkerOptions.from_arrays(
        gpus=gpus[idx],
        rate_per_s=rate[idx],
        ttft_ms=ttft[idx],
        tpot_ms=tpot[idx],
        concurrency=np.asarray(concurrency, dtype=np.float64)[idx],
        row=idx,
        name=role,
    )


def _tokens_per_step(lops: LayoutOps, accepted_tokens: float) -> float:
    """Tokens one decode pass commits per request (1 + accepted drafts with nextn)."""
    return 1.0 + accepted_tokens if lops.setup.nextn > 0 else 1.0


def prefill_workers(
    db,
    lops: LayoutOps,
    work: Workload,
    batch_sizes=None,
    *,
    correction: float = DEFAULT_PREFILL_CORRECTION,
    adjustments=None,
) -> WorkerTable:
    """Disaggregated prefill workers (static_ctx): TTFT and request rate per layout and batch."""
    batches = batch_sizes if batch_sizes is not None else prefill_batch_sizes(work.isl)
    full = grid(len(lops.layouts), batches)
    cand = _memory_cut(full, static_memory(lops, full, work, "static_ctx"))
    res = run_static(db, lops, cand, work, "static_ctx", latency_correction=correction)
    res = adjust_static(res, adjustments, mode="static_ctx", osl=work.osl, tokens_per_step=1.0)
    fits = _first_failure_cut(cand.layout, cand.batch, res.memory.fits & np.isfinite(res.ttft_ms))
    rate = peer_worker_rate(res.seq_per_s)
    opts = _options(cand, fits, res.gpus, rate, res.ttft_ms, np.zeros(len(cand)), res.concurrency, "prefill")
    return WorkerTable("prefill", lops, cand, res, res.memory.total, fits, opts)


def decode_workers(
    db,
    lops: LayoutOps,
    work: Workload,
    batch_sizes=None,
    *,
    correction: float = DEFAULT_DECODE_CORRECTION,
    accepted_tokens: float = 0.0,
    adjustments=None,
) -> WorkerTable:
    """Disaggregated decode workers (static_gen) over the whole decode trajectory."""
    batches = batch_sizes if batch_sizes is not None else decode_batch_sizes()
    full = grid(len(lops.layouts), batches)
    cand = _memory_cut(full, static_memory(lops, full, work, "static_gen"))
    res = run_static(
        db, lops, cand, work, "static_gen", latency_correction=correction, accepted_tokens=accepted_tokens
    )
    res = adjust_static(
        res,
        adjustments,
        mode="static_gen",
        osl=work.osl,
        tokens_per_step=_tokens_per_step(lops, accepted_tokens),
    )
    fits = _first_failure_cut(cand.layout, cand.batch, res.memory.fits & np.isfinite(res.tpot_ms))
    rate = peer_worker_rate(res.seq_per_s)
    opts = _options(cand, fits, res.gpus, rate, np.zeros(len(cand)), res.tpot_ms, res.concurrency, "decode")
    return WorkerTable("decode", lops, cand, res, res.memory.total, fits, opts)


def agg_workers(
    db,
    lops: LayoutOps,
    work: Workload,
    points: list[tuple[int, int]] | None = None,
    *,
    accepted_tokens: float = 0.0,
    adjustments=None,
) -> WorkerTable:
    """Aggregated workers over every layout x (batch, ctx_tokens) point of the sweep."""
    if points is None:
        points = agg_points(work.isl, work.osl, dedupe=lops.setup.nextn == 0 or accepted_tokens == 0)
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    n_layouts = len(lops.layouts)
    layout = np.repeat(np.arange(n_layouts, dtype=np.int64), len(pts))
    full = Candidates(layout, np.tile(pts[:, 0], n_layouts), np.tile(pts[:, 1], n_layouts))
    # The ctx-token sweep of one batch size stops at its first failure.
    group = full.layout * (int(full.batch.max(initial=0)) + 1) + full.batch
    mem = agg_memory(lops, full, work, AGG_POLICIES[lops.setup.backend])
    priced = _first_failure_cut(group, full.ctx_tokens, mem.fits)
    cand, group = full.take(np.flatnonzero(priced)), group[priced]
    res = run_agg(db, lops, cand, work, accepted_tokens=accepted_tokens)
    res = adjust_agg(res, adjustments, osl=work.osl, tokens_per_step=_tokens_per_step(lops, accepted_tokens))
    ok = res.memory.fits & np.isfinite(res.ttft_ms) & np.isfinite(res.tpot_ms)
    fits = _first_failure_cut(group, cand.ctx_tokens, ok)
    opts = _options(cand, fits, res.gpus, res.seq_per_s, res.ttft_ms, res.tpot_ms, res.concurrency, "agg")
    return WorkerTable("agg", lops, cand, res, res.memory.total, fits, opts)


def worker_table(
    db,
    setup,
    layouts,
    role: str,
    work: Workload,
    *,
    accept_rates=None,
    latency_correction: float | None = None,
    max_batch_size: int | None = None,
    prefill_max_num_tokens: int | None = None,
    adjustments=None,
) -> WorkerTable:
    """One call per role for the search: decompose every layout (skipping the invalid ones), build
    the role's batch schedule, evaluate, cut at memory, and return the options.

    ``role`` is agg | prefill | decode; ``latency_correction`` defaults to the peer's 1.1 (prefill)
    and 1.08 (decode) and is not used for agg; ``max_batch_size`` caps the role's batch schedule
    (``decode_max_batch_size`` / ``prefill_max_batch_size`` of the seed's advanced tuning);
    ``adjustments`` (a calibration profile's, for this worker's backend and system; None = the raw
    model) apply after the correction.
    """
    lops = build_layout_ops(setup, layouts, db=db, role=role)
    accepted = expected_accepted_tokens(setup.nextn, accept_rates)
    if role == "prefill":
        batches = prefill_batch_sizes(
            work.isl, prefill_max_num_tokens or DEFAULT_PREFILL_MAX_NUM_TOKENS, max_batch_size
        )
        corr = DEFAULT_PREFILL_CORRECTION if latency_correction is None else latency_correction
        return prefill_workers(db, lops, work, batches, correction=corr, adjustments=adjustments)
    if role == "decode":
        batches = decode_batch_sizes(max_batch_size) if max_batch_size else decode_batch_sizes()
        corr = DEFAULT_DECODE_CORRECTION if latency_correction is None else latency_correction
        return decode_workers(
            db, lops, work, batches, correction=corr, accepted_tokens=accepted, adjustments=adjustments
        )
    if role == "agg":
        points = agg_points(
            work.isl,
            work.osl,
            max_batch_size or DEFAULT_MAX_BATCH_SIZE,
            dedupe=setup.nextn == 0 or accepted == 0,
        )
        return agg_workers(db, lops, work, points, accepted_tokens=accepted, adjustments=adjustments)
    raise UnknownNameError("role", role, "unknown worker role", ["agg", "prefill", "decode"])
