"""Analytic latency percentiles of a sized deployment: queueing formulas over its step tables.

Shown beside the simulated percentiles (the verdict is always the simulation's): where the two
disagree, the queueing assumptions below do not hold for that deployment, which is worth seeing.

Notation: ``lambda`` the offered requests/s, ``c`` a pool's engine instances (workers x dp x pp
lanes), ``S`` the prefill time of a mean prompt alone (step table ``ctx_full`` at (isl, 0)), ``T(b)``
one decode step at ``b`` running requests and the mean KV length ``isl + osl / 2`` (``gen_full``),
each plus the engine's iteration overhead.

- **TTFT** = ``S`` + the wait for a prefill slot, an M/G/c queue (Allen-Cunneen): the offered load
  ``a = lambda * S_eff`` over ``c`` servers, ``C = ErlangC(c, a)`` the chance to wait, mean wait
  ``C / (c / S_eff - lambda) * (ca2 + cs2) / 2`` and the wait's tail taken exponential with that
  conditional mean, so the p-quantile is ``mean / C * ln(C / (1 - p))`` when ``C > 1 - p``, else 0.
  ``ca2``: the arrivals' squared coefficient of variation (Poisson 1, constant 0, gamma cv^2);
  ``cs2``: the prompts' (prefill time is close to linear in tokens). An agg instance's prefill
  shares passes with its running decodes, so its ``S_eff`` adds one decode attention pass
  (``gen_attn`` at the mean batch); a prefill instance's is ``S``.
- **TPOT**: the mean running batch ``B`` per decoding instance solves Little's law
  ``B = (lambda / c) * (osl - 1) * T(B) / 1000`` (bisection; ``T`` grows with ``B``, capped at the
  batch cap); an agg instance's steps also carry its prefill work, stretching them by
  ``1 / (1 - rho_p)`` with ``rho_p = (lambda / c) * S / 1000``. Mean TPOT ``T(B)``; the p-quantile is
  ``T`` at the p-quantile of a Poisson(B) batch (the number in an M/G/inf system), capped: an upper
  side estimate, since a request's TPOT averages many steps.

Closed loop: ``lambda`` is the simulated completion rate (the load a closed loop settles at).
Where a pool is past saturation in this model the values are ``None`` (JSON ``null``).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from servopt.simulate.step_time import StepTables
from servopt.sizing.minimize import Sized

PERCENTILES = (50.0, 90.0, 99.0)


def erlang_c(c: int, a: float) -> float:
    """Chance an arrival waits in M/M/c with offered load ``a`` (Erlangs) over ``c`` servers."""
    if a <= 0:
        return 0.0
    if a >= c:
        return 1.0
    # Erlang B by its stable recurrence, then C = B / (1 - rho (1 - B)).
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


def queue_wait_ms(lam_per_s: float, c: int, service_ms: float, ca2: float, cs2: float) -> dict | None:
    """Mean and percentiles of the M/G/c wait (Allen-Cunneen), ms; None past saturation."""
    mu = 1000.0 / service_ms  # per server, per s
    if lam_per_s >= c * mu:
        return None
    chance = erlang_c(c, lam_per_s / mu)
    variability = (ca2 + cs2) / 2.0
    mean = chance / (c * mu - lam_per_s) * variability * 1000.0
    out = {"mean": mean}
    for p in PERCENTILES:
        tail = 1.0 - p / 100.0
        out[f"p{p:g}"] = mean / chance * math.log(chance / tail) if chance > tail and mean > 0 else 0.0
    return out


def poisson_quantile(p: float, mean: float) -> float:
    """Smallest k with P(Poisson(mean) <= k) >= p (normal approximation past 500, where the pmf's
    first term would underflow)."""
    if mean > 500:
        return math.ceil(mean + NormalDist().inv_cdf(p) * math.sqrt(mean))
    k, pmf = 0, math.exp(-mean)
    cdf = pmf
    while cdf < p:
        k += 1
        pmf *= mean / k
        cdf += pmf
    return float(k)


def _prefill_ms(t: StepTables, isl: float) -> float:
    return float(np.interp(isl, t.new_axis, t.ctx_full_ms[:, 0]))


def _grid(axis0: np.ndarray, axis1: np.ndarray, values: np.ndarray, x0: float, x1: float) -> float:
    """Bilinear interpolation, clamped to the grid."""

    def bracket(axis: np.ndarray, x: float) -> tuple[int, float]:
        x = min(max(x, axis[0]), axis[-1])
        i = int(np.clip(np.searchsorted(axis, x, side="right") - 1, 0, max(len(axis) - 2, 0)))
        w = 0.0 if len(axis) == 1 else (x - axis[i]) / (axis[i + 1] - axis[i])
        return i, w

    i, u = bracket(axis0, x0)
    j, v = bracket(axis1, x1)
    i1, j1 = min(i + 1, len(axis0) - 1), min(j + 1, len(axis1) - 1)
    return float(
        (1 - u) * ((1 - v) * values[i, j] + v * values[i, j1])
        + u * ((1 - v) * values[i1, j] + v * values[i1, j1])
    )


def _decode_batch(step_ms, lam_per_s: float, osl: float, cap: int) -> float | None:
    """B with B = lam * (osl - 1) * step(B) / 1000 (None: no B <= cap keeps up)."""
    if osl <= 1 or lam_per_s <= 0:
        return 0.0

    def excess(b: float) -> float:
        return b - lam_per_s * (osl - 1) * step_ms(max(b, 1.0)) / 1000.0

    if excess(cap) < 0:
        return None
    lo, hi = 0.0, float(cap)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if excess(mid) < 0 else (lo, mid)
    return hi


def _cv2(values: np.ndarray) -> float:
    m = float(np.mean(values))
    return float(np.var(values)) / (m * m) if m > 0 else 0.0


def percentiles(
    sized: Sized,
    lam_per_s: float,
    isl: np.ndarray,
    osl: np.ndarray,
    ca2: float,
    request_overhead_ms: float = 0.0,
) -> dict:
    """``{"ttft_ms": {...}, "tpot_ms": {...}}`` with ``mean``, ``p50``, ``p90``, ``p99`` (or None);
    a calibration's request overhead adds to every TTFT (its step tables are already scaled)."""
    isl_mean, osl_mean = float(np.mean(isl)), float(np.mean(osl))
    kv = isl_mean + osl_mean / 2.0
    cs2 = _cv2(isl)
    pools = {o.kind.role: (o, w) for o, w in sized.pools}
    first = pools.get("agg") or pools["prefill"]
    decoder = pools.get("agg") or pools["decode"]
    (fo, fw), (do, dw) = first, decoder
    ft, dt = fo.kind.tables, do.kind.tables
    c_first, c_dec = fo.kind.count * fw, do.kind.count * dw
    prefill = _prefill_ms(ft, isl_mean) + fo.kind.policy.iteration_overhead_ms
    lam_dec = lam_per_s / c_dec
    stretch = 1.0
    if "agg" in pools:
        rho_p = lam_dec * prefill / 1000.0
        stretch = 1.0 / (1.0 - rho_p) if rho_p < 1 else math.inf
    overhead = do.kind.policy.iteration_overhead_ms

    def step_ms(b: float) -> float:
        return (_grid(dt.dec_axis, dt.kv_axis, dt.gen_full_ms, b, kv) + overhead) * stretch

    cap = do.kind.policy.max_batch_size
    batch = _decode_batch(step_ms, lam_dec, osl_mean, cap) if math.isfinite(stretch) else None
    tpot = None
    if batch is not None:
        tpot = {"mean": step_ms(batch)}
        for p in PERCENTILES:
            q = poisson_quantile(p / 100.0, batch) if batch > 0 else 0.0
            tpot[f"p{p:g}"] = step_ms(min(max(q, 1.0), cap))
    service = prefill
    if "agg" in pools and batch is not None:
        service += _grid(dt.dec_axis, dt.kv_axis, dt.gen_attn_ms, max(batch, 1.0), kv)
    wait = queue_wait_ms(lam_per_s, c_first, service, ca2, cs2)
    ttft = None if wait is None else {k: prefill + v + request_overhead_ms for k, v in wait.items()}
    return {"ttft_ms": ttft, "tpot_ms": tpot}
