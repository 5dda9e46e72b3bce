"""The public-benchmark CSV layout (``source,model,gpu,...,notes``): its prose turned into facts.

The layout is the one of the reference collection of public measurements: numbers in columns, and a
free-text ``notes`` cell saying how to read them (the token basis of the throughput, attention data
parallelism, disaggregated worker groups, percentiles, speculative decoding, the load). This module
reads those phrases into :class:`MeasuredRecord` fields. Every phrase it relies on is a pattern
below; a row whose load or basis it cannot tell is an error naming the ``notes`` field, never a guess.
"""

from __future__ import annotations

import math
import re

from servopt.calibrate.cells import Cells
from servopt.calibrate.records import Disagg, MeasuredRecord, WorkerGroup

PUBLIC_COLUMNS: tuple[str, ...] = (
    "source", "model", "gpu", "num_gpus", "framework", "framework_version", "precision", "tp", "pp",
    "ep", "dp", "isl", "osl", "concurrency", "total_tok_s", "tok_s_per_gpu", "tok_s_per_user",
    "ttft_ms", "tpot_ms", "notes",
)  # fmt: skip

# The sources' GPU names -> servopt system names (`servopt perfdb list`).
GPU_SYSTEMS = {"H200 SXM": "h200_sxm", "H100 SXM": "h100_sxm", "B200": "b200_sxm", "GB200 NVL72": "gb200"}
# The engine inside a framework label ("Dynamo + SGLang" runs SGLang workers).
_ENGINES = (("TensorRT-LLM", "trtllm"), ("SGLang", "sglang"), ("vLLM", "vllm"))

_NUM = r"([\d,]+(?:\.\d+)?)"
_GROUP = r"{role} (\d+)x\(tp(\d+),ep(\d+),dpa=(True|False)\) = (\d+) GPUs"
_ATTENTION_DP = re.compile(
    r"dp_attention=True|enable_attention_dp|attention DP|--enable-dp-attention|dp-attention on"
)
_PERCENTILES = {
    "ttft_p50_ms": re.compile(rf"median TTFT {_NUM} ms"),
    "ttft_p90_ms": re.compile(rf"p90 TTFT {_NUM} ms"),
    "ttft_p99_ms": re.compile(rf"p99 TTFT {_NUM} ms"),
    "tpot_p50_ms": re.compile(rf"median TPOT {_NUM} ms"),
    "tpot_p90_ms": re.compile(rf"p90 TPOT {_NUM} ms"),
    "tpot_p99_ms": re.compile(rf"p99 TPOT {_NUM} ms"),
}
_NUM_REQUESTS = re.compile(
    r"(\d+) (?:synthetic )?requests|ShareGPT (\d+) prompts|num_(?:requests|prompts) = (\d+)"
)
_TOKEN_TOTALS = re.compile(r"actual tokens (\d+) in / (\d+) out|\((\d+) in / (\d+) out tokens\)")
_RATE = re.compile(r"QPS=(\d+(?:\.\d+)?)|request_rate=(\d+(?:\.\d+)?) qps|target_qps (\d+(?:\.\d+)?)")
_AT_ONCE = re.compile(r"at once|QPS=INF|request-rate inf|batch = num_(?:requests|prompts)")
_PHASE_ONLY = re.compile(r"phase-only|decode throughput per GPU")
_MAX_THROUGHPUT = re.compile(r"max throughput|max-throughput|scenario Offline")
_DATASET = re.compile(r"ShareGPT|OpenOrca|real dataset|ISL/OSL of dataset not stated")
_RANGE_RATIO = re.compile(r"range_ratio (\d+(?:\.\d+)?)")
_NEXTN = re.compile(r"MTP nextn=(\d+)")
_OUT_PER_GPU = re.compile(rf"output tok/s per GPU {_NUM}")
_OUT_PER_DECODE_GPU = re.compile(rf"output tok/s per decode GPU {_NUM}")
_IN_PER_PREFILL_GPU = re.compile(rf"input tok/s per prefill GPU {_NUM}")
_OUT_SYSTEM = re.compile(rf"output tput {_NUM} tok/s")
# The large-scale-EP blog reports per node; its nodes are stated as "N nodes x M H100" or "(M GPUs)".
_PER_NODE_PREFILL = re.compile(rf"per-node prefill throughput {_NUM} tokens/s")
_PER_NODE_DECODE = re.compile(rf"{_NUM} (?:output )?tokens/s per node")
_GPUS_PER_NODE = re.compile(r"nodes x (\d+) H\d+|\((\d+) GPUs\)")
_VERSION = re.compile(r"v?\d+(?:\.\d+)+\S*")


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _first(pattern: re.Pattern, notes: str) -> str | None:
    m = pattern.search(notes)
    return None if m is None else next(g for g in m.groups() if g is not None)


