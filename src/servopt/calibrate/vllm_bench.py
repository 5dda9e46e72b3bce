"""``vllm bench serve --save-result`` JSON (and SGLang's ``bench_serving`` JSONL) -> records.

The two clients share a lineage (SGLang's ``bench_serving`` began as vLLM's
``benchmark_serving.py``) and most field names:

- vLLM writes one JSON object per run (``--save-result``; ``--append-result`` appends more, one a
  line): ``completed``, ``total_input_tokens``, ``total_output_tokens``, ``request_rate`` (``"inf"``
  for all at once), ``max_concurrency``, ``output_throughput`` (output tokens/s), and for each of
  ``ttft``, ``tpot`` (excluding the first token), ``itl``, ``e2el``: ``mean_*_ms``, ``median_*_ms``
  and ``p{P}_*_ms`` for each ``--metric-percentiles`` P (default 99);
- SGLang appends one JSON object a line to ``--output-file``: the same totals and throughputs,
  ``mean/median/p90/p95/p99`` of ``ttft``, ``tpot``, ``itl``, ``e2e_latency``, and the random
  dataset's ``random_input_len``, ``random_output_len``, ``random_range_ratio``.

Load: an infinite ``request_rate`` with ``max_concurrency`` is a closed loop of that many clients;
a finite rate an open loop (capped by ``max_concurrency`` where given); infinite with no cap a burst.

Lengths: both clients count the prompt with the client tokenizer and the output as the server's
``usage.completion_tokens`` (or the streamed chunks). The record keeps the run's token totals, so
``mean_isl``/``mean_osl`` are the measured means. SGLang's random dataset states its rule (uniform
in ``[ratio * len, len]``, fixed at ratio 1); vLLM's JSON does not (its ``--random-range-ratio`` is a
symmetric range not written to the file), so its lengths are ``fixed`` only when the detailed lists
(``--save-detailed``) show it, else ``dataset`` with the measured means.

Percentiles: those the file states (vLLM: ``--metric-percentiles``, default 99 only; SGLang: 90,
95, 99); a p90 or p99 vLLM did not state is computed from the per-request lists where
``--save-detailed`` kept them, as the client computes its own (numpy's linear percentiles).

The deployment comes from the ``servopt_setup.yaml`` sidecar (:mod:`servopt.calibrate.sidecar`).
A malformed file is ``file:line: field: message``, exit 2 (the line of the run's object).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from servopt.calibrate.records import MeasuredRecord
from servopt.calibrate.sidecar import RunFacts, find_setup, finite, make_record, stats
from servopt.errors import DataFileError


def looks_like_vllm(doc: dict) -> bool:
    """vLLM's result names its client's endpoint type; SGLang's names its dataset."""
    return "endpoint_type" in doc or ("model_id" in doc and "dataset_name" not in doc)


def looks_like_sglang(doc: dict) -> bool:
    return "dataset_name" in doc and "mean_e2e_latency_ms" in doc


def read_vllm_bench(path: Path | str, setup: dict | None = None) -> list[MeasuredRecord]:
    """One record per run object of a ``vllm bench serve`` result file."""
    return _read(Path(path), setup, "vllm bench serve")


def read_sglang_bench(path: Path | str, setup: dict | None = None) -> list[MeasuredRecord]:
    """One record per line of an SGLang ``bench_serving --output-file`` JSONL."""
    return _read(Path(path), setup, "SGLang bench_serving")


def _read(path: Path, setup: dict | None, tool: str) -> list[MeasuredRecord]:
    setup = find_setup(path, setup)
    records = []
    for line, doc in runs(path):
        records.append(make_record(_facts(doc, path, line, tool), setup, path))
    if not records:
        raise DataFileError(path, 0, "file", f"holds no run ({tool} writes one JSON object per run)")
    return records


