"""Solver-agnostic re-check of every returned deployment, in float, from the original tables.

The integer model is built from pruned, encoded tables; this module trusts none of that. It
recomputes each replica from the option tables given to ``solve`` and checks every constraint of
the problem statement. A failure is a servopt bug, never a user error.
"""

from __future__ import annotations

from servopt.search.conventions import Conventions
from servopt.search.encode import RATE_UNITS_PER_REQ_PER_S
from servopt.search.options import ReplicaSpec, Sla, WorkerOptions
from servopt.search.result import Deployment, ReplicaGroup

# Float noise allowed when comparing the float throughput to the floored integer objective.
_REL_TOL = 1e-12


class VerificationError(RuntimeError):
    """A deployment broke a constraint when re-checked in float (an internal error)."""


def _fail(dep: Deployment, what: str) -> None:
    raise VerificationError(f"{dep.mode} {dep.kind} deployment failed re-check: {what}")


def _check_agg(dep: Deployment, g: ReplicaGroup, agg: WorkerOptions, sla: Sla) -> float:
    k = g.agg_option
    if not 0 <= k < len(agg):
        _fail(dep, f"agg option {k} out of range")
    if g.gpus != agg.gpus[k] or g.rate_per_s != agg.rate_per_s[k]:
        _fail(dep, f"group of option {k} does not match the table")
    if not (agg.ttft_ms[k] <= sla.ttft_ms and agg.tpot_ms[k] <= sla.tpot_ms):
        _fail(dep, f"agg option {k} misses the SLA")
    return float(agg.rate_per_s[k])


def _check_disagg(
    dep: Deployment,
    g: ReplicaGroup,
    prefill: WorkerOptions,
    decode: WorkerOptions,
    replica: ReplicaSpec,
    conv: Conventions,
    sla: Sla,
) -> float:
    p, d, x, y = g.prefill_option, g.decode_option, g.prefill_workers, g.decode_workers
    if not (0 <= p < len(prefill) and 0 <= d < len(decode)):
        _fail(dep, f"option index out of range (prefill {p}, decode {d})")
    pk, dk = prefill.pair_key[p], decode.pair_key[d]
    if pk != dk and pk >= 0 and dk >= 0:
        _fail(dep, f"prefill option {p} (key {pk}) may not pair with decode option {d} (key {dk})")
    if not (1 <= x <= replica.max_prefill_worker and 1 <= y <= replica.max_decode_worker):
        _fail(dep, f"worker counts {x}P{y}D outside the caps")
    p_pool, d_pool = x * int(prefill.gpus[p]), y * int(decode.gpus[d])
    size = p_pool + d_pool
    if size != g.gpus or size > replica.size_limit(dep.total_gpus):
        _fail(dep, f"replica size {size} GPUs wrong or above the limit")
    if replica.num_gpu_per_replica and size not in replica.num_gpu_per_replica:
        _fail(dep, f"replica size {size} not in num_gpu_per_replica")
    if (replica.max_prefill_gpus and p_pool > replica.max_prefill_gpus) or (
        replica.max_decode_gpus and d_pool > replica.max_decode_gpus
    ):
        _fail(dep, "a pool exceeds its per-replica GPU cap")
    if not conv.disagg_ttft_factor * prefill.ttft_ms[p] <= sla.ttft_ms:
        _fail(dep, f"prefill option {p} misses the TTFT target")
    if not decode.tpot_ms[d] <= sla.tpot_ms:
        _fail(dep, f"decode option {d} misses the TPOT cap")
    rate = min(
        conv.prefill_degradation * x * prefill.rate_per_s[p],
        conv.decode_degradation * y * decode.rate_per_s[d],
    )
    if rate != g.rate_per_s:
        _fail(dep, "replica rate does not match min(prefill, decode)")
    return float(rate)


def verify_deployment(
    dep: Deployment,
    *,
    sla: Sla,
    max_types: int,
    agg: WorkerOptions | None = None,
    prefill: WorkerOptions | None = None,
    decode: WorkerOptions | None = None,
    replica: ReplicaSpec | None = None,
    conventions: Conventions | None = None,
) -> None:
    """Raise VerificationError unless ``dep`` meets every constraint (SLA: TTFT, and TPOT <= cap)."""
    if not 1 <= len(dep.groups) <= max_types:
        _fail(dep, f"{len(dep.groups)} replica types (allowed 1..{max_types})")
    total_rate = 0.0
    for g in dep.groups:
        if g.count < 1:
            _fail(dep, "a replica group with no replicas")
        if dep.kind == "identical" and g.count != dep.total_gpus // g.gpus:
            _fail(dep, "identical replicas do not fill the budget")
        if dep.mode == "agg":
            rate = _check_agg(dep, g, agg, sla)
        else:
            rate = _check_disagg(dep, g, prefill, decode, replica, conventions, sla)
        total_rate += g.count * rate
    if dep.gpus_used > dep.total_gpus:
        _fail(dep, f"uses {dep.gpus_used} GPUs of {dep.total_gpus}")
    if total_rate * RATE_UNITS_PER_REQ_PER_S < dep.value_units * (1 - _REL_TOL):
        _fail(dep, "float throughput below the integer objective (encoding not conservative)")
