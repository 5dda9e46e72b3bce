"""AIPerf's exports -> :class:`MeasuredRecord`.

Two of the files ``aiperf profile`` writes into its ``--output-artifact-dir`` are read:

- ``profile_export_aiperf.json``, the run's summary: the profiling phase's load (``input_config``:
  ``--concurrency`` -> closed loop, ``--request-rate`` -> open loop at that rate), and the metrics
  AIPerf states (``time_to_first_token``, ``inter_token_latency``, ``request_latency`` with avg/p50/
  p90/p99, ``output_token_throughput``, ``input/output_sequence_length``, ``usage_*_tokens``);
- ``profile_export.jsonl``, one line per request; its profiling-phase requests are summarised here
  the same way (warm-up and cancelled requests left out).

Lengths. AIPerf counts ``input/output_sequence_length`` with the client's ``--tokenizer``; the
server's own counts, when it returns ``usage``, are ``usage_prompt/completion_tokens``. The engine
scheduled the server's tokens, so those are used where present. AIPerf's ``inter_token_latency``
divides by the client's count: where the two counts differ (a client tokenizer that is not the
model's; ``--use-server-token-count`` avoids it), the summary's ITL figures are rescaled by
``(client_osl - 1) / (server_osl - 1)`` (exact for fixed lengths, an approximation otherwise) and
the jsonl's per-request TPOT is recomputed from the request's latency, TTFT and server count;
``output_token_throughput`` is rescaled by ``server_osl / client_osl`` the same way.

What AIPerf does not record -- model, GPU system, engine, version, precision, layout -- comes from a
sidecar, ``servopt_setup.yaml`` beside the export (or the ``setup`` mapping passed in)::

    model: Qwen3-32B          # required; a name setups.MODELS maps (Qwen3-32B -> QWEN3_32B)
    system: h200_sxm          # required
    backend: trtllm           # required
    backend_version: "1.0"    # optional
    precision: bf16           # bf16 | fp8 | fp4 | mxfp4 (weights); unstated records are not fitted on
    kv_cache: fp8             # optional: fp8 | fp16 (default: the engine's)
    tp: 2                     # aggregated layout; or, disaggregated:
    prefill: {workers: 1, tp: 2}
    decode: {workers: 2, tp: 2}

A malformed file is a :class:`servopt.errors.DataFileError` (``file:line: field: message``, exit 2;
line 0 for the JSON summary, whose fields are named).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import yaml

from servopt.calibrate.records import BACKENDS, Disagg, MeasuredRecord, WorkerGroup
from servopt.errors import DataFileError

SUMMARY = "profile_export_aiperf.json"
REQUESTS = "profile_export.jsonl"
SIDECAR = "servopt_setup.yaml"
_WEIGHTS = ("bf16", "fp8", "fp4", "mxfp4")
_SETUP_KEYS = ("model", "system", "backend", "backend_version", "precision", "tp", "pp", "ep", "dp",
               "attention_dp", "prefill", "decode", "source", "kv_cache")  # fmt: skip


def is_aiperf_file(path: Path | str) -> bool:
    name = Path(path).name
    return name.endswith(".jsonl") or name.endswith(".json")


def read_aiperf(path: Path | str, setup: dict | None = None) -> list[MeasuredRecord]:
    """One record for an AIPerf export (summary JSON or per-request JSONL)."""
    path = Path(path)
    if setup is None:
        setup = read_sidecar(path.parent / SIDECAR)
    else:
        setup = _check_setup(dict(setup), Path("<setup>"))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataFileError(path, 0, "file", f"cannot be read ({exc.strerror or exc})") from None
    facts = _from_jsonl(text, path) if path.name.endswith(".jsonl") else _from_summary(text, path)
    return [_record(facts, setup, path)]


def read_sidecar(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError:
        raise DataFileError(
            path, 0, "file", "is missing: AIPerf does not record model/system/backend/layout; write them here"
        ) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        raise DataFileError(path, line, "yaml", "is not valid YAML") from None
    if not isinstance(data, dict):
        raise DataFileError(path, 1, "file", "must be a mapping of model, system, backend, layout")
    return _check_setup(data, path)


def _check_setup(data: dict, path: Path) -> dict:
    for key in data:
        if key not in _SETUP_KEYS:
            raise DataFileError(path, 0, str(key), f"unknown key (known: {', '.join(_SETUP_KEYS)})")
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


# --------------------------------------------------------------------------- summary JSON


def _from_summary(text: str, path: Path) -> dict:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(path, exc.lineno, "json", exc.msg) from None
    if not isinstance(doc, dict):
        raise DataFileError(path, 1, "file", "is not an AIPerf summary (a JSON object)")

    def metric(name: str, required: bool = True) -> dict | None:
        m = doc.get(name)
        if m is None:
            if required:
                raise DataFileError(path, 0, name, "is missing: not an AIPerf profile_export_aiperf.json?")
            return None
        if not isinstance(m, dict) or not _finite(m.get("avg")):
            raise DataFileError(path, 0, f"{name}.avg", "must be a finite number", m)
        for stat in ("p50", "p90", "p99"):
            if stat in m and not _finite(m[stat]):
                raise DataFileError(path, 0, f"{name}.{stat}", "must be a finite number", m[stat])
        return m

    ttft = metric("time_to_first_token")
    itl = metric("inter_token_latency")
    latency = metric("request_latency")
    count = metric("request_count")
    out_tput = metric("output_token_throughput")
    client_isl = metric("input_sequence_length")
    client_osl = metric("output_sequence_length")
    server_isl = metric("usage_prompt_tokens", required=False)
    server_osl = metric("usage_completion_tokens", required=False)
    isl = (server_isl or client_isl)["avg"]
    osl = (server_osl or client_osl)["avg"]
    scale = _itl_scale(client_osl["avg"], osl)
    concurrency, rate = _load(doc.get("input_config"), path)
    return {
        "isl": isl,
        "osl": osl,
        "fixed": all(
            m.get("min") == m.get("max") for m in (server_isl or client_isl, server_osl or client_osl)
        ),
        "requests": int(count["avg"]),
        "concurrency": concurrency,
        "rate": rate,
        "ttft": {s: ttft.get(k) for s, k in _STATS},
        "tpot": {s: None if itl.get(k) is None else itl[k] * scale for s, k in _STATS},
        "latency": {s: latency.get(k) for s, k in _STATS},
        # AIPerf counts output tokens with the client tokenizer too: back to the server's count.
        "output_tok_s": out_tput["avg"] * osl / client_osl["avg"] if client_osl["avg"] > 0 else None,
        "source": f"AIPerf {doc.get('aiperf_version', '?')} {path.name}",
    }


_STATS = (("mean", "avg"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99"))


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _itl_scale(client_osl: float, server_osl: float) -> float:
    """AIPerf's ITL is per client token; the engine's per server token (see the module notes)."""
    if server_osl <= 1 or client_osl <= 1 or abs(client_osl / server_osl - 1) < 0.02:
        return 1.0
    return (client_osl - 1) / (server_osl - 1)


def _load(config, path: Path) -> tuple[int | None, float | None]:
    """The profiling phase's --concurrency and --request-rate from ``input_config``."""
    phases = config.get("phases") if isinstance(config, dict) else None
    if not isinstance(phases, list):
        raise DataFileError(path, 0, "input_config.phases", "is missing: the run's load cannot be told")
    profiling = [p for p in phases if isinstance(p, dict) and p.get("kind") == "profiling"]
    if len(profiling) != 1:
        raise DataFileError(
            path, 0, "input_config.phases", f"has {len(profiling)} profiling phases, expected 1"
        )
    phase = profiling[0]
    conc, rate = phase.get("concurrency"), phase.get("request_rate", phase.get("rate"))
    if conc is not None and (isinstance(conc, bool) or not isinstance(conc, int) or conc < 1):
        raise DataFileError(path, 0, "input_config.phases.concurrency", "must be a positive integer", conc)
    if rate is not None and (not _finite(rate) or rate <= 0):
        raise DataFileError(path, 0, "input_config.phases.request_rate", "must be a positive number", rate)
    if conc is None and rate is None:
        raise DataFileError(path, 0, "input_config.phases", "states neither concurrency nor request_rate")
    return conc, rate


