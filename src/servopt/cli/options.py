"""Options more than one command takes, declared once so that they read the same in every ``--help``.

Choices are listed from what servopt knows (the system specs in its data folder, the backend and
quant-mode types), not from copies; only light modules are imported, so ``--help`` stays instant.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import typer

from servopt.backends import BACKENDS
from servopt.limits import MAX_TOTAL_GPUS, MIN_TOTAL_GPUS
from servopt.models.quant_modes import FMHA_QUANTS, GEMM_QUANTS, KV_QUANTS, MOE_QUANTS
from servopt.resources import data_root


def system_names() -> list[str]:
    # The same listing as perf_db.systems.system_names, without importing pydantic.
    return sorted(p.stem for p in (data_root() / "systems").glob("*.yaml"))


def _one_of(names) -> str:
    return ", ".join(names)


MODEL_HELP = (
    "A model from 'servopt models list' (e.g. QWEN3_32B), a Hugging Face id (e.g. Qwen/Qwen3-32B; "
    "read from the local Hugging Face cache, or downloaded when online), or a path to a config.json "
    "or its folder."
)
GPUS_HELP = f"GPU budget, {MIN_TOTAL_GPUS} to {MAX_TOTAL_GPUS}."


def model_option():
    return typer.Option(..., "--model", "--model_name", "--model-name", help=MODEL_HELP)


def system_option(default):
    return typer.Option(
        default, "--system", "--system_name", "--system-name", help=f"GPU system: {_one_of(system_names())}."
    )


def backend_option():
    return typer.Option(
        "trtllm",
        "--backend",
        "--backend_name",
        "--backend-name",
        help=f"Serving engine: {_one_of(BACKENDS)}.",
    )


def backend_version_option():
    return typer.Option(
        None,
        "--backend_version",
        "--backend-version",
        help="Engine version whose measured data to use (see 'servopt perfdb list'); default: the latest.",
    )


def perf_db_option():
    return typer.Option(
        None, "--perf_db", "--perf-db", help="Folder of the built perf databases (default: the user cache)."
    )


# MXFP4 checkpoints (gpt-oss) default to w4a16_mxfp4, aiconfigurator 0.12.0's choice; the faster
# Blackwell path is an explicit choice.
MOE_QUANT_HELP = (
    " MXFP4 checkpoints (gpt-oss) default to w4a16_mxfp4 (bf16 activations, Hopper's TRITON MoE); on "
    "Blackwell TRT-LLM's CUTLASS MoE runs MXFP4 x MXFP8: w4a8_mxfp4_mxfp8 (priced where the measured "
    "data has its table)."
)


def quant_option(component: str):
    choices = {"gemm": GEMM_QUANTS, "moe": MOE_QUANTS, "kvcache": KV_QUANTS, "fmha": FMHA_QUANTS}[component]
    return typer.Option(
        None,
        f"--{component}_quant_mode",
        f"--{component}-quant-mode",
        help=f"{component} quantization: {_one_of(choices)} (default: the checkpoint's)."
        + (MOE_QUANT_HELP if component == "moe" else ""),
    )


CALIBRATION_HELP = (
    "Calibration profile: default (shipped, fitted on public measurements; the default), none (the raw "
    "model, comparable with aiconfigurator 0.12.0) or a profile YAML path (servopt calibrate --out). "
    "The advanced-tuning latency correction scales multiply the raw latencies first; the profile applies "
    "after them."
)


def calibration_option(default: str | None = "default", help_extra: str = ""):
    return typer.Option(default, "--calibration", help=CALIBRATION_HELP + help_extra)


def with_option_group(group: tuple, after: str) -> Callable[[Callable], Callable]:
    """Give a typer command the options of ``group`` ((parameter, type, option) triples), listed
    in ``--help`` right after its parameter ``after``.

    Typer reads a command's options from its signature, so the command declares only its own
    parameters and a ``**`` catch-all; the wrapper's signature lists the group's options, and
    their values reach the command in the catch-all, by the group's parameter names.
    """

    def wrap(command: Callable) -> Callable:
        own = [
            p
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        grouped = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
            for name, kind, option in group
        ]
        at = [p.name for p in own].index(after) + 1
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[:at] + grouped + own[at:]]

        @functools.wraps(command)
        def wrapper(**kwargs):
            return command(**kwargs)

        wrapper.__signature__ = inspect.Signature(params, return_annotation=None)
        wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
        return wrapper

    return wrap
