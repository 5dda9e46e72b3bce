"""What a benchmark tool's file does not record, and the record built from the two.

AIPerf, ``vllm bench serve``, SGLang's ``bench_serving`` and GuideLLM record the load, the request
lengths and the latencies, not the deployment: model as servopt names it, GPU system, engine and
its version, precision, layout. Those come from a sidecar, ``servopt_setup.yaml`` beside the
tool's file (or a ``setup`` mapping passed in)::

    model: Qwen3-32B          # required; a name setups.MODELS maps (Qwen3-32B -> QWEN3_32B)
    system: h200_sxm          # required
    backend: trtllm           # required
    backend_version: "1.0"    # optional
    precision: bf16           # bf16 | fp8 | fp4 | mxfp4 (weights); unstated records are not fitted on
    kv_cache: fp8             # optional: fp8 | fp16 (default: the engine's)
    tp: 2                     # aggregated layout; or, disaggregated:
    prefill: {workers: 1, tp: 2}
    decode: {workers: 2, tp: 2}

Each tool's reader turns its file into :class:`RunFacts` (what the tool measured, its units already
servopt's); :func:`make_record` joins them with the sidecar into one :class:`MeasuredRecord`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from servopt.calibrate.records import BACKENDS, LENGTHS, Disagg, MeasuredRecord, WorkerGroup
from servopt.errors import DataFileError

SIDECAR = "servopt_setup.yaml"
_WEIGHTS = ("bf16", "fp8", "fp4", "mxfp4")
SETUP_KEYS = ("model", "system", "backend", "backend_version", "precision", "tp", "pp", "ep", "dp",
              "attention_dp", "prefill", "decode", "source", "kv_cache")  # fmt: skip
STATS = ("mean", "p50", "p90", "p99")


@dataclass(frozen=True)
class RunFacts:
    """One benchmark run as a tool measured it (ms, tokens, requests/s, output tokens/s)."""

    source: str
    tool: str  # "AIPerf", "vllm bench serve", ...
    isl: float  # the stated length (the maximum for lengths == "random"), else the mean
    osl: float
    lengths: str  # LENGTHS
    range_ratio: float | None  # lengths == "random": uniform in [range_ratio * isl, isl]
    requests: int
    input_tokens: int | None  # totals over the run where the lengths vary
    output_tokens: int | None
    concurrency: int | None  # closed-loop clients (a cap on in-flight requests)
    rate: float | None  # requests/s of an open-loop load; inf: every request at once
    ttft: dict  # STATS -> ms or None
    tpot: dict
    output_tok_s: float | None
    row: int = 0  # the line of a multi-run file the run was read from (0: one run per file)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def stats(values) -> dict:
    """Mean and p50/p90/p99 of per-request values (numpy's linear percentiles, as the tools use)."""
    a = np.asarray(values, dtype=float)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"mean": float(a.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def find_setup(path: Path, setup: dict | None) -> dict:
    """The ``setup`` mapping given, checked; else the sidecar beside ``path``."""
    if setup is None:
        return read_sidecar(path.parent / SIDECAR)
    return check_setup(dict(setup), Path("<setup>"))


def read_sidecar(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError:
        raise DataFileError(
            path,
            0,
            "file",
            "is missing: benchmark tools do not record model/system/backend/layout; write them here",
        ) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        raise DataFileError(path, line, "yaml", "is not valid YAML") from None
    if not isinstance(data, dict):
        raise DataFileError(path, 1, "file", "must be a mapping of model, system, backend, layout")
    return check_setup(data, path)


def check_setup(data: dict, path: Path) -> dict:
    for key in data:
        if key not in SETUP_KEYS:
            raise DataFileError(path, 0, str(key), f"unknown key (known: {', '.join(SETUP_KEYS)})")
    for key in ("model", "system", "backend"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise DataFileError(path, 0, key, "is required (text)")
    if data.get("precision") not in (None, *_WEIGHTS):
        raise DataFileError(path, 0, "precision", f"must be one of {', '.join(_WEIGHTS)}", data["precision"])
    if data.get("kv_cache") not in (None, "fp8", "fp16"):
        raise DataFileError(path, 0, "kv_cache", "must be fp8 or fp16", data["kv_cache"])
    if data["backend"] not in BACKENDS:
        raise DataFileError(path, 0, "backend", f"must be one of {', '.join(BACKENDS)}", data["backend"])
    for key in ("tp", "pp", "ep", "dp"):
        _positive(data.get(key), path, key)
    for role in ("prefill", "decode"):
        group = data.get(role)
        if group is None:
            continue
        if not isinstance(group, dict) or set(group) - {"workers", "tp", "ep"}:
            raise DataFileError(path, 0, role, "must be a mapping of workers, tp (ep optional)")
        for key in ("workers", "tp"):
            if _positive(group.get(key), path, f"{role}.{key}") is None:
                raise DataFileError(path, 0, f"{role}.{key}", "is required")
        _positive(group.get("ep"), path, f"{role}.ep")
    if (data.get("prefill") is None) != (data.get("decode") is None):
        raise DataFileError(
            path, 0, "prefill/decode", "give both worker groups of a disaggregated deployment"
        )
    return data


def _positive(value, path: Path, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataFileError(path, 0, field, "must be a positive integer", value)
    return value


def load_kind(concurrency: int | None, rate: float | None) -> str | None:
    """The record's LOADS kind: a finite rate is an open loop (capped or not), an infinite rate
    with a concurrency cap a closed loop of that many clients, with none a burst."""
    if rate is not None and math.isfinite(rate):
        return "open_loop"
    if concurrency is not None:
        return "closed_loop"
    return "burst" if rate is not None else None


def make_record(facts: RunFacts, setup: dict, path: Path) -> MeasuredRecord:
    assert facts.lengths in LENGTHS
    prefill, decode = setup.get("prefill"), setup.get("decode")
    tp, pp, ep, dp = (setup.get(k) for k in ("tp", "pp", "ep", "dp"))
    disagg = None
    if prefill is not None:
        groups = [
            WorkerGroup(g["workers"], g["tp"], g.get("ep", 1), False, g["workers"] * g["tp"])
            for g in (prefill, decode)
        ]
        disagg = Disagg(*groups)
        num_gpus = groups[0].gpus + groups[1].gpus
    else:
        num_gpus = (tp or 1) * (pp or 1) * (dp or 1) if tp else None
    load = load_kind(facts.concurrency, facts.rate)
    if load is None:
        raise DataFileError(path, facts.row, "load", "states neither a concurrency nor a request rate")
    out = facts.output_tok_s
    n = facts.requests
    mean_isl = facts.input_tokens / n if facts.input_tokens and n else facts.isl
    mean_osl = facts.output_tokens / n if facts.output_tokens and n else facts.osl
    return MeasuredRecord(
        source=str(setup.get("source") or facts.source),
        model=setup["model"],
        gpu=setup["system"],
        system=setup["system"],
        num_gpus=num_gpus,
        framework=f"{facts.tool} vs {setup['backend']}",
        backend=setup["backend"],
        framework_version=setup.get("backend_version"),
        backend_version=setup.get("backend_version"),
        precision=str(setup.get("precision") or "unstated"),
        weights=setup.get("precision"),
        kv_cache=setup.get("kv_cache"),
        tp=tp if disagg is None else None,
        pp=pp,
        ep=ep,
        dp=dp,
        attention_dp=bool(setup.get("attention_dp", False)),
        disagg=disagg,
        isl=round(facts.isl),
        osl=round(facts.osl),
        lengths=facts.lengths,
        range_ratio=facts.range_ratio if facts.lengths == "random" else None,
        num_requests=n,
        input_tokens=facts.input_tokens,
        output_tokens=facts.output_tokens,
        concurrency=facts.concurrency,
        # A closed loop's clients send as fast as they can: its rate is no figure of the load.
        request_rate=None if load == "closed_loop" else facts.rate,
        load=load,
        spec="none",
        spec_nextn=None,
        ttft_ms=facts.ttft["mean"],
        tpot_ms=facts.tpot["mean"],
        latency_stat="mean",
        ttft_p50_ms=facts.ttft.get("p50"),
        ttft_p90_ms=facts.ttft.get("p90"),
        ttft_p99_ms=facts.ttft.get("p99"),
        tpot_p50_ms=facts.tpot.get("p50"),
        tpot_p90_ms=facts.tpot.get("p90"),
        tpot_p99_ms=facts.tpot.get("p99"),
        basis="output",
        total_tok_s=out,
        tok_s_per_gpu=out / num_gpus if out and num_gpus else None,
        tok_s_per_user=None,
        output_tok_s=out,
        output_tok_s_per_gpu=out / num_gpus if out and num_gpus else None,
        output_tok_s_per_decode_gpu=out / disagg.decode.gpus if out and disagg else None,
        input_tok_s_per_prefill_gpu=(
            out * mean_isl / mean_osl / disagg.prefill.gpus if out and disagg and mean_osl else None
        ),
        row=facts.row,
    )
