"""Flat result rows: a searched deployment as one dict of scalars (tables, CSV, JSON, web).

A row names every figure a deployer needs: throughput per GPU and per user, TTFT/TPOT, request
latency, concurrency, GPUs used of the budget, replicas, and the full layout of each worker kind
(tp, pp, dp, moe_tp, moe_ep, batch size, worker counts; cp only where a worker is context-parallel,
so rows of cp = 1 layouts keep their columns). A packed deployment (several replica shapes) lists
its first shape in the layout columns and every shape in ``groups``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from servopt.report.deploy import DeploymentPlan, WorkerPlan
from servopt.run_result import ExperimentRun

if TYPE_CHECKING:
    from servopt.search.result import Deployment, ReplicaGroup


def _worker_cols(prefix: str, table, row: int) -> dict:
    cand = table.candidates
    layout = table.layouts.layouts[int(cand.layout[row])]
    return {
        f"{prefix}parallel": layout.label,
        f"{prefix}tp": layout.tp,
        f"{prefix}pp": layout.pp,
        f"{prefix}dp": layout.dp,
        f"{prefix}moe_tp": layout.moe_tp,
        f"{prefix}moe_ep": layout.moe_ep,
        **({f"{prefix}cp": layout.cp} if layout.cp > 1 else {}),
        f"{prefix}gpus_per_worker": layout.gpus,
        f"{prefix}batch_size": int(cand.batch[row]),
        f"{prefix}memory_gib": round(float(table.memory_gib[row]), 3),
    }


def _group_cols(run: ExperimentRun, group: ReplicaGroup) -> dict:
    exp = run.experiment
    if exp.serving_mode == "agg":
        table = run.tables["agg"]
        cols = _worker_cols("", table, group.agg_row)
        cols["ctx_tokens"] = int(table.candidates.ctx_tokens[group.agg_row])
        return cols
    cols = {"prefill_workers": group.prefill_workers, "decode_workers": group.decode_workers}
    cols.update(_worker_cols("prefill_", run.tables["prefill"], group.prefill_row))
    cols.update(_worker_cols("decode_", run.tables["decode"], group.decode_row))
    return cols


def deployment_row(run: ExperimentRun, dep: Deployment) -> dict:
    """One deployment of ``run`` as a flat row."""
    exp = run.experiment
    first = dep.groups[0]
    row = {
        "experiment": exp.name,
        "mode": dep.mode,
        "kind": dep.kind,
        "model": exp.model_name,
        "backend": exp.backend_name,
        "version": "/".join(sorted(set(run.versions.values()))),
        "system": exp.system_name,
        "decode_system": exp.decode_system_name if exp.serving_mode == "disagg" else None,
        "tokens_per_s": dep.tokens_per_s,
        "tokens_per_s_per_gpu": dep.tokens_per_s_per_gpu,
        "tokens_per_s_per_gpu_used": dep.tokens_per_s / dep.gpus_used,
        "tokens_per_s_per_user": dep.tokens_per_s_per_user,
        "requests_per_s": dep.rate_per_s,
        "ttft_ms": dep.ttft_ms,
        "tpot_ms": dep.tpot_ms,
        "request_latency_ms": dep.ttft_ms + dep.tpot_ms * (exp.osl - 1),
        "concurrency": dep.concurrency,
        "total_gpus": dep.total_gpus,
        "total_gpus_used": dep.gpus_used,
        "replicas": dep.replicas,
        "gpus_per_replica": first.gpus,
        "status": dep.status,
    }
    row.update(_group_cols(run, first))
    if len(dep.groups) > 1:
        row["groups"] = [
            {"replicas": g.count, "gpus_per_replica": g.gpus, **_group_cols(run, g)} for g in dep.groups
        ]
    return row


def top_rows(run: ExperimentRun) -> list[dict]:
    """The top table of ``run``: one row per deployment of ``run.top`` (best first), ranked from 1."""
    rows = []
    for rank, dep in enumerate(run.top, start=1):
        row = deployment_row(run, dep)
        row["rank"] = rank
        rows.append(row)
    return rows


def parallel_text(row: dict, prefix: str = "") -> str:
    """A compact parallel layout: the sizes that are not 1 (``tp2``, ``tp4pp2``, ``dp8ep8``)."""
    parts = [
        f"{name}{row[prefix + key]}"
        for name, key in (
            ("tp", "tp"),
            ("pp", "pp"),
            ("dp", "dp"),
            ("etp", "moe_tp"),
            ("ep", "moe_ep"),
            ("cp", "cp"),
        )
        if row.get(prefix + key, 1) != 1
    ]
    return "".join(parts) or "tp1"


def workers_text(row: dict, sep: str = " + ") -> str:
    """One replica's workers with their batch sizes: ``tp2 bs80`` (agg) or ``1P tp1 bs1`` ``sep``
    ``1D tp1 bs52`` (disagg)."""
    if row["mode"] == "agg":
        return f"{parallel_text(row)} bs{row['batch_size']}"
    pre = f"{row['prefill_workers']}P {parallel_text(row, 'prefill_')} bs{row['prefill_batch_size']}"
    dec = f"{row['decode_workers']}D {parallel_text(row, 'decode_')} bs{row['decode_batch_size']}"
    return f"{pre}{sep}{dec}"


def layout_text(row: dict) -> str:
    """A one-line description of a row's layout, for hover texts and plots."""
    if row["mode"] == "agg":
        return f"{row['parallel']} bs{row['batch_size']}"
    return (
        f"{row['prefill_workers']}x({row['prefill_parallel']} bs{row['prefill_batch_size']}) + "
        f"{row['decode_workers']}x({row['decode_parallel']} bs{row['decode_batch_size']})"
    )


