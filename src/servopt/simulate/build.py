"""A planned deployment (model, system, backend, layouts, worker counts) -> simulator instances.

Each worker role gets its op lists at its layout (the same decomposition ``cli estimate`` uses),
its step-time tables, and its KV-cache capacity from servopt's memory model: the framework's KV
budget for that layout (``evaluate.memory``) divided by the KV bytes of one token on one GPU.
The disaggregated KV transfer moves the whole prompt's KV (all layers, every KV head) from the
prefill worker's GPUs to the decode worker's: over NVLink when the replica fits in one NVLink
domain, else over the scale-out network, each prefill GPU sending its shard in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servopt.errors import ServoptError
from servopt.evaluate.candidates import ModelSetup, build_layout_ops
from servopt.evaluate.memory import GIB, KV_CACHE_TOLERANCE, kv_budget_rule, kv_bytes_per_token, memory_usage
from servopt.models.parallel import Layout
from servopt.simulate.engine import Deployment, InstanceKind
from servopt.simulate.policy import SchedulerPolicy, fit_token_budget
from servopt.simulate.step_time import build_step_tables


@dataclass(frozen=True)
class WorkerPlan:
    """``workers`` workers of one role at one layout."""

    role: str  # agg | prefill | decode
    layout: Layout
    workers: int
    policy: SchedulerPolicy
    # The framework's KV memory fraction when the deployment states one (TRT-LLM
    # ``kv_cache_config.free_gpu_memory_fraction``); None = the framework's default rule.
    kv_fraction: float | None = None


def kv_capacity_tokens(
    setup: ModelSetup, layout: Layout, role: str, policy: SchedulerPolicy, kv_fraction: float | None = None
) -> int:
    """KV tokens one GPU of the worker can hold under the framework's budget rule (its default
    fraction, or ``kv_fraction`` in its place)."""
    lops = build_layout_ops(setup, [layout], skip_invalid=False, role=_op_role(role))
    static = role != "agg"
    rule = kv_budget_rule(
        setup.backend, setup.system, setup.version, static=static, tp=layout.tp, pp=layout.pp, dp=layout.dp
    )
    fraction = float(np.asarray(rule.fraction).ravel()[0]) if kv_fraction is None else float(kv_fraction)
    mem = memory_usage(
        setup.arch,
        setup.backend,
        setup.system,
        weights_bytes=lops.weight_bytes,
        tp=np.array([layout.tp]),
        pp=np.array([layout.pp]),
        dp=np.array([layout.dp]),
        moe_ep=np.array([layout.moe_ep]),
        batch=np.array([0]),
        num_tokens=np.array([float(policy.max_num_tokens)]),
        kv_seq_tokens=np.array([0.0]),
        kv_quant=setup.quant.kvcache,
        nextn=setup.nextn,
        kv_fraction=fraction,
        kv_fraction_of_free=rule.of_free,
        kv_reserved=rule.reserved,
    )
    capacity = setup.system.gpu.mem_capacity_bytes / GIB
    non_kv = float(mem.total[0])
    if non_kv >= capacity:
        return 0
    scale = (1.0 - rule.reserved) * (1.0 - KV_CACHE_TOLERANCE)
    budget_gib = (
        (capacity - non_kv) * fraction * scale if rule.of_free else capacity * fraction * scale - non_kv
    )
    per_token = float(kv_bytes_per_token(setup.arch, np.array([layout.tp]), setup.quant.kvcache)[0])
    return max(int(budget_gib * GIB / per_token), 0)


def _op_role(role: str) -> str:
    return role if role in ("prefill", "decode") else "agg"


def build_kind(
    db,
    setup: ModelSetup,
    plan: WorkerPlan,
    *,
    max_isl: int,
    max_osl: int,
    prompt_lengths: np.ndarray,
    size_token_budget: bool = True,
) -> InstanceKind:
    """The engine instances of one worker plan: tables, KV capacity and policy."""
    if plan.workers < 1:
        raise ServoptError(
            "workers" if plan.role == "agg" else f"{plan.role}_workers", plan.workers, "must be >= 1"
        )
    lops = build_layout_ops(setup, [plan.layout], skip_invalid=False, db=db, role=_op_role(plan.role))
    policy = plan.policy
    if size_token_budget and plan.role != "decode":
        policy = fit_token_budget(policy, max_isl)
    tables = build_step_tables(
        db,
        lops,
        max_batch=policy.max_batch_size,
        max_tokens=max(policy.max_num_tokens, 1),
        max_context=max_isl + max_osl,
        prompt_lengths=prompt_lengths,
        role=plan.role,
    )
    lanes = plan.layout.dp * plan.layout.pp
    kv = kv_capacity_tokens(setup, plan.layout, plan.role, policy, plan.kv_fraction) // plan.layout.pp
    per_token = float(kv_bytes_per_token(setup.arch, np.array([plan.layout.tp]), setup.quant.kvcache)[0])
    return InstanceKind(
        role=plan.role,
        count=plan.workers * lanes,
        policy=policy,
        kv_tokens=int(kv),
        tables=tables,
        gpus_per_instance=plan.layout.gpus / lanes,
        label=plan.layout.label,
        kv_bytes_per_token=per_token,
        ranks_per_worker=lanes,
    )


def build_deployment(
    db,
    setup: ModelSetup,
    plans: list[WorkerPlan],
    *,
    max_isl: int,
    max_osl: int,
    prompt_lengths: np.ndarray,
    size_token_budget: bool = True,
) -> Deployment:
    """Instances, tables and KV capacities of every worker plan, and the KV-transfer model.

    ``size_token_budget``: raise an unchunked policy's token budget to hold the longest prompt next
    to a full batch (:func:`servopt.simulate.policy.fit_token_budget`); off when the user set it.
    """
    roles = {p.role for p in plans}
    if roles not in ({"agg"}, {"prefill", "decode"}):
        raise ServoptError("mode", sorted(roles), "a deployment is agg workers, or prefill + decode workers")
    kinds = tuple(
        build_kind(
            db,
            setup,
            plan,
            max_isl=max_isl,
            max_osl=max_osl,
            prompt_lengths=prompt_lengths,
            size_token_budget=size_token_budget,
        )
        for plan in plans
    )
    fixed_ms, per_token_ms = 0.0, 0.0
    if roles == {"prefill", "decode"}:
        fixed_ms, per_token_ms = kv_transfer_model(setup, plans)
    return Deployment(kinds, fixed_ms, per_token_ms)


def kv_transfer_model(
    setup: ModelSetup, plans: list[WorkerPlan], decode_setup: ModelSetup | None = None
) -> tuple[float, float]:
    """(fixed ms, ms per prompt token) of moving a prompt's KV from prefill to decode.

    ``decode_setup``: decode on another system (``--decode_system``). Two systems share no NVLink
    domain, so the KV crosses the scale-out network at the slower side's bandwidth, with the
    slower side's point-to-point latency."""
    node = setup.system.node
    prefill = next(p for p in plans if p.role == "prefill")
    replica_gpus = sum(p.layout.gpus * p.workers for p in plans)
    # Whole-model KV of one token: every KV head (tp = 1 view) of every layer.
    bytes_per_token = float(kv_bytes_per_token(setup.arch, np.array([1]), setup.quant.kvcache)[0])
    senders = prefill.layout.tp * prefill.layout.pp
    fixed_ms = setup.system.empirical.p2p_latency_s * 1000.0
    if decode_setup is not None and decode_setup.system.name != setup.system.name:
        other = decode_setup.system
        bw = min(node.network_bw_bytes_per_s, other.node.network_bw_bytes_per_s)
        fixed_ms = max(fixed_ms, other.empirical.p2p_latency_s * 1000.0)
        return fixed_ms, bytes_per_token / (bw * senders) * 1000.0
    within_domain = replica_gpus <= node.gpus_per_nvlink_domain
    bw = node.nvlink_bw_bytes_per_s if within_domain else node.network_bw_bytes_per_s
    return fixed_ms, bytes_per_token / (bw * senders) * 1000.0