def runs(path: Path) -> list[tuple[int, dict]]:
    """(line, object) of each run: one JSON document, or one object a line (appended results)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataFileError(path, 0, "file", f"cannot be read ({exc.strerror or exc})") from None
    lines = text.splitlines()
    first = next((n for n, t in enumerate(lines, start=1) if t.strip()), None)
    if first is not None and lines[first - 1].strip() == "{":
        # One pretty-printed document (``json.dump(..., indent=...)``).
        try:
            out = [(first, json.loads(text))]
        except json.JSONDecodeError as exc:
            raise DataFileError(path, exc.lineno, "json", exc.msg) from None
    else:
        # What both clients write: one object a line (one line for a single ``--save-result``).
        out = []
        for n, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    out.append((n, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise DataFileError(path, n, "json", exc.msg) from None
    for n, doc in out:
        if not isinstance(doc, dict):
            raise DataFileError(path, n, "run", "must be a JSON object")
    return out


def _facts(doc: dict, path: Path, line: int, tool: str) -> RunFacts:
    def number(key: str, required: bool = True, allow_inf: bool = False):
        v = doc.get(key)
        if v is None:
            if required:
                raise DataFileError(path, line, key, f"is missing: not a {tool} result?")
            return None
        if allow_inf and v in ("inf", "Infinity"):
            return math.inf
        if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
            raise DataFileError(path, line, key, "must be a number", v)
        if v < 0 or (math.isinf(v) and not allow_inf):
            raise DataFileError(path, line, key, "must be a finite number >= 0", v)
        return float(v)

    completed = number("completed")
    if completed < 1 or completed != int(completed):
        raise DataFileError(
            path, line, "completed", "must be a positive integer (no request completed?)", doc["completed"]
        )
    n = int(completed)
    tokens_in, tokens_out = number("total_input_tokens"), number("total_output_tokens")
    rate = number("request_rate", allow_inf=True)
    conc = doc.get("max_concurrency")
    if conc is not None and (isinstance(conc, bool) or not isinstance(conc, int) or conc < 1):
        raise DataFileError(path, line, "max_concurrency", "must be a positive integer or null", conc)
    if rate is not None and rate <= 0:
        raise DataFileError(path, line, "request_rate", "must be > 0 or inf", doc["request_rate"])

    per_request = _per_request(doc, path, line)

    def latency(metric: str) -> dict:
        out = {"mean": number(f"mean_{metric}_ms"), "p50": number(f"median_{metric}_ms")}
        for p in ("p90", "p99"):
            out[p] = number(f"{p}_{metric}_ms", required=False)
            if out[p] is None and per_request is not None:
                # Not among the stated percentiles, but the run's per-request values are kept.
                out[p] = per_request[metric][p]
        return out

    lengths, ratio, isl, osl = _lengths(doc, path, line, tool, n, tokens_in, tokens_out)
    return RunFacts(
        # One file is one campaign (one source for the leave-one-source-out folds); ``row`` tells
        # its runs apart.
        source=f"{tool} {path.name}",
        tool=tool,
        isl=isl,
        osl=osl,
        lengths=lengths,
        range_ratio=ratio,
        requests=n,
        input_tokens=None if lengths == "fixed" else int(tokens_in),
        output_tokens=None if lengths == "fixed" else int(tokens_out),
        concurrency=conc,
        rate=rate,
        ttft=latency("ttft"),
        tpot=latency("tpot"),
        output_tok_s=number("output_throughput"),
        row=line,
    )


def _per_request(doc: dict, path: Path, line: int) -> dict | None:
    """TTFT and TPOT stats of the successful requests where the file keeps them (vLLM's
    ``--save-detailed``: ``ttfts``, ``latencies`` in s, ``output_lens``; failed requests have an
    error and a zero length), computed as the client does (TPOT over ``output_len - 1``)."""
    lists = [doc.get(k) for k in ("ttfts", "latencies", "output_lens", "errors")]
    if not all(isinstance(v, list) for v in lists) or len({len(v) for v in lists}) != 1:
        return None
    ttft, tpot = [], []
    for i, (t, lat, out, err) in enumerate(zip(*lists, strict=True)):
        if err or not out:
            continue
        if not (finite(t) and finite(lat) and isinstance(out, int)):
            raise DataFileError(
                path, line, f"ttfts/latencies/output_lens[{i}]", "must be numbers", (t, lat, out)
            )
        ttft.append(t * 1000.0)
        if out > 1:
            tpot.append((lat - t) * 1000.0 / (out - 1))
    if not ttft or not tpot:
        return None
    return {"ttft": stats(ttft), "tpot": stats(tpot)}


def _lengths(doc, path, line, tool, n, tokens_in, tokens_out):
    """(lengths, range_ratio, isl, osl) as the record states them (see the module notes)."""
    mean_in, mean_out = tokens_in / n, tokens_out / n
    if tool == "SGLang bench_serving" and str(doc.get("dataset_name", "")).startswith("random"):
        ratio, isl, osl = (
            doc.get(k) for k in ("random_range_ratio", "random_input_len", "random_output_len")
        )
        for key, v in (("random_input_len", isl), ("random_output_len", osl)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise DataFileError(path, line, key, "must be a positive integer (random dataset)", v)
        if not finite(ratio) or not 0 <= ratio <= 1:
            raise DataFileError(path, line, "random_range_ratio", "must be a number in [0, 1]", ratio)
        if ratio == 1:
            return "fixed", None, float(isl), float(osl)
        return "random", float(ratio), float(isl), float(osl)
    lens = [doc.get("input_lens"), doc.get("output_lens")]
    if all(isinstance(v, list) and v for v in lens) and all(len(set(v)) == 1 for v in lens):
        return "fixed", None, float(lens[0][0]), float(lens[1][0])
    return "dataset", None, mean_in, mean_out
