"""`servopt perfdb ...` commands: list the measured data, query one op with its provenance."""

from __future__ import annotations

import inspect
import json
import math
from typing import Any

import typer

from servopt.backends import BACKENDS
from servopt.cli import options

app = typer.Typer(no_args_is_help=True, help="Performance database: list data, query one op.")

PROVENANCE = {-1: "missing", 0: "exact", 1: "interpolated", 2: "edge-corrected", 3: "extrapolated", 4: "sol"}
# CLI op name -> PerfDatabase method.
OPS = {
    "gemm": "gemm_ms",
    "context_attention": "context_attention_ms",
    "generation_attention": "generation_attention_ms",
    "context_mla": "context_mla_ms",
    "generation_mla": "generation_mla_ms",
    "mla_module": "mla_module_ms",
    "mla_bmm": "mla_bmm_ms",
    "moe": "moe_ms",
    "custom_allreduce": "custom_allreduce_ms",
    "nccl": "nccl_ms",
    "compute_scale": "compute_scale_ms",
    "scale_matrix": "scale_matrix_ms",
    "mem_op": "mem_op_ms",
    "p2p": "p2p_ms",
}
_QUERY_FLAGS = {"provenance", "missing"}


def _systems_overview(system: str | None) -> list[dict[str, Any]]:
    from servopt.hardware import load_system, system_names
    from servopt.perf_db import locate

    names = [system] if system else system_names()
    rows = []
    for name in names:
        spec = load_system(name)
        entry: dict[str, Any] = {
            "system": name,
            "data": "roofline-only" if spec.roofline_only else "measured",
        }
        if not spec.roofline_only:
            entry["backends"] = {
                b: locate.version_slots(spec.measured_data, b)
                for b in locate.backends_with_data(spec.measured_data)
            }
        rows.append(entry)
    return rows


def _tables(system: str, backend: str, version: str | None, perf_db: str | None) -> dict[str, Any]:
    from servopt.perf_db.database import open_database

    db = open_database(system, backend, version, cache_dir=perf_db)
    info = db.table_info
    return {
        "system": system,
        "backend": backend,
        "version": db.version,
        "from_cache": db.from_cache,
        "tables": {
            t: {"rows": v["rows"], "sources": v["sources"], "borrowed": v.get("borrowed", [])}
            for t, v in info.items()
        },
        "grid_slices": {n: f.num_slices for n, f in db.families.items()},
    }


def _borrowed_text(b: dict, backend: str) -> str:
    where = b["version"] if b["backend"] == backend else f"{b['backend']} {b['version']}"
    return f"{b['rows']} from {where}"