def frontier_rows(run: ExperimentRun) -> list[dict]:
    """The Pareto frontier of ``run``: tokens/s/user vs tokens/s/gpu, the SLA's choice marked."""
    chosen = run.mode.identical
    out = []
    for point in run.mode.frontier:
        row = deployment_row(run, point.deployment)
        out.append(
            {
                "experiment": run.experiment.name,
                "mode": row["mode"],
                "tokens_per_s_per_user": row["tokens_per_s_per_user"],
                "tokens_per_s_per_gpu": row["tokens_per_s_per_gpu"],
                "tpot_ms": row["tpot_ms"],
                "ttft_ms": row["ttft_ms"],
                "total_gpus_used": row["total_gpus_used"],
                "layout": layout_text(row),
                "chosen": point.deployment.groups == chosen.groups,
            }
        )
    return out


def deployment_name(experiment: str, mode: str) -> str:
    """A Kubernetes object name (RFC 1123 label, <= 63) for an experiment's deployment; the mode is
    added only when the experiment's name does not already say it (no ``servopt-agg-agg``)."""
    words = re.sub(r"[^a-z0-9]+", "-", experiment.lower()).strip("-")
    if mode not in words.split("-"):
        words = f"{words}-{mode}" if words else mode
    return f"servopt-{words}"[:63].rstrip("-")


def packed_plans(run: ExperimentRun, row: dict) -> list[DeploymentPlan]:
    """One deployment plan per replica shape of a packed row (a row without groups: one plan)."""
    groups = row.get("groups") or [row]
    base = deployment_name(run.experiment.name, row["mode"])
    plans = []
    for i, group in enumerate(groups, start=1):
        shape = {**row, **group, "mode": row["mode"], "version": row["version"]}
        plan = deployment_plan(run, shape)
        plans.append(plan if len(groups) == 1 else replace(plan, name=f"{base}-g{i}"[:63]))
    return plans


def deployment_plan(run: ExperimentRun, row: dict) -> DeploymentPlan:
    """The deployment plan (report.deploy) of one top row."""
    exp = run.experiment

    def worker(role: str, prefix: str, count: int, ctx_tokens: int) -> WorkerPlan:
        return WorkerPlan(
            role,
            count,
            tp=row[f"{prefix}tp"],
            pp=row[f"{prefix}pp"],
            dp=row[f"{prefix}dp"],
            moe_tp=row[f"{prefix}moe_tp"],
            moe_ep=row[f"{prefix}moe_ep"],
            batch_size=row[f"{prefix}batch_size"],
            ctx_tokens=ctx_tokens,
            cp=row.get(f"{prefix}cp", 1),
            moe_quant_mode=exp.worker(role).moe_quant_mode,
        )

    if row["mode"] == "agg":
        workers = (worker("agg", "", 1, row["ctx_tokens"]),)
        kv = exp.worker("agg").kvcache_quant_mode
    else:
        workers = (
            worker("prefill", "prefill_", row["prefill_workers"], exp.isl * row["prefill_batch_size"]),
            worker("decode", "decode_", row["decode_workers"], 0),
        )
        kv = exp.worker("decode").kvcache_quant_mode
    return DeploymentPlan(
        name=deployment_name(exp.name, row["mode"]),
        model=run.arch.hf_id or exp.model_name,
        backend=exp.backend_name,
        backend_version=row["version"],
        replicas=row["replicas"],
        workers=workers,
        isl=exp.isl,
        osl=exp.osl,
        kvcache_quant_mode=kv,
        is_moe=run.arch.is_moe,
        nextn=exp.config.nextn,
    )
