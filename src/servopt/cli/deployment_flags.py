"""The deployment flags ``cli simulate`` and ``servopt emulate`` share, declared once, and the
worker plans they describe."""

from __future__ import annotations

from typing import NamedTuple

import typer

MODE = typer.Option(
    "agg", "--mode", help="agg (in-flight batching workers) or disagg (prefill + decode workers)."
)
TP = typer.Option(1, "--tp", help="Tensor parallelism (both roles in disagg unless overridden).")
PP = typer.Option(1, "--pp", help="Pipeline parallelism.")
DP = typer.Option(1, "--dp", help="Attention data parallelism (MoE models).")
MOE_TP = typer.Option(None, "--moe_tp", "--moe-tp", help="MoE tensor parallelism.")
MOE_EP = typer.Option(None, "--moe_ep", "--moe-ep", help="MoE expert parallelism.")
WORKERS = typer.Option(1, "--workers", help="agg: workers serving the load.")


def _role_option(role: str, field: str):
    dashed = field.replace("_", "-")
    return typer.Option(None, f"--{role}_{field}", f"--{role}-{dashed}", help=f"disagg: {role} {field}.")


PREFILL_TP, PREFILL_PP, PREFILL_DP = (_role_option("prefill", f) for f in ("tp", "pp", "dp"))
PREFILL_MOE_TP, PREFILL_MOE_EP = (_role_option("prefill", f) for f in ("moe_tp", "moe_ep"))
DECODE_TP, DECODE_PP, DECODE_DP = (_role_option("decode", f) for f in ("tp", "pp", "dp"))
DECODE_MOE_TP, DECODE_MOE_EP = (_role_option("decode", f) for f in ("moe_tp", "moe_ep"))
PREFILL_WORKERS = typer.Option(
    1, "--prefill_workers", "--prefill-workers", help="disagg: prefill workers (x)."
)
DECODE_WORKERS = typer.Option(1, "--decode_workers", "--decode-workers", help="disagg: decode workers (y).")
MAX_BATCH_SIZE = typer.Option(
    None, "--max_batch_size", "--max-batch-size", help="Running requests per instance (engine default)."
)
MAX_NUM_TOKENS = typer.Option(
    None, "--max_num_tokens", "--max-num-tokens", help="Tokens per forward pass (engine default)."
)
CHUNKED_PREFILL = typer.Option(
    None, "--chunked_prefill/--no_chunked_prefill", help="Override the engine's chunked-prefill default."
)
ITERATION_OVERHEAD_MS = typer.Option(
    None, "--iteration_overhead_ms", "--iteration-overhead-ms", help="Fixed cost added to every forward pass."
)
REQUEST_OVERHEAD_MS = typer.Option(
    None,
    "--request_overhead_ms",
    "--request-overhead-ms",
    help="Time from a client's send to the engine queue (tokenization, HTTP): part of TTFT "
    "(default: the calibration profile's, else 0).",
)


# The layout, worker and engine flags in the order --help lists them: (parameter, type, option);
# a command takes them with ``options.with_option_group(SHARED, after=...)``.
_INT, _OPT_INT, _OPT_FLOAT = int, int | None, float | None
SHARED = (
    ("tp", _INT, TP),
    ("pp", _INT, PP),
    ("dp", _INT, DP),
    ("moe_tp", _OPT_INT, MOE_TP),
    ("moe_ep", _OPT_INT, MOE_EP),
    ("workers", _INT, WORKERS),
    ("prefill_tp", _OPT_INT, PREFILL_TP),
    ("prefill_pp", _OPT_INT, PREFILL_PP),
    ("prefill_dp", _OPT_INT, PREFILL_DP),
    ("prefill_moe_tp", _OPT_INT, PREFILL_MOE_TP),
    ("prefill_moe_ep", _OPT_INT, PREFILL_MOE_EP),
    ("prefill_workers", _INT, PREFILL_WORKERS),
    ("decode_tp", _OPT_INT, DECODE_TP),
    ("decode_pp", _OPT_INT, DECODE_PP),
    ("decode_dp", _OPT_INT, DECODE_DP),
    ("decode_moe_tp", _OPT_INT, DECODE_MOE_TP),
    ("decode_moe_ep", _OPT_INT, DECODE_MOE_EP),
    ("decode_workers", _INT, DECODE_WORKERS),
    ("max_batch_size", _OPT_INT, MAX_BATCH_SIZE),
    ("max_num_tokens", _OPT_INT, MAX_NUM_TOKENS),
    ("chunked_prefill", bool | None, CHUNKED_PREFILL),
    ("iteration_overhead_ms", _OPT_FLOAT, ITERATION_OVERHEAD_MS),
    ("request_overhead_ms", _OPT_FLOAT, REQUEST_OVERHEAD_MS),
)