@app.command("list")
def list_cmd(
    system: str = typer.Option(
        None, "--system", help="Only this system (then tables and row counts are shown)."
    ),
    backend: str = typer.Option(None, "--backend", help="Only this backend (with --system)."),
    version: str = typer.Option(None, "--version", help="Version or slot alias (current/previous/next)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    perf_db: str = typer.Option(None, "--perf_db", "--perf-db", help="Cache folder of built databases."),
) -> None:
    """Systems, backends and queryable versions; with --system, each backend's tables and row counts."""
    from servopt.errors import ServoptError

    overview = _systems_overview(system)
    details = []
    if system and overview[0]["data"] == "measured":
        backends = [backend] if backend else list(overview[0]["backends"])
        details = [_tables(system, b, version, perf_db) for b in backends]
    elif system and backend:
        from servopt.perf_db import locate

        if backend not in locate.BACKENDS:
            raise ServoptError("backend", backend, "unknown backend", locate.BACKENDS)
    if as_json:
        typer.echo(json.dumps({"systems": overview, "databases": details}, indent=2))
        return
    from rich.table import Table

    from servopt.cli.output import stdout_console

    console = stdout_console(160)
    table = Table(title="servopt perf databases", title_justify="left")
    for col in ("system", "data", "backend", "versions (current/previous/next)"):
        table.add_column(col)
    for entry in overview:
        if entry["data"] != "measured" or not entry["backends"]:
            table.add_row(entry["system"], entry["data"], "-", "roofline from the system spec (SOL)")
            continue
        for b, slots in entry["backends"].items():
            text = ", ".join(f"{k}={v}" for k, v in slots.items())
            table.add_row(entry["system"], entry["data"], b, text)
    console.print(table)
    for d in details:
        t = Table(title=f"{d['system']} / {d['backend']} / {d['version']}", title_justify="left")
        t.add_column("table")
        t.add_column("rows", justify="right")
        t.add_column("sources")
        t.add_column("borrowed rows")
        for name, info in d["tables"].items():
            borrowed = "; ".join(_borrowed_text(b, d["backend"]) for b in info["borrowed"])
            t.add_row(name, str(info["rows"]), "; ".join(info["sources"]) or "-", borrowed or "-")
        console.print(t)


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            value = cast(text)
        except ValueError:
            continue
        if not math.isfinite(value):
            from servopt.errors import ServoptError

            raise ServoptError("value", text, "must be a finite number")
        return value
    if "," in text:
        return [_parse_value(x) for x in text.split(",")]
    return text


@app.command("query")
def query_cmd(
    op: str = typer.Argument(..., help=f"One of: {', '.join(OPS)}."),
    assignments: list[str] = typer.Argument(
        None, help="key=value arguments of the op (see the error for names)."
    ),
    system: str = typer.Option(..., "--system", help=f"GPU system: {', '.join(options.system_names())}."),
    backend: str = typer.Option("trtllm", "--backend", help=f"Serving engine: {', '.join(BACKENDS)}."),
    version: str = typer.Option(None, "--version", help="Version or slot alias (default: current)."),
    sol: bool = typer.Option(False, "--sol", help="Pure roofline (speed-of-light) latency."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    perf_db: str = typer.Option(None, "--perf_db", "--perf-db", help="Cache folder of built databases."),
) -> None:
    """Latency of one op at one point, e.g. `servopt perfdb query gemm --system h200_sxm quant_mode=fp8 m=64
    n=4096 k=5120`, with its provenance (exact, interpolated, edge-corrected, extrapolated or sol)."""
    import numpy as np

    from servopt.errors import ServoptError, UnknownNameError
    from servopt.perf_db.database import open_database

    if op not in OPS:
        raise UnknownNameError("op", op, "unknown op", list(OPS))
    db = open_database(system, backend, version, cache_dir=perf_db, sol=sol)
    method = getattr(db, OPS[op])
    params = {n: p for n, p in inspect.signature(method).parameters.items() if n not in _QUERY_FLAGS}
    kwargs: dict[str, Any] = {}
    for item in assignments or []:
        if "=" not in item:
            raise ServoptError("argument", item, "expected key=value", list(params))
        key, value = item.split("=", 1)
        if key not in params:
            raise UnknownNameError("argument", key, f"not an argument of {op}", list(params))
        kwargs[key] = _parse_value(value)
    missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        raise ServoptError("argument", ",".join(missing), f"required by {op}", list(params))
    takes_prov = "provenance" in inspect.signature(method).parameters
    if takes_prov:
        lat, prov = method(**kwargs, provenance=True)
        prov_names = [PROVENANCE.get(int(p), str(p)) for p in np.ravel(prov)]
    else:
        lat = method(**kwargs)
        prov_names = ["sol" if db.sol else "analytic"] * np.size(lat)
    lat_list = [float(x) for x in np.ravel(lat)]
    result = {
        "op": op,
        "database": db.label(),
        "arguments": kwargs,
        "latency_ms": lat_list[0] if len(lat_list) == 1 else lat_list,
        "provenance": prov_names[0] if len(prov_names) == 1 else prov_names,
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    args = " ".join(f"{k}={v}" for k, v in kwargs.items())
    for value, prov in zip(lat_list, prov_names, strict=True):
        typer.echo(f"{op} {args} on {db.label()}: {value:.6g} ms ({prov})")


@app.command("warm")
def warm_cmd(
    system: list[str] = typer.Option(["h200_sxm"], "--system", help="System(s) whose databases to build."),
    backend: str = typer.Option("trtllm", "--backend", help="Backend."),
    version: str = typer.Option(None, "--version", help="Version or slot alias (default: current)."),
    perf_db: str = typer.Option(None, "--perf_db", "--perf-db", help="Cache folder of built databases."),
) -> None:
    """Build everything a first run builds, now: the perf databases and the kernels' ahead-of-time
    module (for images and CI; `cli default` otherwise builds the module in the background)."""
    import time

    from servopt.cli.startup import AOT_ENV, aot_enabled
    from servopt.perf_db.database import open_database
    from servopt.resources import cache_dir
    from servopt_kernels import aot

    root = cache_dir(perf_db)
    for name in system:
        t0 = time.perf_counter()
        db = open_database(name, backend, version, cache_dir=root)
        how = "cached" if db.from_cache else "built"
        typer.echo(f"perf database {name}/{backend}/{db.version}: {how} in {time.perf_counter() - t0:.1f} s")
    if not aot_enabled():
        typer.echo(f"kernels: {AOT_ENV}=0, numba's JIT only")
        return
    t0 = time.perf_counter()
    path = aot.module_path(root)
    if aot.intact(path):
        typer.echo(f"kernels: ahead-of-time module present ({path})")
        return
    built = aot.build_locked(root)
    if built is None:
        typer.echo(
            "kernels: the ahead-of-time build failed or is running elsewhere; numba's JIT serves", err=True
        )
        raise typer.Exit(1)
    typer.echo(f"kernels: ahead-of-time module built in {time.perf_counter() - t0:.1f} s ({built})")
