"""``servopt cli simulate``: one deployment under an offered load, request by request.

Flags follow ``cli estimate`` (model, system, backend, layout, quant modes) plus the load
(``--concurrency`` or ``--request_rate``), request lengths, and engine scheduling overrides.
Disaggregated mode takes ``--prefill_*`` / ``--decode_*`` layouts (defaulting to ``--tp`` etc.)
and worker counts.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import typer

from servopt.cli import deployment_flags as flags
from servopt.cli import options


def _finite(name: str, value: float | None, *, positive: bool = True) -> None:
    from servopt.errors import ServoptError

    if value is None:
        return
    if not math.isfinite(value) or (positive and value <= 0):
        raise ServoptError(name, value, "must be a finite number > 0" if positive else "must be finite")


@options.with_option_group(flags.SHARED, after="seed")
def simulate(
    model: str = options.model_option(),
    system: str = options.system_option("h200_sxm"),
    backend: str = options.backend_option(),
    backend_version: str | None = options.backend_version_option(),
    mode: str = flags.MODE,
    isl: int = typer.Option(4000, "--isl", help="Mean input length (tokens)."),
    osl: int = typer.Option(1000, "--osl", help="Mean output length (tokens)."),
    isl_range: float = typer.Option(
        0.0, "--isl_range", "--isl-range", help="Uniform input lengths in isl*(1-r)..isl*(1+r)."
    ),
    osl_range: float = typer.Option(
        0.0, "--osl_range", "--osl-range", help="Uniform output lengths in osl*(1-r)..osl*(1+r)."
    ),
    lengths: str | None = typer.Option(
        None, "--lengths", help="CSV of input_length,output_length[,weight] rows to draw lengths from."
    ),
    trace: str | None = typer.Option(
        None, "--trace", help="JSONL trace (timestamp ms, input_length, output_length): replayed as is."
    ),
    concurrency: int | None = typer.Option(
        None, "--concurrency", help="Closed loop: N clients, each sends its next request when the last ends."
    ),
    request_rate: float | None = typer.Option(
        None, "--request_rate", "--request-rate", help="Open loop: requests per second."
    ),
    arrival: str = typer.Option("poisson", "--arrival", help="Open-loop arrivals: poisson, constant, gamma."),
    arrival_cv: float = typer.Option(
        1.0, "--arrival_cv", "--arrival-cv", help="gamma arrivals: coefficient of variation of the gaps."
    ),
    num_requests: int = typer.Option(2000, "--num_requests", "--num-requests", help="Requests simulated."),
    warmup: int | None = typer.Option(
        None, "--warmup", help="Requests excluded at the start (default: the first tenth)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the lengths and arrivals."),
    calibration: str = options.calibration_option(
        help_extra=" Explicit overhead flags override its overheads."
    ),
    gemm_quant_mode: str | None = options.quant_option("gemm"),
    moe_quant_mode: str | None = options.quant_option("moe"),
    kvcache_quant_mode: str | None = options.quant_option("kvcache"),
    fmha_quant_mode: str | None = options.quant_option("fmha"),
    ttft: float | None = typer.Option(None, "--ttft", help="TTFT target (ms) for goodput."),
    tpot: float | None = typer.Option(None, "--tpot", help="TPOT target (ms) for goodput."),
    perf_db: str | None = options.perf_db_option(),
    save_dir: str | None = typer.Option(
        None, "--save_dir", "--save-dir", help="Write per-request CSV, CDF and timeline plots here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
    **shared,
) -> None:
    """Simulate one deployment under load: TTFT/TPOT/ITL/E2E percentiles, throughput, goodput."""
    from servopt.calibrate.model import resolve_calibration, scope_adjustments
    from servopt.errors import ServoptError, UnknownNameError
    from servopt.simulate.scenario import Scenario
    from servopt.simulate.scenario import simulate as run_simulation
    from servopt.simulate.workload import Lengths, Load, read_histogram, read_trace

    iteration_overhead_ms = shared["iteration_overhead_ms"]
    request_overhead_ms = shared["request_overhead_ms"]
    _finite("request_rate", request_rate)
    _finite("arrival_cv", arrival_cv)
    _finite("ttft", ttft)
    for name, value in (
        ("iteration_overhead_ms", iteration_overhead_ms),
        ("request_overhead_ms", request_overhead_ms),
    ):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ServoptError(name, value, "must be a finite number >= 0")
    _finite("tpot", tpot)
    for name, value in (("isl_range", isl_range), ("osl_range", osl_range)):
        _finite(name, value, positive=False)
    if mode not in ("agg", "disagg"):
        raise UnknownNameError("mode", mode, "unknown mode", ("agg", "disagg"))
    if trace is not None and lengths is not None:
        raise ServoptError("trace", trace, "replaces --lengths: give one of them")
    if trace is None:
        load = Load(
            concurrency=concurrency, request_rate=request_rate, arrival=arrival, arrival_cv=arrival_cv
        )
    else:
        if request_rate is not None:
            raise ServoptError("request_rate", request_rate, "a trace brings its own arrival times")
        load = Load(concurrency=concurrency, request_rate=None if concurrency else 1.0)
    hist = read_histogram(lengths) if lengths else None
    requests = read_trace(trace) if trace else None
    lens = Lengths(isl, osl, isl_range, osl_range, hist)

    arch, spec, db, setup, policy, plans = flags.resolve({**locals(), **shared})
    scenario = Scenario(
        load=load,
        num_requests=num_requests if requests is None else len(requests.isl),
        seed=seed,
        lengths=lens,
        trace=requests,
        warmup=warmup,
        ttft_target_ms=ttft,
        tpot_target_ms=tpot,
        size_token_budget=shared["max_num_tokens"] is None,
        request_overhead_ms=request_overhead_ms or 0.0,
    )
    profile = resolve_calibration(calibration)
    adj, calib = scope_adjustments(profile, backend, spec.name)
    if adj is None:
        calib = {"profile": "none (raw model)"}
    else:
        adj = adj._replace(
            request_overhead_ms=adj.request_overhead_ms
            if request_overhead_ms is None
            else request_overhead_ms,
            iteration_overhead_ms=(
                adj.iteration_overhead_ms if iteration_overhead_ms is None else iteration_overhead_ms
            ),
        )
        scenario = replace(scenario, adjustments=adj, request_overhead_ms=0.0)
        calib = {**calib, **adj._asdict()}  # the overhead flags' values, where given
    result, deployment = run_simulation(db, setup, plans, scenario)
    config = {
        "model": arch.name,
        "system": spec.name,
        "backend": backend,
        "backend_version": db.version,
        "mode": mode,
        "workers": [
            {"role": p.role, "parallel": p.layout.label, **p.layout.columns(), "workers": p.workers}
            for p in plans
        ],
        "load": load.describe() if requests is None else {"kind": "trace", "path": trace},
        "isl": isl,
        "osl": osl,
        "policy": {k: v for k, v in vars(deployment.kinds[0].policy).items()},
        "kv_tokens_per_instance": {k.role: k.kv_tokens for k in deployment.kinds},
        "seed": seed,
        "calibration": calib,
    }
    doc = {"config": config, **result.to_json()}
    if profile is not None and profile.bands_for(mode):
        doc["bands_80"] = _bands(profile.bands_for(mode), backend, doc)
    if save_dir:
        from servopt.report.simulation import save_simulation

        path = save_simulation(doc, result, save_dir)
        doc["saved_to"] = str(path)
    if as_json:
        typer.echo(json.dumps(doc, indent=2, allow_nan=False))
        return
    _render(doc)


def _bands(bands: dict, backend: str, doc: dict) -> dict:
    """80% intervals of the mean TTFT, TPOT and output tok/s/GPU from the profile's held-out
    residuals (the serving mode's bands: ``Profile.bands_for``)."""
    from servopt.error_bands import bands_80

    return bands_80(
        bands,
        backend,
        {
            "ttft_ms": (doc["ttft_ms"] or {}).get("mean"),
            "tpot_ms": (doc["tpot_ms"] or {}).get("mean"),
            "output_tok_s_per_gpu": doc["output_tokens_per_s_per_gpu"],
        },
    )


def _render(doc: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from servopt.report.tables import scope_calibration_line

    console = Console()
    c = doc["config"]
    layout = " + ".join(f"{w['workers']} x {w['role']} {w['parallel']}" for w in c["workers"])
    load = c["load"]
    offered = (
        f"closed loop, {load['concurrency']} clients"
        if load["kind"] == "closed_loop"
        else (f"{load['request_rate']:g} req/s {load['arrival']}" if load["kind"] == "open_loop" else "trace")
    )
    console.print(
        f"[bold]{c['model']}[/] on {c['system']} / {c['backend']} {c['backend_version']}: {layout} "
        f"({doc['gpus']:g} GPUs), {offered}, isl {c['isl']} osl {c['osl']}"
    )
    cal = c["calibration"]
    console.print(
        scope_calibration_line(cal if "scope" in cal else None, values=True),
        markup=False,
        highlight=False,
    )
    table = Table(title_justify="left")
    for col in ("latency (ms)", "mean", "p50", "p90", "p99"):
        table.add_column(col, justify="right" if col != "latency (ms)" else "left")
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("itl_ms", "ITL"), ("e2e_ms", "E2E")):
        s = doc[key]
        table.add_row(label, *(f"{s[k]:.1f}" if s else "-" for k in ("mean", "p50", "p90", "p99")))
    console.print(table)
    console.print(
        f"output {doc['output_tokens_per_s']:.0f} tok/s ({doc['output_tokens_per_s_per_gpu']:.1f} per GPU), "
        f"{doc['requests_per_s']:.2f} req/s"
        + (
            f", goodput {doc['goodput_requests_per_s']:.2f} req/s"
            if doc["goodput_requests_per_s"] is not None
            else ""
        )
        + f"; {doc['num_requests']} requests measured, {doc['preempted_requests']} preempted"
    )
    bands = doc.get("bands_80")
    if bands:
        names = {"ttft_ms": "TTFT ms", "tpot_ms": "TPOT ms", "output_tok_s_per_gpu": "tok/s/GPU"}
        console.print(
            "80% band (held-out residuals): "
            + ", ".join(f"{names[k]} {lo:.4g}-{hi:.4g}" for k, (lo, hi) in bands.items()),
            markup=False,
            highlight=False,
        )
    if doc.get("saved_to"):
        console.print("results saved to:", soft_wrap=True)
        console.print(doc["saved_to"], soft_wrap=True, markup=False, highlight=False)
