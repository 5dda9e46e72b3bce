"""Why no deployment exists: the binding constraint and the closest achievable TTFT/TPOT.

Constraints are relaxed in a fixed order (option tables, GPU budget and replica sizes, TTFT, TPOT);
the first one that already leaves nothing is reported as binding, together with the best value
the rest of the problem can reach for the violated target.
"""

from __future__ import annotations

import math

import numpy as np

from servopt.errors import InfeasibleError
from servopt.search.conventions import Conventions
from servopt.search.encode import RATE_UNITS_PER_REQ_PER_S, TpotLevels
from servopt.search.options import ReplicaSpec, Sla, WorkerOptions
from servopt.search.prune import prune_decode, prune_prefill
from servopt.search.replicas import DisaggMenu


def _ms(v: float) -> str:
    return f"{v:.4g} ms"


def _too_slow(field: str) -> InfeasibleError:
    return InfeasibleError(
        field, 0, f"every feasible option is slower than {1 / RATE_UNITS_PER_REQ_PER_S:g} requests/s"
    )


def diagnose_agg(agg: WorkerOptions, *, sla: Sla, total_gpus: int) -> InfeasibleError:
    if len(agg) == 0:
        return InfeasibleError(
            "agg", 0, "no aggregated worker options (all were filtered out before the search)"
        )
    fits = agg.gpus <= total_gpus
    if not fits.any():
        return InfeasibleError(
            "total_gpus",
            total_gpus,
            f"smaller than the smallest aggregated worker ({int(agg.gpus.min())} GPUs)",
        )
    ttft_ok = fits & (agg.ttft_ms <= sla.ttft_ms)
    if not ttft_ok.any():
        k = np.flatnonzero(fits)[np.lexsort((agg.tpot_ms[fits], agg.ttft_ms[fits]))[0]]
        return InfeasibleError(
            "ttft",
            sla.ttft_ms,
            f"no aggregated worker within {total_gpus} GPUs meets TTFT <= {_ms(sla.ttft_ms)}; "
            f"closest achievable TTFT {_ms(agg.ttft_ms[k])} (TPOT {_ms(agg.tpot_ms[k])})",
        )
    tpot_ok = ttft_ok & (agg.tpot_ms <= sla.tpot_ms)
    if not tpot_ok.any():
        k = np.flatnonzero(ttft_ok)[np.lexsort((agg.ttft_ms[ttft_ok], agg.tpot_ms[ttft_ok]))[0]]
        return InfeasibleError(
            "tpot",
            sla.tpot_ms,
            f"no aggregated worker within {total_gpus} GPUs meets TPOT <= {_ms(sla.tpot_ms)} with "
            f"TTFT <= {_ms(sla.ttft_ms)}; closest achievable TPOT {_ms(agg.tpot_ms[k])} "
            f"(TTFT {_ms(agg.ttft_ms[k])})",
        )
    return _too_slow("agg.rate_per_s")


def _menu(prefill, decode, p_keep, *, replica, total_gpus, conventions) -> tuple[DisaggMenu, TpotLevels]:
    d_keep = prune_decode(decode, max_gpus=replica.size_limit(total_gpus))
    levels = TpotLevels(decode.tpot_ms[d_keep])
    menu = DisaggMenu(
        prefill.take(p_keep),
        decode.take(d_keep),
        replica=replica,
        total_gpus=total_gpus,
        levels=levels,
        conventions=conventions,
    )
    return menu, levels


