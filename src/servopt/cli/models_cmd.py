"""`servopt models ...` commands: list the models servopt can run, show one."""

from __future__ import annotations

import json
from typing import Any

import typer

app = typer.Typer(no_args_is_help=True, help="Models servopt can run: list, show.")

# Marks a model read from aiconfigurator-core's bundled config.json copies, not servopt's registry.
BUNDLED_MARK = "*"


def _quant_text(quant: Any) -> str:
    weights = quant.gemm if quant.gemm == quant.moe else f"{quant.gemm}/{quant.moe}"
    return f"{weights} kv={quant.kvcache} fmha={quant.fmha}"


def _summary(arch: Any) -> dict[str, Any]:
    return {
        "name": arch.name,
        "hf_id": arch.hf_id,
        "source": arch.source,
        "family": arch.family,
        "hf_architecture": arch.hf_architecture,
        "num_layers": arch.num_layers,
        "params_b": round(arch.param_count() / 1e9, 2),
        "active_params_b": round(arch.active_param_count() / 1e9, 2),
        "default_quant": arch.quant.model_dump(),
        "aliases": list(arch.aliases),
    }


@app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    registry_only: bool = typer.Option(
        False,
        "--registry-only",
        "--registry_only",
        help="Leave out models read from aiconfigurator-core's configs.",
    ),
) -> None:
    """Every model servopt can run, with its family, size and default (checkpoint) quantization."""
    from servopt.models.registry import list_models

    models = list_models(include_model_configs=not registry_only)
    rows = [_summary(m) for m in models]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return

    from rich.table import Table

    from servopt.cli.output import stdout_console

    table = Table(title="servopt models", title_justify="left")
    for column, justify in (
        ("name", "left"),
        ("HF id", "left"),
        ("family", "left"),
        ("layers", "right"),
        ("params", "right"),
        ("active", "right"),
        ("default quant", "left"),
    ):
        # Names and ids are copied into --model: on a narrow terminal they fold onto a second
        # line rather than end in an ellipsis.
        table.add_column(
            column, justify=justify, overflow="fold" if column in ("name", "HF id") else "ellipsis"
        )
    for arch, row in zip(models, rows, strict=True):
        mark = BUNDLED_MARK if arch.source == "model_configs" else ""
        table.add_row(
            row["name"] + mark,
            row["hf_id"] or "",
            row["family"],
            str(row["num_layers"]),
            f"{row['params_b']:.1f}B",
            f"{row['active_params_b']:.1f}B",
            _quant_text(arch.quant),
        )
    console = stdout_console(160)
    console.print(table)
    if any(m.source == "model_configs" for m in models):
        console.print(f"{BUNDLED_MARK} read from aiconfigurator-core's bundled config.json copies")


@app.command("show")
def show_cmd(
    model: str = typer.Argument(..., help="Registry name, alias, Hugging Face id, or path to a config.json."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every architecture number servopt uses for one model."""
    from servopt.models.registry import resolve_model

    arch = resolve_model(model)
    data = arch.model_dump(mode="json")
    data["params_b"] = round(arch.param_count() / 1e9, 3)
    data["active_params_b"] = round(arch.active_param_count() / 1e9, 3)
    data["num_moe_layers"] = arch.num_moe_layers
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        typer.echo(f"{key:<{width}}  {value}")
