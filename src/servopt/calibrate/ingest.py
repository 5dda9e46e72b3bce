"""Any measured-results file servopt reads -> records: the format is told from the file itself.

- ``*.csv``: servopt's structured layout or the public collection's (:mod:`public_csv`);
- AIPerf's ``profile_export_aiperf.json`` / ``profile_export.jsonl`` (:mod:`aiperf`);
- other JSON / JSONL: GuideLLM's report (an object with ``benchmarks``, :mod:`guidellm`),
  ``vllm bench serve --save-result`` or SGLang ``bench_serving --output-file``
  (:mod:`vllm_bench`), told apart by the fields each writes.

Every tool file takes its deployment from the ``servopt_setup.yaml`` beside it (:mod:`sidecar`).
"""

from __future__ import annotations

import json
from pathlib import Path

from servopt.calibrate.records import MeasuredRecord
from servopt.errors import DataFileError

FORMATS = ("csv", "aiperf", "vllm", "sglang", "guidellm")


def file_format(path: Path) -> str:
    """One of :data:`FORMATS`, from the name and the first JSON object."""
    name = path.name
    if name.endswith(".csv"):
        return "csv"
    if name.startswith("profile_export"):
        return "aiperf"
    if not (name.endswith(".json") or name.endswith(".jsonl")):
        raise DataFileError(path, 0, "file", "unknown format: expected .csv, .json or .jsonl")
    from servopt.calibrate.vllm_bench import looks_like_sglang, looks_like_vllm, runs

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        doc = None  # one object a line, or malformed: the line-wise read below says where
    if isinstance(doc, dict) and "benchmarks" in doc:
        return "guidellm"
    if doc is None:
        (_, doc), *_ = runs(path) or [(0, {})]
    if isinstance(doc, dict):
        if "input_config" in doc and "time_to_first_token" in doc:
            return "aiperf"
        if looks_like_sglang(doc):
            return "sglang"
        if looks_like_vllm(doc):
            return "vllm"
    raise DataFileError(
        path,
        1,
        "file",
        "is not a result file servopt reads (AIPerf export, vllm bench serve --save-result, "
        "SGLang bench_serving --output-file, GuideLLM report)",
    )


def read_results(path: Path | str, setup: dict | None = None) -> list[MeasuredRecord]:
    """The records of one measured-results file of any :data:`FORMATS`."""
    path = Path(path)
    kind = file_format(path)
    if kind == "csv":
        from servopt.calibrate.public_csv import read_measurements

        return read_measurements(path)
    if kind == "aiperf":
        from servopt.calibrate.aiperf import read_aiperf

        return read_aiperf(path, setup)
    if kind == "guidellm":
        from servopt.calibrate.guidellm import read_guidellm

        return read_guidellm(path, setup)
    from servopt.calibrate.vllm_bench import read_sglang_bench, read_vllm_bench

    return (read_sglang_bench if kind == "sglang" else read_vllm_bench)(path, setup)