def _engine(cells: Cells) -> str:
    label = cells.text("framework", required=True)
    for name, backend in _ENGINES:
        if name in label:
            return backend
    raise cells.error("framework", "names no engine (TensorRT-LLM, SGLang or vLLM)", label)


def _version(text: str | None) -> str | None:
    """The engine version as stated; None where the source does not state one."""
    if text is None or text.startswith("unstated") or "version not read" in text:
        return None
    m = _VERSION.match(text)
    return m.group(0) if m else text


def _weights(precision: str) -> str | None:
    lowered = precision.lower()
    for prefix in ("mxfp4", "fp8", "fp4", "bf16"):
        if lowered.startswith(prefix):
            return prefix
    return None


def _kv_cache(precision: str) -> str | None:
    m = re.search(r"(FP8|FP16) KV", precision)
    return m.group(1).lower() if m else None


def _group(notes: str, role: str) -> WorkerGroup | None:
    m = re.search(_GROUP.format(role=role), notes)
    if m is None:
        return None
    count, tp, ep, dpa, gpus = m.groups()
    return WorkerGroup(int(count), int(tp), int(ep), dpa == "True", int(gpus))


def _load(cells: Cells, notes: str, concurrency: int | None, rate: float | None) -> str:
    # Order matters: a burst row may also state a (meaningless) batch; a closed loop states no rate.
    if _PHASE_ONLY.search(notes):
        return "phase_only"
    if _AT_ONCE.search(notes):
        return "burst"
    if concurrency is not None:
        return "closed_loop"
    if rate is not None:
        return "open_loop"
    if _MAX_THROUGHPUT.search(notes):
        return "max_throughput"
    raise cells.error("notes", "states no load (concurrency, request rate, at once or max throughput)")


def _spec(notes: str) -> str:
    if "spec=mtp" in notes or "MTP" in notes.replace("no MTP", ""):
        return "mtp"
    if "EAGLE" in notes:
        return "eagle"
    return "none"


def _basis(cells: Cells, notes: str) -> str:
    if notes.startswith("basis=output") or notes.startswith("basis=MLPerf"):
        # MLPerf's LLM "tokens per second" counts generated tokens (output basis).
        return "output"
    if notes.startswith("basis=input+output"):
        return "input+output"
    if cells.number("total_tok_s") is None and cells.number("tok_s_per_gpu") is None:
        return "none"
    raise cells.error(
        "notes", "must start with basis=output or basis=input+output when a throughput is given"
    )


def _worker_gpus(source: str, notes: str, num_gpus: int | None, tp: int | None, ep: int | None):
    """The deployment's GPU count, where a source's stated count is known to be something else.

    InferenceX's aggregated rows state tp * ep GPUs (64 for tp8 ep8), but their per-GPU output
    throughput is over tp GPUs: conc x per-user tok/s / per-GPU output = tp (x1.0-1.1, TTFT time) on
    every one of them. One worker of tp GPUs is what ran.
    """
    if "InferenceX" in source and "aggregated" in notes and tp and ep and num_gpus == tp * ep:
        return tp
    return num_gpus