# --------------------------------------------------------------------------- per-request JSONL


def _from_jsonl(text: str, path: Path) -> dict:
    rows: list[tuple[float, float, float, float, float, float]] = []
    starts, ends = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFileError(path, n, "json", exc.msg) from None
        meta, metrics = (
            r.get("metadata") if isinstance(r, dict) else None,
            r.get("metrics") if isinstance(r, dict) else None,
        )
        if not isinstance(meta, dict) or not isinstance(metrics, dict):
            raise DataFileError(
                path, n, "record", "needs 'metadata' and 'metrics' objects (AIPerf profile_export.jsonl)"
            )
        if meta.get("benchmark_phase") != "profiling" or meta.get("was_cancelled") or r.get("error"):
            continue

        def value(name: str, fallback: str | None = None, _m=metrics, _n=n) -> float:
            m = _m.get(name)
            if m is None and fallback is not None:
                m = _m.get(fallback)
                name = fallback
            v = m.get("value") if isinstance(m, dict) else None
            if not _finite(v):
                raise DataFileError(path, _n, f"metrics.{name}.value", "must be a finite number", v)
            return float(v)

        ttft = value("time_to_first_token")
        latency = value("request_latency")
        isl = value("usage_prompt_tokens", "input_sequence_length")
        osl = value("usage_completion_tokens", "output_sequence_length")
        tpot = (latency - ttft) / max(osl - 1, 1)
        for key in ("request_start_ns", "request_end_ns"):
            if not _finite(meta.get(key)):
                raise DataFileError(path, n, f"metadata.{key}", "must be a number", meta.get(key))
        starts.append(meta["request_start_ns"])
        ends.append(meta["request_end_ns"])
        rows.append((ttft, tpot, latency, isl, osl, 0.0))
    if not rows:
        raise DataFileError(path, 0, "records", "no completed profiling-phase requests")
    a = np.array(rows)
    span_s = (max(ends) - min(starts)) / 1e9

    def stats(col: np.ndarray) -> dict:
        p50, p90, p99 = np.percentile(col, [50, 90, 99])
        return {"mean": float(col.mean()), "p50": float(p50), "p90": float(p90), "p99": float(p99)}

    return {
        "isl": float(a[:, 3].mean()),
        "osl": float(a[:, 4].mean()),
        "fixed": bool(np.ptp(a[:, 3]) == 0 and np.ptp(a[:, 4]) == 0),
        "requests": len(rows),
        # The per-request file does not state the load: the summary (or the sidecar) does.
        "concurrency": None,
        "rate": None,
        "ttft": stats(a[:, 0]),
        "tpot": stats(a[:, 1]),
        "latency": stats(a[:, 2]),
        "output_tok_s": float(a[:, 4].sum() / span_s) if span_s > 0 else None,
        "source": f"AIPerf {path.name}",
    }


