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

What AIPerf does not record -- model, GPU system, engine, version, precision, layout -- comes from
the ``servopt_setup.yaml`` sidecar beside the export (:mod:`servopt.calibrate.sidecar`).

A malformed file is a :class:`servopt.errors.DataFileError` (``file:line: field: message``, exit 2;
line 0 for the JSON summary, whose fields are named).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from servopt.calibrate.records import MeasuredRecord
from servopt.calibrate.sidecar import SIDECAR, RunFacts, find_setup, finite, make_record, stats
from servopt.errors import DataFileError

SUMMARY = "profile_export_aiperf.json"
REQUESTS = "profile_export.jsonl"
__all__ = ["SIDECAR", "read_aiperf"]


def read_aiperf(path: Path | str, setup: dict | None = None) -> list[MeasuredRecord]:
    """One record for an AIPerf export (summary JSON or per-request JSONL)."""
    path = Path(path)
    setup = find_setup(path, setup)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataFileError(path, 0, "file", f"cannot be read ({exc.strerror or exc})") from None
    facts = _from_jsonl(text, path) if path.name.endswith(".jsonl") else _from_summary(text, path)
    return [make_record(facts, setup, path)]


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
        if not isinstance(m, dict) or not finite(m.get("avg")):
            raise DataFileError(path, 0, f"{name}.avg", "must be a finite number", m)
        for stat in ("p50", "p90", "p99"):
            if stat in m and not finite(m[stat]):
                raise DataFileError(path, 0, f"{name}.{stat}", "must be a finite number", m[stat])
        return m

    ttft = metric("time_to_first_token")
    itl = metric("inter_token_latency")
    metric("request_latency")  # required: a summary without it is not a complete AIPerf export
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
    fixed = all(m.get("min") == m.get("max") for m in (server_isl or client_isl, server_osl or client_osl))
    requests = int(count["avg"])
    return _facts(
        f"AIPerf {doc.get('aiperf_version', '?')} {path.name}",
        isl,
        osl,
        fixed,
        requests,
        concurrency,
        rate,
        ttft={s: ttft.get(k) for s, k in _STATS},
        tpot={s: None if itl.get(k) is None else itl[k] * scale for s, k in _STATS},
        # AIPerf counts output tokens with the client tokenizer too: back to the server's count.
        output_tok_s=out_tput["avg"] * osl / client_osl["avg"] if client_osl["avg"] > 0 else None,
    )


def _facts(source, isl, osl, fixed, requests, concurrency, rate, ttft, tpot, output_tok_s) -> RunFacts:
    return RunFacts(
        source=source,
        tool="AIPerf",
        isl=isl,
        osl=osl,
        lengths="fixed" if fixed else "dataset",
        range_ratio=None,
        requests=requests,
        input_tokens=None if fixed else round(isl * requests),
        output_tokens=None if fixed else round(osl * requests),
        concurrency=concurrency,
        rate=rate,
        ttft=ttft,
        tpot=tpot,
        output_tok_s=output_tok_s,
    )


_STATS = (("mean", "avg"), ("p50", "p50"), ("p90", "p90"), ("p99", "p99"))


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
    if rate is not None and (not finite(rate) or rate <= 0):
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
            if not finite(v):
                raise DataFileError(path, _n, f"metrics.{name}.value", "must be a finite number", v)
            return float(v)

        ttft = value("time_to_first_token")
        latency = value("request_latency")
        isl = value("usage_prompt_tokens", "input_sequence_length")
        osl = value("usage_completion_tokens", "output_sequence_length")
        tpot = (latency - ttft) / max(osl - 1, 1)
        for key in ("request_start_ns", "request_end_ns"):
            if not finite(meta.get(key)):
                raise DataFileError(path, n, f"metadata.{key}", "must be a number", meta.get(key))
        starts.append(meta["request_start_ns"])
        ends.append(meta["request_end_ns"])
        rows.append((ttft, tpot, latency, isl, osl, 0.0))
    if not rows:
        raise DataFileError(path, 0, "records", "no completed profiling-phase requests")
    a = np.array(rows)
    span_s = (max(ends) - min(starts)) / 1e9

    # The per-request file does not state the load: the summary beside it does.
    summary = path.parent / SUMMARY
    if not summary.exists():
        raise DataFileError(path, 0, "load", f"not stated: keep {SUMMARY} beside the jsonl")
    concurrency, rate = _load(_json_or_none(summary), summary)
    return _facts(
        f"AIPerf {path.name}",
        float(a[:, 3].mean()),
        float(a[:, 4].mean()),
        bool(np.ptp(a[:, 3]) == 0 and np.ptp(a[:, 4]) == 0),
        len(rows),
        concurrency,
        rate,
        ttft=stats(a[:, 0]),
        tpot=stats(a[:, 1]),
        output_tok_s=float(a[:, 4].sum() / span_s) if span_s > 0 else None,
    )


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("input_config")
    except (OSError, json.JSONDecodeError, AttributeError):
        raise DataFileError(
            path, 0, "input_config", "cannot be read from the summary beside the jsonl"
        ) from None