def _size_error(prefill, decode, *, replica: ReplicaSpec, total_gpus: int) -> InfeasibleError:
    smallest = int(prefill.gpus.min()) + int(decode.gpus.min())
    limits = [("total_gpus", total_gpus)]
    if replica.max_gpu_per_replica:
        limits.append(("max_gpu_per_replica", replica.max_gpu_per_replica))
    if replica.num_gpu_per_replica:
        limits.append(("num_gpu_per_replica", max(replica.num_gpu_per_replica)))
    field, limit = min(limits, key=lambda fl: fl[1])
    if smallest > limit:
        return InfeasibleError(
            field,
            limit,
            f"smaller than the smallest disaggregated replica (1 prefill worker of {int(prefill.gpus.min())} "
            f"+ 1 decode worker of {int(decode.gpus.min())} GPUs = {smallest} GPUs)",
        )
    return InfeasibleError(
        "num_gpu_per_replica",
        list(replica.num_gpu_per_replica or ()),
        f"no replica of x <= {replica.max_prefill_worker} prefill and y <= {replica.max_decode_worker} "
        f"decode workers has an allowed size within {replica.size_limit(total_gpus)} GPUs",
    )


def diagnose_disagg(
    prefill: WorkerOptions,
    decode: WorkerOptions,
    *,
    sla: Sla,
    total_gpus: int,
    replica: ReplicaSpec,
    conventions: Conventions,
) -> InfeasibleError:
    for name, pool in (("prefill", prefill), ("decode", decode)):
        if len(pool) == 0:
            return InfeasibleError(
                name, 0, f"no {name} worker options (all were filtered out before the search)"
            )
    limit = replica.size_limit(total_gpus)
    kw = dict(replica=replica, total_gpus=total_gpus, conventions=conventions)
    factor = conventions.disagg_ttft_factor
    any_ttft = prune_prefill(prefill, ttft_ms=math.inf, ttft_factor=factor, max_gpus=limit)
    menu, levels = _menu(prefill, decode, any_ttft, **kw)
    if len(levels) == 0 or len(menu.rows(len(levels) - 1)) == 0:
        pk, dk = prefill.pair_key[:, None], decode.pair_key[None, :]
        if not np.any((pk == dk) | (pk < 0) | (dk < 0)):
            return InfeasibleError(
                "pair_key",
                sorted(set(prefill.pair_key.tolist())),
                f"no prefill option may pair with a decode option (decode keys "
                f"{sorted(set(decode.pair_key.tolist()))}; e.g. SGLang needs equal prefill and decode TP)",
            )
        return _size_error(prefill, decode, replica=replica, total_gpus=total_gpus)

    p_keep = prune_prefill(prefill, ttft_ms=sla.ttft_ms, ttft_factor=factor, max_gpus=limit)
    menu, levels = _menu(prefill, decode, p_keep, **kw)
    if p_keep.size == 0 or len(menu.rows(len(levels) - 1)) == 0:
        # The fastest-TTFT prefill option that still fits some allowed replica.
        order = np.argsort(prefill.ttft_ms, kind="stable")
        closest = next(
            (
                factor * prefill.ttft_ms[k]
                for k in order
                if len(_menu(prefill, decode, np.array([k]), **kw)[0].rows(len(levels) - 1))
            ),
            math.nan,
        )
        return InfeasibleError(
            "ttft",
            sla.ttft_ms,
            f"no disaggregated replica within {total_gpus} GPUs meets TTFT <= {_ms(sla.ttft_ms)} "
            f"(TTFT = {factor:g} x prefill latency); closest achievable TTFT {_ms(closest)}",
        )

    # Rows exist with no TPOT cap; rows shrink as the cap drops, so bisect for the lowest level.
    lo, hi = 0, len(levels) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if len(menu.rows(mid)):
            hi = mid
        else:
            lo = mid + 1
    if levels.ms(lo) <= sla.tpot_ms:
        return _too_slow("prefill/decode rate_per_s")
    return InfeasibleError(
        "tpot",
        sla.tpot_ms,
        f"no disaggregated replica within {total_gpus} GPUs meets TPOT <= {_ms(sla.tpot_ms)} with "
        f"TTFT <= {_ms(sla.ttft_ms)}; closest achievable TPOT {_ms(levels.ms(lo))}",
    )