class Resolved(NamedTuple):
    arch: object
    spec: object
    db: object
    setup: object
    policy: object
    plans: list


def resolve(p: dict) -> Resolved:
    """Model, system, database, engine policy and worker plans from a command's parameters (by the
    names the shared options above give them, plus model/system/backend/quant/perf_db)."""
    from servopt.evaluate.candidates import ModelSetup
    from servopt.evaluate.single import quant_modes
    from servopt.hardware import load_system
    from servopt.models.registry import resolve_model
    from servopt.perf_db.database import open_database
    from servopt.simulate.policy import engine_policy

    arch = resolve_model(p["model"])
    spec = load_system(p["system"])
    db = open_database(p["system"], p["backend"], p["backend_version"], cache_dir=p["perf_db"])
    quant = quant_modes(
        arch,
        p["gemm_quant_mode"],
        p["moe_quant_mode"],
        p["kvcache_quant_mode"],
        p["fmha_quant_mode"],
        db=db,
        backend=p["backend"],
    )
    setup = ModelSetup(arch, p["backend"], quant, spec, db.version, 0)
    policy = engine_policy(p["backend"], spec.gpu.mem_capacity_bytes).with_overrides(
        max_batch_size=p["max_batch_size"],
        max_num_tokens=p["max_num_tokens"],
        chunked_prefill=p["chunked_prefill"],
        iteration_overhead_ms=p["iteration_overhead_ms"],
    )
    fields = ("tp", "pp", "dp", "moe_tp", "moe_ep")
    plans = worker_plans(
        arch,
        p["mode"],
        policy,
        {f: p[f] for f in fields},
        {f: p[f"prefill_{f}"] for f in fields},
        {f: p[f"decode_{f}"] for f in fields},
        {"agg": p["workers"], "prefill": p["prefill_workers"], "decode": p["decode_workers"]},
    )
    return Resolved(arch, spec, db, setup, policy, plans)


def worker_plans(arch, mode: str, policy, shared: dict, prefill: dict, decode: dict, workers: dict):
    """WorkerPlans of an agg (``shared`` layout) or disagg deployment (``prefill``/``decode`` layout
    fields override ``shared``); ``workers`` holds agg / prefill / decode counts."""
    from servopt.errors import UnknownNameError
    from servopt.evaluate.single import resolve_moe_split
    from servopt.models.parallel import Layout
    from servopt.simulate.build import WorkerPlan

    if mode not in ("agg", "disagg"):
        raise UnknownNameError("mode", mode, "unknown mode", ("agg", "disagg"))

    def layout(over: dict) -> Layout:
        t, p, d = (shared[k] if over.get(k) is None else over[k] for k in ("tp", "pp", "dp"))
        mt, me = over.get("moe_tp"), over.get("moe_ep")
        if mt is None and me is None:
            mt, me = shared["moe_tp"], shared["moe_ep"]
        mtp, mep = resolve_moe_split(arch.is_moe, t, d, mt, me)
        return Layout(t, p, d, mtp, mep)

    if mode == "agg":
        return [WorkerPlan("agg", layout({}), workers["agg"], policy)]
    return [
        WorkerPlan("prefill", layout(prefill), workers["prefill"], policy),
        WorkerPlan("decode", layout(decode), workers["decode"], policy),
    ]
