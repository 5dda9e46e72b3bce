"""GuideLLM's JSON report (``guidellm run --output kind=json``) -> one record per benchmark.

The report (``metadata.version`` 2, GuideLLM 0.8) holds ``benchmarks``, one per strategy of the
run (a sweep or ``--override profile.streams 2,8`` gives several). Each states its strategy under
``config.strategy`` (``type_``: ``synchronous`` = one client, ``concurrent`` with ``streams`` = a
closed loop of that many, ``constant`` / ``poisson`` with ``rate`` = an open loop, ``throughput`` =
everything at once, capped by ``max_concurrency`` where set) and its metrics as distributions
(``mean``, ``median``, ``min``, ``max``, ``total_sum``, ``percentiles.p50/p90/p99``) over the
``successful`` requests:

- ``time_to_first_token_ms``; ``inter_token_latency_ms`` -- GuideLLM's name for the time per
  output token after the first, servopt's TPOT (its ``time_per_output_token_ms`` divides the whole
  request, first token included, and is not used);
- ``prompt_token_count`` / ``output_token_count``: the server's ``usage`` counts where it returns
  them (``prefer_response_metrics``), so lengths are the engine's;
- ``output_tokens_per_second``: output tokens per second of the benchmark window.

The deployment comes from the ``servopt_setup.yaml`` sidecar (:mod:`servopt.calibrate.sidecar`).
A malformed report is ``file:line: field: message`` (line 0 with the field's JSON path, or the
parser's line for invalid JSON), exit 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from servopt.calibrate.records import MeasuredRecord
from servopt.calibrate.sidecar import RunFacts, find_setup, finite, make_record
from servopt.errors import DataFileError

TOOL = "GuideLLM"


def read_guidellm(path: Path | str, setup: dict | None = None) -> list[MeasuredRecord]:
    """One record per benchmark of a GuideLLM JSON report."""
    path = Path(path)
    setup = find_setup(path, setup)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataFileError(path, 0, "file", f"cannot be read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise DataFileError(path, exc.lineno, "json", exc.msg) from None
    benchmarks = doc.get("benchmarks") if isinstance(doc, dict) else None
    if not isinstance(benchmarks, list) or not benchmarks:
        raise DataFileError(path, 0, "benchmarks", "must be a non-empty list (a GuideLLM JSON report)")
    version = (doc.get("metadata") or {}).get("guidellm_version", "?")
    return [
        make_record(_facts(b, path, i, f"{TOOL} {version} {path.name}"), setup, path)
        for i, b in enumerate(benchmarks)
    ]


def _facts(bench, path: Path, i: int, source: str) -> RunFacts:
    where = f"benchmarks[{i}]"
    if not isinstance(bench, dict):
        raise DataFileError(path, 0, where, "must be an object")

    def dist(name: str) -> dict:
        metrics = bench.get("metrics")
        d = metrics.get(name) if isinstance(metrics, dict) else None
        d = d.get("successful") if isinstance(d, dict) else None
        field = f"{where}.metrics.{name}.successful"
        if not isinstance(d, dict):
            raise DataFileError(path, 0, field, "is missing: not a GuideLLM report?")
        pct = d.get("percentiles") if isinstance(d.get("percentiles"), dict) else {}
        out = {"mean": d.get("mean"), "p50": pct.get("p50", d.get("median")), "p90": pct.get("p90"),
               "p99": pct.get("p99"), "min": d.get("min"), "max": d.get("max"), "sum": d.get("total_sum"),
               "count": d.get("count")}  # fmt: skip
        for key, v in out.items():
            if not finite(v) or v < 0:
                raise DataFileError(path, 0, f"{field}.{key}", "must be a finite number >= 0", v)
        return out

    requests = dist("output_token_count")["count"]
    if requests < 1:
        raise DataFileError(path, 0, f"{where}.metrics", "no successful request")
    prompt, output = dist("prompt_token_count"), dist("output_token_count")
    fixed = prompt["min"] == prompt["max"] and output["min"] == output["max"]
    concurrency, rate = _strategy(bench.get("config"), path, where)
    latency = ("mean", "p50", "p90", "p99")
    ttft, itl = dist("time_to_first_token_ms"), dist("inter_token_latency_ms")
    return RunFacts(
        source=source,  # one report is one campaign; ``row`` tells its benchmarks apart
        tool=TOOL,
        isl=prompt["mean"],
        osl=output["mean"],
        lengths="fixed" if fixed else "dataset",
        range_ratio=None,
        requests=int(requests),
        input_tokens=None if fixed else round(prompt["sum"]),
        output_tokens=None if fixed else round(output["sum"]),
        concurrency=concurrency,
        rate=rate,
        ttft={k: ttft[k] for k in latency},
        tpot={k: itl[k] for k in latency},
        output_tok_s=dist("output_tokens_per_second")["mean"],
        row=i + 1,
    )


def _strategy(config, path: Path, where: str) -> tuple[int | None, float | None]:
    """(concurrency, rate) of a benchmark's ``config.strategy`` (see the module notes)."""
    strategy = config.get("strategy") if isinstance(config, dict) else None
    field = f"{where}.config.strategy"
    if not isinstance(strategy, dict):
        raise DataFileError(path, 0, field, "is missing: the benchmark's load cannot be told")
    kind = strategy.get("type_")

    def positive(key: str, integer: bool):
        v = strategy.get(key)
        ok = isinstance(v, int) if integer else finite(v)
        if isinstance(v, bool) or not ok or v <= 0:
            raise DataFileError(path, 0, f"{field}.{key}", "must be a positive number", v)
        return v

    cap = strategy.get("max_concurrency")
    cap = None if cap is None else positive("max_concurrency", True)
    if kind == "synchronous":
        return 1, None
    if kind == "concurrent":
        return positive("streams", True), None
    if kind in ("constant", "poisson"):
        return cap, float(positive("rate", False))
    if kind == "throughput":
        return cap, math.inf
    raise DataFileError(
        path, 0, f"{field}.type_", "unknown strategy (synchronous, concurrent, constant, poisson, throughput)",
        kind,
    )  # fmt: skip
