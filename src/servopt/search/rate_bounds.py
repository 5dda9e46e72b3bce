"""Upper bounds on a replica's rate per size, for the cuts of the "cpsat" composition model.

A replica of s GPUs with x prefill workers of option i and y decode workers of option j has rate
``min(x pu_i, y du_j)`` with ``x gP_i + y gD_j = s``. The model's LP relaxation lets x and y
both be fractional, which bounds the rate by ``s`` times the best balanced rate per GPU, and
cannot see that sizes which split badly into whole workers lose throughput; proving an optimum
then takes a search over every size. These bounds keep ONE pool's worker count whole and let the
other pool be fractional (``half-relaxations``), and take the smaller of the two:

- prefill whole: ``max over i, x of min(x pu_i, (s - x gP_i) * du_j / gD_j)``, over decode
  options j that may pair with i;
- decode whole: ``max over j, y of min(y du_j, (s - y gD_j) * pu_i / gP_i)`` likewise.

Each is >= the best replica of size s (the true optimum keeps both pools whole), so a cut
``r <= bound(size)`` removes no deployment; they are bounds, not answers: the model still has to
find a composition that reaches them. All arithmetic is integer (floors of exact products), so
the bounds need no rounding margin. Worker and pool caps only tighten them.
"""

from __future__ import annotations

import numpy as np

from servopt.search.compose_problem import ComposeProblem


def _pairs(p_key: np.ndarray, d_key: np.ndarray) -> np.ndarray:
    """(P, D) bool: prefill i may pair with decode j (equal keys, or either negative)."""
    pk, dk = p_key[:, None], d_key[None, :]
    return (pk == dk) | (pk < 0) | (dk < 0)


def _half(
    sizes: np.ndarray,
    w_gpus: np.ndarray,
    w_units: np.ndarray,
    w_max: int,
    w_pool_cap: int,
    o_best: np.ndarray,
    o_gpus: np.ndarray,
    o_max: int,
    o_pool_cap: int,
) -> np.ndarray:
    """Per size, the best ``min(whole pool rate, fractional other pool rate)``.

    ``w_*``: the whole pool's options (W,); ``o_best[w, q]``: the best units of the other pool's
    options of ``o_gpus[q]`` GPUs that may pair with whole option w (0: none).
    """
    count = np.arange(1, w_max + 1, dtype=np.int64)
    pool = count[None, :] * w_gpus[:, None]  # (W, N) GPUs of the whole pool
    rate = count[None, :] * w_units[:, None]
    fits = pool <= w_pool_cap if w_pool_cap else np.ones(pool.shape, dtype=np.bool_)
    rest = sizes[:, None, None] - pool[None, :, :]  # (S, W, N) GPUs left for the other pool
    room = np.minimum(rest, o_pool_cap) if o_pool_cap else rest
    other = np.zeros(rest.shape, dtype=np.int64)
    for q, g in enumerate(o_gpus.tolist()):
        best = o_best[:, q][None, :, None]
        # floor(room * best / g): the fractional pool's rate, capped by its whole-worker cap.
        other = np.maximum(other, np.minimum(np.maximum(room, 0) * best // g, o_max * best))
    value = np.where(fits[None] & (rest >= 1), np.minimum(rate[None], other), 0)
    return value.reshape(sizes.size, -1).max(axis=1) if value.size else np.zeros(sizes.size, dtype=np.int64)


def _best_by_gpus(pairs: np.ndarray, gpus: np.ndarray, units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``pairs``, the best paired units per distinct GPU count: ((R, Q), (Q,))."""
    values = np.unique(gpus)
    best = np.stack(
        [np.where(pairs & (gpus == g)[None, :], units[None, :], 0).max(axis=1) for g in values], axis=1
    )
    return best, values


def disagg_rate_bounds(
    sizes: np.ndarray,
    *,
    p_gpus: np.ndarray,
    p_units: np.ndarray,
    p_key: np.ndarray,
    p_ok: np.ndarray,
    d_gpus: np.ndarray,
    d_units: np.ndarray,
    d_key: np.ndarray,
    d_ok: np.ndarray,
    max_x: int,
    max_y: int,
    max_p_pool: int = 0,
    max_d_pool: int = 0,
) -> np.ndarray:
    """(S,) int64: no xPyD replica of ``sizes[s]`` GPUs from the ``*_ok`` options has a higher rate."""
    sizes = np.asarray(sizes, dtype=np.int64)
    # Decode options of one GPU count and key pair alike: only the fastest usable one can bound.
    d_ok = d_ok & (d_units > 0)
    cls, inv = np.unique(np.stack([d_gpus[d_ok], d_key[d_ok]]), axis=1, return_inverse=True)
    best = np.zeros(cls.shape[1], dtype=np.int64)
    np.maximum.at(best, inv.ravel(), d_units[d_ok])
    d_gpus, d_key, d_units = cls[0], cls[1], best
    pairs = _pairs(p_key, d_key) & p_ok[:, None]
    if sizes.size == 0 or not pairs.any():
        return np.zeros(sizes.size, dtype=np.int64)
    d_best, d_vals = _best_by_gpus(pairs, d_gpus, d_units)
    prefill_whole = _half(sizes, p_gpus, p_units, max_x, max_p_pool, d_best, d_vals, max_y, max_d_pool)
    p_best, p_vals = _best_by_gpus(pairs.T, p_gpus, p_units)
    decode_whole = _half(sizes, d_gpus, d_units, max_y, max_d_pool, p_best, p_vals, max_x, max_p_pool)
    return np.minimum(prefill_whole, decode_whole)


def agg_rate_bounds(sizes: np.ndarray, *, gpus: np.ndarray, units: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(S,) int64: the best agg worker of each size (one worker is the whole replica)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    return np.array([int(units[ok & (gpus == s)].max(initial=0)) for s in sizes.tolist()], dtype=np.int64)


def size_rate_bounds(problem: ComposeProblem, sizes: np.ndarray, cap: int) -> np.ndarray:
    """(S,) int64 per-size rate bounds of ``problem`` for replicas with TPOT level <= cap."""
    p = problem
    d_ok = (p.d_level <= cap) & p.d_ttft_ok
    if p.agg:
        return agg_rate_bounds(sizes, gpus=p.d_gpus, units=p.d_units, ok=d_ok)
    return disagg_rate_bounds(
        sizes,
        p_gpus=p.p_gpus,
        p_units=p.p_units,
        p_key=p.p_key,
        p_ok=p.p_ttft_ok,
        d_gpus=p.d_gpus,
        d_units=p.d_units,
        d_key=p.d_key,
        d_ok=d_ok,
        max_x=p.max_x,
        max_y=p.max_y,
        max_p_pool=p.max_p_pool,
        max_d_pool=p.max_d_pool,
    )
