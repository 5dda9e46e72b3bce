"""One measured serving result as structured facts: :class:`MeasuredRecord`.

A record says what was run (model, GPUs, engine, layout, request shape, load) and what was measured,
with the throughput always on an OUTPUT-token basis (``output_tok_s*``): sources that report
input+output tokens are converted only where the conversion is exact, else the field is None. The
figure as the source gave it is kept beside it (``total_tok_s``, ``tok_s_per_gpu`` on ``basis``), so
nothing is lost and the two bases are never mixed.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKENDS: tuple[str, ...] = ("trtllm", "vllm", "sglang")
# closed_loop: N clients, each sends its next request when its last one ends (InferenceX conc,
#   `vllm bench serve --max-concurrency`, trtllm-bench --concurrency);
# max_throughput: every request queued at once with no latency limit (trtllm-bench throughput,
#   MLPerf Offline), thousands of requests, steady state at the engine's max batch;
# burst: all requests submitted at t=0 (GPUStack request-rate inf, offline batches): TTFT is queueing;
# open_loop: arrivals at a stated request rate (MLPerf Server, QPS sweeps), see ``request_rate``;
# phase_only: a prefill-only or decode-only measurement of a disaggregated deployment.
LOADS: tuple[str, ...] = ("closed_loop", "max_throughput", "burst", "open_loop", "phase_only")
SPECS: tuple[str, ...] = ("none", "mtp", "eagle")
# The token basis of ``total_tok_s`` / ``tok_s_per_gpu`` as the source reported them.
BASES: tuple[str, ...] = ("output", "input+output", "none")
# Whether ``ttft_ms`` / ``tpot_ms`` are means or medians over requests.
LATENCY_STATS: tuple[str, ...] = ("mean", "median")
# How request lengths were drawn: fixed isl/osl; random, uniform in [range_ratio * isl, isl] (SGLang
# bench_serving's --random-range-ratio); or a dataset (ShareGPT, OpenOrca) whose mean lengths come
# from the run's token totals where stated.
LENGTHS: tuple[str, ...] = ("fixed", "random", "dataset")


# Short names of the public sources (a substring of ``source`` -> the name), for per-source tables
# and leave-one-source-out splits. One benchmark campaign = one source, whatever file it sits in.
SOURCE_NAMES: tuple[tuple[str, str], ...] = (
    ("InferenceX", "InferenceX"),
    ("Best_perf_practice_on_DeepSeek-R1", "TRT-LLM DeepSeek-R1 blog"),
    ("perf-overview.md", "TRT-LLM perf overview"),
    ("dstackai/benchmarks@deepseek-r1-benchmark", "dstack DeepSeek-R1 8xH200"),
    ("dstackai/benchmarks comparison", "dstack Llama-405B 8xH100"),
    ("gpustack/gpustack", "GPUStack performance lab"),
    ("mlcommons/inference_results", "MLPerf Inference v4.1"),
    ("lm-sys/", "LMSYS blog"),
)


@dataclass(frozen=True)
class WorkerGroup:
    """``count`` identical workers of a disaggregated deployment, ``gpus`` in all."""

    count: int
    tp: int
    ep: int
    attention_dp: bool
    gpus: int


@dataclass(frozen=True)
class Disagg:
    """Prefill and decode worker groups; None inside where the source does not say."""

    prefill: WorkerGroup | None
    decode: WorkerGroup | None


@dataclass(frozen=True)
class MeasuredRecord:
    source: str
    model: str  # as the source names it
    gpu: str  # as the source names it
    system: str | None  # servopt system name (h200_sxm, ...), None for a GPU servopt lacks
    num_gpus: int | None
    framework: str  # as the source names it, e.g. "Dynamo + SGLang"
    backend: str  # trtllm | vllm | sglang: the engine that ran the model
    framework_version: str | None  # verbatim, e.g. "v1.0 (doc: NEW for v1.0)"
    # The engine's version from it ("v1.0"); None when unstated or when the stated version is a
    # wrapper's (Dynamo's runtime image version on its TensorRT-LLM rows).
    backend_version: str | None
    precision: str  # as stated
    weights: str | None  # fp8 | fp4 | mxfp4 | bf16, None when not stated
    kv_cache: str | None  # fp8 | fp16 where the source states it, else None (engine default)
    tp: int | None
    pp: int | None
    ep: int | None
    dp: int | None
    attention_dp: bool
    disagg: Disagg | None  # None: aggregated serving
    isl: int | None
    osl: int | None
    lengths: str  # LENGTHS
    range_ratio: float | None  # lengths == "random" only
    num_requests: int | None
    input_tokens: int | None  # totals over the run, where stated (dataset lengths)
    output_tokens: int | None
    concurrency: int | None  # closed-loop clients (or the offline batch), where stated
    request_rate: float | None  # requests/s of an open-loop load; inf for "all at once"
    load: str  # LOADS
    spec: str  # SPECS
    spec_nextn: int | None
    ttft_ms: float | None
    tpot_ms: float | None
    latency_stat: str | None  # LATENCY_STATS, None when neither is given
    ttft_p50_ms: float | None
    ttft_p90_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    tpot_p90_ms: float | None
    tpot_p99_ms: float | None
    basis: str  # BASES, of total_tok_s / tok_s_per_gpu
    total_tok_s: float | None  # whole system, as reported, on ``basis``
    tok_s_per_gpu: float | None  # as reported, on ``basis``
    tok_s_per_user: float | None  # output tokens/s seen by one user, as reported
    output_tok_s: float | None  # whole system, output tokens
    output_tok_s_per_gpu: float | None  # output tokens over every GPU of the deployment
    output_tok_s_per_decode_gpu: float | None  # disaggregated: over the decode GPUs only
    input_tok_s_per_prefill_gpu: float | None  # disaggregated: prefill GPUs' input tokens
    row: int  # line number in the file it was read from (header = 1)

    @property
    def source_name(self) -> str:
        """The source's short name (:data:`SOURCE_NAMES`), else the source as given."""
        return next((name for key, name in SOURCE_NAMES if key in self.source), self.source)

    @property
    def mean_isl(self) -> float | None:
        """The mean input length: measured totals first, else what the length rule implies."""
        return _mean_length(self.isl, self.input_tokens, self.num_requests, self.range_ratio)

    @property
    def mean_osl(self) -> float | None:
        return _mean_length(self.osl, self.output_tokens, self.num_requests, self.range_ratio)


def _mean_length(stated: int | None, total: int | None, requests: int | None, ratio: float | None):
    if total and requests:
        return total / requests
    if stated is None:
        return None
    # Uniform integers in [ratio * stated, stated]: the midpoint.
    return stated * (1.0 + ratio) / 2.0 if ratio is not None else float(stated)
