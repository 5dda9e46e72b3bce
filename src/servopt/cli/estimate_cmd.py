"""``servopt cli estimate``: latency, throughput and memory of one configuration, op by op.

Flags are named like the experiment YAML (underscore and dashed forms both work). The heavy
imports (numba kernels, the perf database) happen inside the command so ``--help`` stays instant.
"""

from __future__ import annotations

import json
import math

import typer

from servopt.cli import options

MODES_HELP = (
    "static (prefill + decode), static_ctx (prefill worker), static_gen (decode worker), agg (in-flight)"
)


def _parse_rates(text: str | None) -> list[float] | None:
    from servopt.errors import ServoptError

    if text is None or text.strip() == "":
        return None
    try:
        rates = [float(v) for v in text.replace("[", "").replace("]", "").split(",") if v.strip()]
        if not all(math.isfinite(r) for r in rates):
            raise ValueError("not finite")
        return rates
    except ValueError:
        raise ServoptError(
            "nextn_accept_rates", text, "must be comma-separated probabilities, e.g. 0.85,0.3"
        ) from None


def estimate(
    model: str = options.model_option(),
    system: str = options.system_option("h200_sxm"),
    backend: str = options.backend_option(),
    backend_version: str | None = options.backend_version_option(),
    isl: int = typer.Option(4000, "--isl", help="Input sequence length (tokens)."),
    osl: int = typer.Option(1000, "--osl", help="Output sequence length (tokens)."),
    prefix: int = typer.Option(0, "--prefix", help="Cached prefix tokens of the input."),
    batch_size: int = typer.Option(
        1, "--batch_size", "--batch-size", help="Requests per GPU group (per dp rank)."
    ),
    ctx_tokens: int | None = typer.Option(
        None, "--ctx_tokens", "--ctx-tokens", help="agg: context tokens per step (default isl)."
    ),
    tp: int = typer.Option(1, "--tp", help="Attention tensor parallelism."),
    pp: int = typer.Option(1, "--pp", help="Pipeline parallelism (transformer layers)."),
    dp: int = typer.Option(1, "--dp", help="Attention data parallelism (MoE models)."),
    cp: int = typer.Option(
        1, "--cp", help="Context parallelism (SGLang prefill: ranks split each prompt; needs tp = dp = 1)."
    ),
    moe_tp: int | None = typer.Option(
        None,
        "--moe_tp",
        "--moe-tp",
        help="MoE tensor parallelism (default: tp*dp / moe_ep, or 1 when both are unset).",
    ),
    moe_ep: int | None = typer.Option(
        None,
        "--moe_ep",
        "--moe-ep",
        help="MoE expert parallelism (default: tp*dp / moe_tp, or tp*dp when both are unset).",
    ),
    gemm_quant_mode: str | None = options.quant_option("gemm"),
    moe_quant_mode: str | None = options.quant_option("moe"),
    kvcache_quant_mode: str | None = options.quant_option("kvcache"),
    fmha_quant_mode: str | None = options.quant_option("fmha"),
    nextn: int = typer.Option(0, "--nextn", help="Speculative (MTP) draft tokens per step."),
    nextn_accept_rates: str | None = typer.Option(
        None,
        "--nextn_accept_rates",
        "--nextn-accept-rates",
        help="Accept rate of each draft position, e.g. 0.85,0.3.",
    ),
    mode: str = typer.Option("static", "--mode", help=MODES_HELP),
    latency_correction_scale: float = typer.Option(
        1.0,
        "--latency_correction_scale",
        "--latency-correction-scale",
        help="Multiplies every op (static modes), before the calibration profile applies.",
    ),
    perf_db: str | None = options.perf_db_option(),
    sol: bool = typer.Option(
        False, "--sol", help="Roofline (speed-of-light) latencies instead of measured data."
    ),
    calibration: str = options.calibration_option(),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Estimate TTFT, TPOT, throughput and memory of one configuration, with the per-op breakdown."""
    from servopt.errors import ServoptError
    from servopt.evaluate.candidates import ModelSetup, Workload
    from servopt.evaluate.single import estimate_config, quant_modes, resolve_moe_split
    from servopt.hardware import load_system
    from servopt.models.parallel import Layout
    from servopt.models.registry import resolve_model
    from servopt.perf_db.database import open_database

    if not (math.isfinite(latency_correction_scale) and latency_correction_scale > 0):
        raise ServoptError(
            "--latency_correction_scale", latency_correction_scale, "must be a finite number > 0"
        )
    arch = resolve_model(model)
    spec = load_system(system)
    mtp, mep = resolve_moe_split(arch.is_moe, tp, dp, moe_tp, moe_ep, cp)
    layout = Layout(tp, pp, dp, mtp, mep, cp)
    db = open_database(system, backend, backend_version, cache_dir=perf_db, sol=sol)
    quant = quant_modes(
        arch, gemm_quant_mode, moe_quant_mode, kvcache_quant_mode, fmha_quant_mode, db=db, backend=backend
    )
    setup = ModelSetup(arch, backend, quant, spec, db.version, nextn)
    result = estimate_config(
        db,
        setup,
        layout,
        Workload(isl, osl, prefix),
        mode=mode,
        batch_size=batch_size,
        ctx_tokens=ctx_tokens,
        accept_rates=_parse_rates(nextn_accept_rates),
        latency_correction=latency_correction_scale,
    )
    result = _calibrate(result, calibration, backend, spec.name)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    _render(result, db)


def _calibrate(result, calibration: str, backend: str, system: str):
    """The estimate with the profile's adjustments (``--calibration``, every mode; the formula of the
    search, ``servopt.evaluate.calibration``); unchanged for none, and then no ``calibration`` key."""
    from servopt.calibrate.model import resolve_calibration, scope_adjustments
    from servopt.evaluate.single import calibrated

    adj, doc = scope_adjustments(resolve_calibration(calibration), backend, system)
    if doc is None:
        return result
    out = calibrated(result, adj)
    out.config["calibration"] = doc
    return out


def _render(result, db) -> None:
    from rich.console import Console
    from rich.table import Table

    from servopt.report.tables import scope_calibration_line

    console = Console()
    c = result.config
    console.print(
        f"[bold]{c['model']}[/] on {c['system']} / {c['backend']} {c['backend_version']}"
        f"{' (roofline)' if getattr(db, 'sol', False) else ''}  {c['parallel']}  mode={c['mode']}  "
        f"isl={c['isl']} osl={c['osl']} batch={c['batch_size']}  "
        f"gemm={c['gemm_quant_mode']} moe={c['moe_quant_mode']} kv={c['kvcache_quant_mode']} "
        f"fmha={c['fmha_quant_mode']} nextn={c['nextn']}"
    )
    cal = c.get("calibration")
    line = scope_calibration_line(cal, values=True)
    console.print(
        line if cal is None else line + "; the op tables below are the raw model's",
        markup=False,
        highlight=False,
    )
    phases: dict[str, list] = {}
    for op in result.ops:
        phases.setdefault(op.phase, []).append(op)
    for phase, rows in phases.items():
        total = sum(r.latency_ms for r in rows)
        table = Table(title=f"{phase} ops", title_justify="left")
        table.add_column("op")
        table.add_column("ms", justify="right")
        table.add_column("share", justify="right")
        for r in rows:
            table.add_row(
                r.name, f"{r.latency_ms:.3f}", f"{100 * r.latency_ms / total:.1f}%" if total else "-"
            )
        table.add_row("[bold]total[/]", f"[bold]{total:.3f}[/]", "")
        console.print(table)
    metrics = Table(title="metrics", title_justify="left")
    metrics.add_column("metric")
    metrics.add_column("value", justify="right")
    for label, value in (
        ("TTFT (ms)", result.ttft_ms),
        ("TPOT (ms)", result.tpot_ms),
        ("request latency (ms)", result.request_latency_ms),
        ("tokens/s", result.tokens_per_s),
        ("tokens/s/gpu", result.tokens_per_s_per_gpu),
        ("tokens/s/user", result.tokens_per_s_per_user),
        ("requests/s", result.seq_per_s),
        ("concurrency", result.concurrency),
        ("GPUs", result.gpus),
        *((f"schedule: {k}", v) for k, v in result.extra.items()),
    ):
        metrics.add_row(label, f"{value:.3f}" if isinstance(value, float) else str(value))
    mem = result.memory
    metrics.add_row(
        "memory per GPU (GiB)",
        f"{mem['total']:.2f} = weights {mem['weights']:.2f} + activations {mem['activations']:.2f} "
        f"+ KV {mem['kvcache']:.2f} + nccl {mem['nccl']:.2f} + other {mem['others']:.2f}",
    )
    console.print(metrics)
