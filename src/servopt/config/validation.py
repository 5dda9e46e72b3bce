"""Pydantic validation errors -> configuration problems with positions and plain-words messages."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from servopt.config.problems import NO_VALUE, Problem
from servopt.config.source import Document, Path_

# What each pydantic type error expected, in words.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "tuple_type": "a list",
    "list_type": "a list",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dict_type": "a mapping",
}
# Peer-era key names a user may bring from aiconfigurator's own YAML files.
_KEY_HINTS = {
    "model_path": "model_name",
    "enable_wideep": "enable_wide_ep",
    "prefill_system_name": "system_name",
    "agg_worker_config": "worker_config",
    "max_prefill_workers": "max_prefill_worker",
    "max_decode_workers": "max_decode_worker",
    "prefill_latency_correction": "prefill_latency_correction_scale",
    "decode_latency_correction": "decode_latency_correction_scale",
}
# Keys the peer's worker configs accept for a feature servopt does not model yet: the reason
# (none at present; cp_list is modelled since issue 13).
_UNSUPPORTED_KEYS: dict[str, str] = {}
_YAML_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
    type(None): "null",
}


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete types inside Optional / Annotated / unions."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (None past a leaf)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return None
        nested = [t for t in _unwrap(info.annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
        model = nested[0] if nested else None
    return model


def _type_name(value: object) -> str:
    return _YAML_TYPE_NAMES.get(type(value), type(value).__name__)


def _message(err: dict[str, Any]) -> tuple[str, tuple[str, ...] | None]:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_type_name(err.get('input'))}", None
    if kind == "literal_error":
        allowed = tuple(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return "not an allowed value", allowed or None
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge')}", None
    if kind == "greater_than":
        return f"must be > {ctx.get('gt')}", None
    if kind == "less_than_equal":
        return f"must be <= {ctx.get('le')}", None
    if kind == "less_than":
        return f"must be < {ctx.get('lt')}", None
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return ("must not be empty" if n == 1 else f"needs at least {n} entries"), None
    if kind == "too_long":
        return f"allows at most {ctx.get('max_length')} entries", None
    if kind == "string_too_short":
        return "must not be empty", None
    if kind == "finite_number":
        return "must be a finite number", None
    if kind == "missing":
        return "required key is missing", None
    return str(err.get("msg", "invalid value")), None


def problems_from_error(
    err: ValidationError, model: type[BaseModel], doc: Document, prefix: Path_
) -> list[Problem]:
    """One problem per pydantic error, located in ``doc`` under ``prefix``."""
    errors = err.errors()
    locs = [tuple(e["loc"]) for e in errors]
    problems: list[Problem] = []
    for e, loc in zip(errors, locs, strict=True):
        # "list is empty" after its entries failed is noise: the entries' own errors say it all.
        if e["type"] == "too_short" and any(other[: len(loc)] == loc and other != loc for other in locs):
            continue
        path = (*prefix, *loc)
        if e["type"] == "extra_forbidden":
            parent = model_at(model, loc[:-1])
            allowed = tuple(parent.model_fields) if parent is not None else None
            key = loc[-1]
            hint = _KEY_HINTS.get(key) if isinstance(key, str) else None
            message = "unknown key" + (
                f" (did you mean {hint}?)" if hint and allowed and hint in allowed else ""
            )
            reason = _UNSUPPORTED_KEYS.get(key) if isinstance(key, str) else None
            if reason:
                message += f": {reason}"
                hint = key  # no spelling suggestion for a key that is right but unsupported
            problems.append(
                doc.problem(path, message, value=key, allowed=allowed, key=True, suggest=not hint)
            )
            continue
        message, allowed = _message(e)
        value = NO_VALUE if e["type"] == "missing" else e.get("input", NO_VALUE)
        # A missing key is reported where its parent mapping's key is written.
        problems.append(doc.problem(path, message, value=value, allowed=allowed, key=e["type"] == "missing"))
    return problems


def validate(
    model: type[BaseModel], data: Any, doc: Document, prefix: Path_, problems: list[Problem]
) -> BaseModel | None:
    """Validate ``data`` against ``model``; on failure append located problems and return None."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems.extend(problems_from_error(err, model, doc, prefix))
        return None