# --------------------------------------------------------------------------- record


def _record(facts: dict, setup: dict, path: Path) -> MeasuredRecord:
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
    conc, rate = facts["concurrency"], facts["rate"]
    if path.name.endswith(".jsonl"):
        summary = path.parent / SUMMARY
        if summary.exists():
            conc, rate = _load(_json_or_none(summary), summary)
    if rate is not None:
        load = "open_loop"
    elif conc is not None:
        load = "closed_loop"
    else:
        raise DataFileError(path, 0, "load", f"not stated: keep {SUMMARY} beside the jsonl")
    out = facts["output_tok_s"]
    isl, osl = facts["isl"], facts["osl"]
    return MeasuredRecord(
        source=str(setup.get("source") or facts["source"]),
        model=setup["model"],
        gpu=setup["system"],
        system=setup["system"],
        num_gpus=num_gpus,
        framework=f"AIPerf vs {setup['backend']}",
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
        isl=round(isl),
        osl=round(osl),
        lengths="fixed" if facts["fixed"] else "dataset",
        range_ratio=None,
        num_requests=facts["requests"],
        input_tokens=None if facts["fixed"] else round(isl * facts["requests"]),
        output_tokens=None if facts["fixed"] else round(osl * facts["requests"]),
        concurrency=conc,
        request_rate=rate,
        load=load,
        spec="none",
        spec_nextn=None,
        ttft_ms=facts["ttft"]["mean"],
        tpot_ms=facts["tpot"]["mean"],
        latency_stat="mean",
        ttft_p50_ms=facts["ttft"]["p50"],
        ttft_p99_ms=facts["ttft"]["p99"],
        tpot_p50_ms=facts["tpot"]["p50"],
        tpot_p99_ms=facts["tpot"]["p99"],
        basis="output",
        total_tok_s=out,
        tok_s_per_gpu=out / num_gpus if out and num_gpus else None,
        tok_s_per_user=None,
        output_tok_s=out,
        output_tok_s_per_gpu=out / num_gpus if out and num_gpus else None,
        output_tok_s_per_decode_gpu=out / disagg.decode.gpus if out and disagg else None,
        input_tok_s_per_prefill_gpu=out * isl / osl / disagg.prefill.gpus if out and disagg and osl else None,
        row=0,
    )


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("input_config")
    except (OSError, json.JSONDecodeError, AttributeError):
        raise DataFileError(
            path, 0, "input_config", "cannot be read from the summary beside the jsonl"
        ) from None
