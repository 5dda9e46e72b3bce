"""Experiments from a YAML file (``cli exp``) or from flags (``cli default``), validated in full.

A file maps experiment names to experiments in the seed's schema; an optional top-level ``exps:``
list (the peer's convention) selects and orders them, else every experiment runs in file order.
Every problem of the file is collected first and raised together as one ``ConfigError`` (exit code
2) before any search starts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from servopt import limits
from servopt.config.catalog import Catalog, DefaultCatalog
from servopt.config.defaults import (
    CALIBRATION_NAMES,
    DEFAULT_BACKEND,
    DEFAULT_CALIBRATION,
    DEFAULT_ISL,
    DEFAULT_OSL,
    DEFAULT_TPOT_MS,
    DEFAULT_TTFT_MS,
)
from servopt.config.problems import ConfigError, Problem
from servopt.config.resolve import resolve_experiment
from servopt.config.schema import Experiment
from servopt.config.source import Document, flags_document, parse_yaml, read_yaml_file
from servopt.errors import ServoptError

# The optional top-level key listing which experiments run, in order.
EXPS_KEY = "exps"

# ``cli default`` flag of each experiment key, so that problems name what the user typed.
DEFAULT_FLAGS = {
    "model_name": "--model",
    "total_gpus": "--total_gpus",
    "system_name": "--system",
    "decode_system_name": "--decode_system",
    "backend_name": "--backend",
    "backend_version": "--backend_version",
    "isl": "--isl",
    "osl": "--osl",
    "ttft": "--ttft",
    "tpot": "--tpot",
    "enable_wide_ep": "--enable_wide_ep",
    "profiles": "--profile",
    "calibration": "--calibration",
    "robust": "--robust",
}


def _experiment_names(doc: Document, problems: list[Problem]) -> list[str]:
    data = doc.data
    if data is None:
        problems.append(doc.problem((), "the file holds no experiments"))
        return []
    if not isinstance(data, dict):
        problems.append(doc.problem((), "the file must map experiment names to experiments", value=data))
        return []
    names: list[str] = []
    for key in data:
        if key == EXPS_KEY:
            continue
        if not isinstance(key, str) or not key.strip():
            problems.append(
                doc.problem(
                    (key,),
                    "an experiment name must be a non-empty string",
                    value=key,
                    key=True,
                    field=str(key),
                )
            )
            continue
        why = limits.folder_name_problem(key)
        if why is not None:
            problems.append(doc.problem((key,), why, value=key, key=True, field="experiment name"))
            continue
        names.append(key)
    if EXPS_KEY not in data:
        if not names and not problems:
            problems.append(doc.problem((), "the file holds no experiments"))
        return names
    order = data[EXPS_KEY]
    if not isinstance(order, list) or not order:
        problems.append(doc.problem((EXPS_KEY,), "must be a non-empty list of experiment names", value=order))
        return []
    chosen: list[str] = []
    for i, name in enumerate(order):
        if name not in names:
            problems.append(
                doc.problem(
                    (EXPS_KEY, i), "no experiment of this name in the file", value=name, allowed=names
                )
            )
        elif name in chosen:
            problems.append(doc.problem((EXPS_KEY, i), "listed twice", value=name))
        else:
            chosen.append(name)
    return chosen


def _resolve_all(
    doc: Document, names: Sequence[str], catalog: Catalog, problems: list[Problem]
) -> list[Experiment]:
    experiments = []
    for name in names:
        experiment = resolve_experiment(doc, (name,), catalog, problems)
        if experiment is not None:
            experiments.append(experiment)
    if problems:
        raise ConfigError(problems)
    return experiments


def load_experiments(path: str | os.PathLike, catalog: Catalog | None = None) -> list[Experiment]:
    """Every experiment of a YAML file, resolved; raises ConfigError listing all problems."""
    path = Path(path)
    doc, problems = read_yaml_file(path)
    names = _experiment_names(doc, problems) if doc is not None else []
    if doc is None:
        raise ConfigError(problems)
    return _resolve_all(doc, names, catalog or DefaultCatalog(), problems)


def load_experiments_text(
    text: str, name: str = "<string>", catalog: Catalog | None = None
) -> list[Experiment]:
    """The same as ``load_experiments`` for YAML text (profile paths resolve from the working directory)."""
    doc, problems = parse_yaml(text, name, folder=Path.cwd())
    if doc is None:
        raise ConfigError(problems)
    names = _experiment_names(doc, problems)
    return _resolve_all(doc, names, catalog or DefaultCatalog(), problems)


def default_experiments(
    model: str,
    total_gpus: int,
    system: str,
    decode_system: str | None = None,
    backend: str = DEFAULT_BACKEND,
    backend_version: str | None = None,
    isl: int = DEFAULT_ISL,
    osl: int = DEFAULT_OSL,
    ttft: float = DEFAULT_TTFT_MS,
    tpot: float = DEFAULT_TPOT_MS,
    enable_wide_ep: bool = False,
    profiles: Sequence[str] = (),
    catalog: Catalog | None = None,
    calibration: str = DEFAULT_CALIBRATION,
    robust: bool = False,
) -> list[Experiment]:
    """``cli default``: an agg and a disagg experiment from flags, the same objects a YAML would give.

    The disagg experiment needs at least 2 GPUs (one prefill, one decode worker); with
    ``total_gpus == 1`` only the agg experiment is returned. Problems name the flags.
    """
    common: dict[str, Any] = {
        "mode": "patch",
        "model_name": model,
        "total_gpus": total_gpus,
        "system_name": system,
        "backend_name": backend,
        "backend_version": backend_version,
        "isl": isl,
        "osl": osl,
        "ttft": ttft,
        "tpot": tpot,
        "enable_wide_ep": enable_wide_ep,
        "profiles": list(profiles),
        "calibration": calibration,
        **({"robust": True} if robust else {}),
    }
    data: dict[str, Any] = {"agg": {"serving_mode": "agg", **common}}
    if not (isinstance(total_gpus, int) and total_gpus == 1):
        data["disagg"] = {"serving_mode": "disagg", **common}
        if decode_system is not None:
            data["disagg"]["decode_system_name"] = decode_system
    doc = flags_document(data, DEFAULT_FLAGS)
    doc.folder = Path.cwd()
    return _resolve_all(doc, list(data), catalog or DefaultCatalog(), [])


def with_calibration(experiments: Sequence[Experiment], value: str) -> list[Experiment]:
    """The experiments with ``--calibration`` in place of their ``calibration`` key (a path is
    made absolute, so that a saved config.yaml reruns from anywhere)."""
    if value not in CALIBRATION_NAMES:
        path = Path(value).expanduser()
        if not path.is_file():
            raise ServoptError(
                "--calibration",
                value,
                "not default, none or a calibration profile file (servopt calibrate --out)",
                CALIBRATION_NAMES,
            )
        value = str(path.resolve())
    return [e.model_copy(update={"calibration": value}) for e in experiments]


def with_robust(experiments: Sequence[Experiment]) -> list[Experiment]:
    """The experiments with ``--robust``: every one plans at the pessimistic end of its band."""
    for e in experiments:
        if e.calibration == "none":
            raise ServoptError(
                "--robust", True, f"needs error bands; experiment {e.name} has calibration: none"
            )
    return [e.model_copy(update={"robust": True}) for e in experiments]