def record_from_public_row(cells: Cells) -> MeasuredRecord:
    """One row of the public layout as a record (see the module docstring)."""
    notes = cells.text("notes") or ""
    source = cells.text("source", required=True)
    gpu = cells.text("gpu", required=True)
    framework = cells.text("framework", required=True)
    precision = cells.text("precision", required=True)
    tp = cells.integer("tp")
    ep_text = cells.text("ep")
    # "on (=tp)": vLLM's --enable-expert-parallel, whose expert-parallel width is the TP width.
    ep = tp if ep_text and ep_text.startswith("on") else cells.integer("ep")
    num_gpus = _worker_gpus(source, notes, cells.integer("num_gpus"), tp, ep)
    isl, osl = cells.integer("isl"), cells.integer("osl")
    concurrency = cells.integer("concurrency")
    total, per_gpu = cells.number("total_tok_s"), cells.number("tok_s_per_gpu")

    prefill, decode = _group(notes, "prefill"), _group(notes, "decode")
    disagg = Disagg(prefill, decode) if prefill or decode or "disagg" in framework else None
    attention_dp = decode.attention_dp if decode else bool(_ATTENTION_DP.search(notes))

    rate_text = _first(_RATE, notes)
    rate = math.inf if _AT_ONCE.search(notes) else (float(rate_text) if rate_text else None)
    load = _load(cells, notes, concurrency, rate)

    requests_text = _first(_NUM_REQUESTS, notes)
    totals = _TOKEN_TOTALS.search(notes)
    tokens = [int(g) for g in totals.groups() if g is not None] if totals else [None, None]
    ratio_text = _first(_RANGE_RATIO, notes)
    if ratio_text is not None and float(ratio_text) < 1.0:
        lengths, range_ratio = "random", float(ratio_text)
    elif _DATASET.search(notes) or isl is None or osl is None:
        lengths, range_ratio = "dataset", None
    else:
        lengths, range_ratio = "fixed", None

    ttft, tpot = cells.number("ttft_ms"), cells.number("tpot_ms")
    stat = None
    if ttft is not None or tpot is not None:
        stat = "median" if "columns = MEDIAN" in notes else "mean"
    pct = {k: (_number(v) if (v := _first(p, notes)) else None) for k, p in _PERCENTILES.items()}
    if stat == "median":
        pct["ttft_p50_ms"] = pct["ttft_p50_ms"] or ttft
        pct["tpot_p50_ms"] = pct["tpot_p50_ms"] or tpot

    basis = _basis(cells, notes)
    out = _output_throughput(notes, basis, num_gpus, decode, lengths, isl, osl, total, per_gpu)
    nextn = _first(_NEXTN, notes)
    return MeasuredRecord(
        source=source,
        model=cells.text("model", required=True),
        gpu=gpu,
        system=GPU_SYSTEMS.get(gpu),
        num_gpus=num_gpus,
        framework=framework,
        backend=_engine(cells),
        framework_version=cells.text("framework_version"),
        # Dynamo's TensorRT-LLM runtime images are versioned by Dynamo, not by the engine.
        backend_version=None
        if "image nvcr.io/nvidia/ai-dynamo/" in notes
        else _version(cells.text("framework_version")),
        precision=precision,
        weights=_weights(precision),
        kv_cache=_kv_cache(precision),
        tp=tp,
        pp=cells.integer("pp"),
        ep=ep,
        dp=cells.integer("dp"),
        attention_dp=attention_dp,
        disagg=disagg,
        isl=isl,
        osl=osl,
        lengths=lengths,
        range_ratio=range_ratio,
        num_requests=int(requests_text) if requests_text else None,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        concurrency=concurrency,
        request_rate=rate,
        load=load,
        spec=_spec(notes),
        spec_nextn=int(nextn) if nextn else None,
        ttft_ms=ttft,
        tpot_ms=tpot,
        latency_stat=stat,
        **pct,
        basis=basis,
        total_tok_s=total,
        tok_s_per_gpu=per_gpu,
        tok_s_per_user=cells.number("tok_s_per_user"),
        **out,
        row=cells.line,
    )


def _output_throughput(notes, basis, num_gpus, decode, lengths, isl, osl, total, per_gpu) -> dict:
    """Output-token throughput (system, per GPU, per decode GPU) and prefill input tok/s per GPU.

    Only exact conversions: a figure the source states on the output basis, a product or quotient
    of stated counts, or, for fixed request lengths, the output share ``osl / (isl + osl)`` of an
    input+output figure. Anything else stays None.
    """
    per_decode = _first(_OUT_PER_DECODE_GPU, notes)
    per_prefill = _first(_IN_PER_PREFILL_GPU, notes)
    out = {
        "output_tok_s": None,
        "output_tok_s_per_gpu": None,
        "output_tok_s_per_decode_gpu": _number(per_decode) if per_decode else None,
        "input_tok_s_per_prefill_gpu": _number(per_prefill) if per_prefill else None,
    }
    per_node = _GPUS_PER_NODE.search(notes)
    node_gpus = int(next(g for g in per_node.groups() if g)) if per_node else None
    if node_gpus and (v := _first(_PER_NODE_PREFILL, notes)):
        out["input_tok_s_per_prefill_gpu"] = _number(v) / node_gpus
    elif node_gpus and (v := _first(_PER_NODE_DECODE, notes)):
        out["output_tok_s_per_decode_gpu"] = _number(v) / node_gpus
    if "decode throughput per GPU" in notes:
        # A decode-only figure: per decode GPU, the deployment's prefill GPUs are not counted.
        out["output_tok_s_per_decode_gpu"] = per_gpu
        return out

    system = gpu_figure = None
    if basis == "output":
        system, gpu_figure = total, per_gpu
    elif (v := _first(_OUT_PER_GPU, notes)) is not None:
        gpu_figure = _number(v)
    elif (v := _first(_OUT_SYSTEM, notes)) is not None:
        system = _number(v)
    elif per_decode is not None and decode is not None:
        system = _number(per_decode) * decode.gpus
    elif basis == "input+output" and lengths == "fixed" and total is not None:
        system = total * osl / (isl + osl)
    if system is None and gpu_figure is not None and num_gpus:
        system = gpu_figure * num_gpus
    if gpu_figure is None and system is not None and num_gpus:
        gpu_figure = system / num_gpus
    out["output_tok_s"], out["output_tok_s_per_gpu"] = system, gpu_figure
    return out
