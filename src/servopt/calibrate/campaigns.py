"""Engine settings a benchmark campaign's own launch scripts state: :class:`StatedEngine`.

A record says what was run; the campaign's scripts say how the engine was launched. Where they set
flags away from the engine defaults (``servopt.simulate.policy``), the replay must use them: they
are the stated settings of the run, not assumptions. One table entry per campaign script, cited by
repository, path and commit; anything a script does not set stays the engine default.

InferenceX (SemiAnalysis; rows ``DeepSeek-R1-0528`` on 8 B200, SGLang and TensorRT-LLM) launches
every run through ``benchmarks/<model>_<precision>_<gpu>[_trt].sh`` of SemiAnalysisAI/InferenceX.
The versions read (the stored copies; their dates are not recorded, so one version per script
stands for the whole Nov 2025 - May 2026 history, and the values below are those every version read
agrees on unless said otherwise):

- ``benchmarks/dsr1_fp8_b200.sh`` @1fc5d73 (SGLang, FP8): tp8: ``--scheduler-recv-interval`` 30 at
  >= 16 clients else 10, ``--max-running-requests 128``, ``--chunked-prefill-size 32768``
  (``--max-prefill-tokens 32768``), ``--mem-fraction-static 0.82``; tp4 (8k/1k only): interval 10,
  max running 32, chunk 8192, mem fraction 0.95; both ``--kv-cache-dtype fp8_e4m3``,
  ``--disable-radix-cache``, ``--stream-interval 30``, ``--cuda-graph-max-bs`` = max running.
- ``benchmarks/dsr1_fp4_b200.sh`` @1fc5d73 and ``dsr1_fp4_b200_docker.sh`` @2e46dba (SGLang, FP4):
  interval 30 at >= 16 clients else 10, ``--max-running-requests 256``, ``--chunked-prefill-size
  16384``, ``--mem-fraction-static 0.85``, ``--kv-cache-dtype fp8_e4m3``, ``--disable-radix-cache``,
  ``--stream-interval 10``.
- ``benchmarks/dsr1_fp8_b200_trt.sh`` @6320e9b and @0a919c5, ``dsr1_fp4_b200_trt.sh`` @6320e9b and
  @111f031 (TensorRT-LLM, PyTorch backend): ``kv_cache_config.dtype: fp8``,
  ``free_gpu_memory_fraction`` 0.8 (@0a919c5: 0.7 for 1k/1k and 1k/8k at CONC >= 256, 0.75 for
  8k/1k at TP 4; the replay sizes the KV cache with it: ``WorkerPlan.kv_fraction``),
  ``enable_block_reuse: false``, ``stream_interval: 10``, ``--max_num_tokens`` =
  ``(CONC + ISL + 64 + 63) // 64 * 64`` (@0a919c5 and @111f031 raise it to at least 8192, @6320e9b
  does not), no ``max_batch_size`` (default 2048), no chunked context (default off);
  ``enable_attention_dp`` as the row states, and with it ``attention_dp_config: {batching_wait_iters:
  0, enable_balance: true, timeout_iters: 60}`` (the replay runs TRT-LLM's balancing with that
  timeout: ``SchedulerPolicy.adp_balance_timeout_iters``); FP8 1k/1k at 64 <= CONC < 256 in
  @0a919c5 only (``DELAY_BATCHING``), ``batch_wait_timeout_iters: 40`` and
  ``batch_wait_max_tokens_ratio: 0.8`` (``SchedulerPolicy.batch_wait_*``; TRT-LLM, and the
  simulator, apply them only without attention DP). ``moe_config.backend``: FP8 @0a919c5
  ``TRTLLM`` below 256 clients (``DEEPGEMM`` at >= 256 for 1k/1k and 1k/8k), @6320e9b ``DEEPGEMM``
  always; FP4 @111f031 ``TRTLLM`` (``CUTLASS`` at >= 256 clients, > 32 for 8k/1k).
- bench (``benchmark_lib.sh`` ``run_benchmark_serving``): bench_serving, random dataset,
  ``--random-range-ratio``, ``--num-prompts`` 10 x CONC, ``--max-concurrency`` CONC (already in
  ``servopt.calibrate.replay``).

TRT-LLM's perf overview (trtllm-bench ``throughput`` max-throughput tables; ``PERF_OVERVIEW_DOCS``):
the KV dtype of the FP8 rows (v0.17: the engines were built with ``--quantization FP8``, which sets
an FP8 KV cache; v0.20 on: the PyTorch backend keeps the ModelOpt checkpoint's FP8 KV) and the
DeepSeek R1 ``llm_options`` of the developer guide (``kv_cache_config.dtype: fp8``, ADP balancing
with ``timeout_iters: 60``). Stated but not replayed: ``--kv_cache_free_gpu_mem_fraction 0.95``
("in majority of cases", 0.90 where that ran out of memory; which rows is not said; replayed, the
max-throughput error was no better: median |error| 7.1% -> 7.3%), and trtllm-bench's own max batch /
max tokens (``tensorrt_llm/bench/build/tuning.py`` ``calc_engine_setting``: batch from its KV
estimate at ISL + OSL per request, tokens = batch x (1 + ISL/OSL); no better either, and wrong for
MLA models, whose KV it prices per KV head).

The MoE backend: the replay takes @0a919c5's, like its other settings above. Where it is TRTLLM
on fp8_block, TRT-LLM's own B200 table has DeepGEMM's kernel only; the replay prices the MoE from
the TRT-LLM-gen rows measured through FlashInfer in SGLang 0.5.14 (``servopt.perf_db.moe_kernel``;
``docs/reality.md``, "What the mean-field model cannot explain"). FP4's is not carried: its nvfp4
table already serves TRT-LLM-gen's min-latency rows at these loads.

Not used by the replay: SGLang's memory fractions (servopt's memory model sets its KV budget by its own rules),
the CUDA-graph batch caps (decode above the cap runs without graphs: not modelled) and the stream
intervals: both engines send the first token at once (SGLang streams when
``len(req.output_ids) == 1``; TRT-LLM's ``PyExecutor`` when ``py_decoding_iter == 1``), so TTFT as
bench_serving measures it does not change, and its TPOT ((latency - TTFT) / (tokens - 1)) neither.

InferenceX's disaggregated rows (Dynamo + SGLang, Dynamo + TensorRT-LLM; xPyD on gb200, b200_sxm,
h100_sxm) are launched by other scripts:

- ``benchmarks/dsr1_fp4_gb200_dynamo-trt_slurm.sh`` @15eda16 (and its ``dsr1_fp8_*`` / h100 / b200
  siblings): Dynamo's ``performance_sweeps`` ``benchmark_disagg.slurm`` with each run's
  ``PREFILL_MAX_NUM_TOKENS``, ``PREFILL_MAX_BATCH_SIZE``, ``DECODE_MAX_NUM_TOKENS``,
  ``DECODE_MAX_BATCH_SIZE``, ``DECODE_GPU_MEM_FRACTION``, the ``additional-settings`` of its entry
  in ``.github/configs/nvidia-master.yaml`` (1,539 stored versions; a row, an API snapshot, names
  no entry or version). In the version read, @0004cf5, the B200 ``dsr1-fp{4,8}-b200-dynamo-trt``
  entries name an srt-slurm recipe per (isl/osl, prefill workers x tp/ep/attention DP, decode
  workers x tp/ep/attention DP, client counts), ``ctx<x>_gen<y>_<dep|tep|tp><n>_batch<B>_...``:
  ``B`` is the decode workers' ``max_batch_size`` (per attention-DP rank with DEP, TRT-LLM's
  scheduler being per rank). A B200 TRT-LLM row whose layouts, lengths and clients match an entry
  exactly gets that decode batch cap (:data:`B200_DYNAMO_TRT_DECODE_BATCH`, 11 of its 14 priced
  rows); the prefill recipe values are not in the names, and the GB200 / H100 entries were not read
  per row (their older versions carry the values as ``DECODE_MAX_BATCH_SIZE=..``);
- ``benchmarks/dsr1_fp8_gb200_dynamo-sglang_slurm.sh`` @07f4af9 (and ``dsr1_fp4_*``): a Dynamo
  fork's ``submit_disagg.sh``; its flags live in that fork's job script, later in srt-slurm recipes
  (``.github/configs/srt-recipes/recipes/gb200-fp8/1k1k/pp8.yaml`` @01776ac), neither per row.
- bench: the same ``benchmark_lib.sh`` client as the agg rows (bench_serving, range ratio 0.8,
  10 x CONC requests).

Everything else of a disaggregated replay (both pools' token budgets, the prefill batch, memory
fractions, the KV-cache dtype: the checkpoint default) is the engine default, an assumption every
such setup carries (``disagg_note``).
"""

from __future__ import annotations

from dataclasses import dataclass

from servopt.calibrate.records import MeasuredRecord

INFERENCEX_REPO = "SemiAnalysisAI/InferenceX"


@dataclass(frozen=True)
class StatedEngine:
    """Engine settings a campaign script states for one run; None = not stated (engine default)."""

    script: str  # "repo path @commit" of the script(s) the values come from
    kv_cache: str | None = None  # KV-cache dtype (servopt quant name)
    recv_interval: int | None = None  # SGLang --scheduler-recv-interval
    max_batch_size: int | None = None  # SGLang --max-running-requests, TRT max_batch_size
    max_num_tokens: int | None = None  # SGLang --chunked-prefill-size, TRT --max_num_tokens
    adp_balance_timeout_iters: int | None = None  # TRT attention_dp_config.timeout_iters (balance on)
    batch_wait_timeout_iters: int | None = None  # TRT batch_wait_timeout_iters
    batch_wait_max_tokens_ratio: float | None = None  # TRT batch_wait_max_tokens_ratio
    kv_fraction: float | None = None  # TRT kv_cache_config.free_gpu_memory_fraction
    moe_backend: str | None = None  # TRT moe_config.backend (servopt.perf_db.moe_kernel prices it)

    def policy_overrides(self) -> dict[str, int | float | None]:
        """The ``SchedulerPolicy.with_overrides`` arguments (None leaves the default)."""
        return {
            "recv_interval": self.recv_interval,
            "max_batch_size": self.max_batch_size,
            "max_num_tokens": self.max_num_tokens,
            "adp_balance_timeout_iters": self.adp_balance_timeout_iters,
            "batch_wait_timeout_iters": self.batch_wait_timeout_iters,
            "batch_wait_max_tokens_ratio": self.batch_wait_max_tokens_ratio,
        }

    @property
    def note(self) -> str:
        values = {
            "kv": self.kv_cache,
            **self.policy_overrides(),
            "kv_fraction": self.kv_fraction,
            "moe_backend": self.moe_backend,
        }
        stated = " ".join(f"{k}={v}" for k, v in values.items() if v is not None)
        return f"engine flags stated by {self.script}: {stated}"


def _sglang_recv_interval(conc: int) -> int:
    # "recv every ~10 requests; if CONC >= 16, relax to ~30" (both SGLang DeepSeek-R1 B200 scripts).
    return 30 if conc >= 16 else 10


def _sglang_fp8_b200(tp: int, conc: int, isl: int, osl: int, adp: bool) -> StatedEngine | None:
    script = f"{INFERENCEX_REPO} benchmarks/dsr1_fp8_b200.sh @1fc5d73"
    if tp == 8:
        return StatedEngine(script, "fp8", _sglang_recv_interval(conc), 128, 32768)
    if tp == 4:
        return StatedEngine(script, "fp8", 10, 32, 8192)
    return None


def _sglang_fp4_b200(tp: int, conc: int, isl: int, osl: int, adp: bool) -> StatedEngine | None:
    script = f"{INFERENCEX_REPO} benchmarks/dsr1_fp4_b200.sh @1fc5d73 (= _docker.sh @2e46dba)"
    return StatedEngine(script, "fp8", _sglang_recv_interval(conc), 256, 16384)


def _trtllm_b200(script: str, fp8: bool):
    def stated(tp: int, conc: int, isl: int, osl: int, adp: bool) -> StatedEngine:
        # MAX_NUM_TOKENS=$(( (CONC+ISL+64+63)/64*64 )), at least 8192 in the later versions.
        tokens = max((conc + isl + 64 + 63) // 64 * 64, 8192)
        # With DP_ATTENTION=true: attention_dp_config {enable_balance: true, timeout_iters: 60}.
        timeout = 60 if adp else None
        wait_iters, wait_ratio, fraction = None, None, 0.8  # KV_CACHE_FREE_MEM_FRACTION=0.8
        moe_backend = None
        if fp8:
            # MOE_BACKEND: TRTLLM, DEEPGEMM for 1k/1k and 1k/8k at CONC >= 256.
            short_input = (isl, osl) in ((1024, 1024), (1024, 8192))
            moe_backend = "DEEPGEMM" if short_input and conc >= 256 else "TRTLLM"
            # dsr1_fp8_b200_trt.sh @0a919c5: 1k/1k at 64 <= CONC < 256 sets DELAY_BATCHING
            # (batch_wait_timeout_iters: 40, batch_wait_max_tokens_ratio: 0.8; whatever DP_ATTENTION,
            # TRT-LLM ignores them with attention DP); fraction 0.7 for 1k/1k and 1k/8k at CONC >= 256,
            # 0.75 for 8k/1k at TP 4.
            if (isl, osl) == (1024, 1024) and 64 <= conc < 256:
                wait_iters, wait_ratio = 40, 0.8
            if (isl, osl) in ((1024, 1024), (1024, 8192)) and conc >= 256:
                fraction = 0.7
            if (isl, osl) == (8192, 1024) and tp == 4:
                fraction = 0.75
        return StatedEngine(
            f"{INFERENCEX_REPO} {script}",
            "fp8",
            None,
            None,
            tokens,
            timeout,
            wait_iters,
            wait_ratio,
            fraction,
            moe_backend,
        )

    return stated


# (source, backend, weights, system) -> the script's settings as a function of (tp, clients, isl,
# osl, attention DP on).
SCRIPTS = {
    ("InferenceX", "sglang", "fp8", "b200_sxm"): _sglang_fp8_b200,
    ("InferenceX", "sglang", "fp4", "b200_sxm"): _sglang_fp4_b200,
    ("InferenceX", "trtllm", "fp8", "b200_sxm"): _trtllm_b200(
        "benchmarks/dsr1_fp8_b200_trt.sh @0a919c5", True
    ),
    ("InferenceX", "trtllm", "fp4", "b200_sxm"): _trtllm_b200(
        "benchmarks/dsr1_fp4_b200_trt.sh @111f031", False
    ),
}
# The models those scripts serve (their MODEL), by the records' base model name.
SCRIPT_MODELS = ("DeepSeek-R1", "DeepSeek-R1-0528")


# One worker group of an InferenceX disaggregated entry: (workers, tp, ep, attention DP).
Group = tuple[int, int, int, bool]
_P_DEP4, _P_DEP8 = (1, 4, 4, True), (1, 8, 8, True)
# (weights, isl, osl, prefill group, decode group) -> ((clients, ...), decode max_batch_size), the
# non-MTP entries of nvidia-master.yaml @0004cf5 (recipe ``..._batch<B>_...`` of each).
B200_DYNAMO_TRT_DECODE_BATCH: dict[tuple[str, int, int, Group, Group], tuple[tuple[int, ...], int]] = {
    ("fp4", 1024, 1024, _P_DEP4, (1, 8, 8, True)): ((4096,), 512),
    ("fp4", 1024, 1024, _P_DEP4, (2, 8, 8, True)): ((2192,), 128),
    ("fp4", 1024, 1024, _P_DEP4, (5, 8, 8, True)): ((1365,), 32),
    ("fp4", 1024, 1024, _P_DEP4, (6, 8, 8, False)): ((450,), 64),
    ("fp4", 8192, 1024, (2, 4, 4, True), (5, 8, 8, False)): ((370,), 64),
    ("fp4", 8192, 1024, (4, 4, 4, True), (1, 8, 8, True)): ((1606,), 192),
    ("fp4", 8192, 1024, (4, 4, 4, True), (3, 8, 8, True)): ((837,), 32),
    ("fp4", 8192, 1024, (7, 4, 4, True), (2, 8, 8, True)): ((2222,), 128),
    ("fp8", 1024, 1024, _P_DEP8, (3, 8, 1, False)): ((4, 32, 128), 1024),
    ("fp8", 1024, 1024, _P_DEP8, (5, 8, 8, True)): ((1920,), 48),
    ("fp8", 1024, 1024, _P_DEP8, (1, 8, 8, True)): ((4096,), 512),
    ("fp8", 1024, 1024, (2, 8, 8, True), (5, 8, 8, True)): ((5152,), 128),
    ("fp8", 8192, 1024, _P_DEP8, (1, 8, 1, False)): ((1,), 1),
    ("fp8", 8192, 1024, _P_DEP8, (4, 8, 1, False)): ((32, 128), 32),
    ("fp8", 8192, 1024, _P_DEP8, (6, 8, 1, False)): ((96,), 16),
    ("fp8", 8192, 1024, _P_DEP8, (2, 8, 8, True)): ((128,), 64),
    ("fp8", 8192, 1024, (2, 8, 8, True), (1, 8, 8, True)): ((640,), 640),
}
# Two entries share a layout at different client counts: the TEP8 decode of the fp4 runs (batch 1
# at 6 clients, 32 / 8 above) and the fp8 8k/1k DEP8 1P1D (batch 128 at 128 clients, 256 at 256).
_SHARED_LAYOUTS = {
    ("fp4", 1024, 1024, _P_DEP4, (5, 8, 8, False)): {6: 1, **dict.fromkeys((10, 15, 25, 45, 90, 180), 32)},
    ("fp4", 8192, 1024, _P_DEP4, (5, 8, 8, False)): {6: 1, **dict.fromkeys((10, 15, 25, 50, 100), 8)},
    ("fp8", 8192, 1024, _P_DEP8, (1, 8, 8, True)): {128: 128, 256: 256},
}
NVIDIA_MASTER = f"{INFERENCEX_REPO} .github/configs/nvidia-master.yaml @0004cf5"


def _group(g) -> Group | None:
    return None if g is None else (g.count, g.tp, g.ep, g.attention_dp)


def stated_disagg(record: MeasuredRecord, model_name: str) -> StatedEngine | None:
    """The decode workers' settings an InferenceX disaggregated entry states for the record (its
    layouts, lengths and clients all match the entry), or None (engine defaults)."""
    if (record.source_name, record.backend, record.system) != ("InferenceX", "trtllm", "b200_sxm"):
        return None
    if model_name not in SCRIPT_MODELS or record.disagg is None:
        return None
    key = (
        record.weights,
        record.isl,
        record.osl,
        _group(record.disagg.prefill),
        _group(record.disagg.decode),
    )
    batch = _SHARED_LAYOUTS.get(key, {}).get(record.concurrency)
    if batch is None and key in B200_DYNAMO_TRT_DECODE_BATCH:
        clients, cap = B200_DYNAMO_TRT_DECODE_BATCH[key]
        batch = cap if record.concurrency in clients else None
    if batch is None:
        return None
    return StatedEngine(f"{NVIDIA_MASTER} (decode workers)", max_batch_size=batch)


def disagg_note(record: MeasuredRecord, stated: StatedEngine | None) -> str:
    """The assumption a disaggregated record's replay makes about its engine flags."""
    backend = "dynamo-trt" if record.backend == "trtllm" else f"dynamo-{record.backend}"
    if stated is not None:
        return (
            f"disagg {record.framework}: decode max batch {stated.max_batch_size} stated by {stated.script}; "
            "every other flag of both pools: engine defaults"
        )
    return (
        f"disagg {record.framework}: per-run flags (max batch / tokens, memory fraction) of "
        f"{INFERENCEX_REPO}'s {backend} launches not matched to the row: engine defaults for both pools"
    )


# TRT-LLM's perf overview (trtllm-bench ``throughput``): the run settings each version of the doc
# states for its max-throughput tables, by the version's citation in the record's source.
PERF_OVERVIEW = "TRT-LLM perf overview"
# trtllm-bench runs the PyTorch backend with ``kv_cache_config.dtype: auto`` unless the options file
# sets one (``tensorrt_llm/bench/benchmark/utils/general.py`` ``get_settings``, as read in
# dominicshanshan/TensorRT-LLM @5c927123 and NVIDIA/TensorRT-LLM @0171265e): the KV cache takes the
# checkpoint's ``kv_cache_quant_algo``. The FP8 checkpoints these docs list are NVIDIA's ModelOpt
# exports, whose export script quantizes the KV cache to FP8 unless told not to
# (NVIDIA/TensorRT-Model-Optimizer ``examples/llm_ptq/hf_ptq.py`` @42bb0236: ``--kv_cache_qformat``
# default ``fp8``); NVIDIA/TensorRT-LLM issue #4329 names nvidia/Llama-3.1-8B-Instruct-FP8 as a model
# with a quantized KV cache; and nvidia/Llama-3.1-70B-Instruct-FP8's ``hf_quant_config.json`` (a copy
# ships in aiconfigurator-core's ``model_configs/``; ModelOpt 0.23.0) reads ``"kv_cache_quant_algo":
# "FP8"``. The other checkpoints' files were not read here: the same export, assumed alike.
MODELOPT_FP8_KV = "fp8 KV of the ModelOpt FP8 checkpoint (trtllm-bench kv dtype auto; hf_ptq.py default fp8)"
# FP8 rows whose checkpoint is not an NVIDIA ModelOpt export (DeepSeek's own FP8 release; gpt-oss's
# one MXFP4 release, whose KV ``servopt.calibrate.setups`` sets from the doc's llm_options).
NOT_MODELOPT = ("DeepSeek-R1-0528", "gpt-oss-20b", "gpt-oss-120b")


@dataclass(frozen=True)
class PerfOverviewDoc:
    """What one version of the perf overview states about how its throughput runs were set up."""

    cite: str  # repository, path and commit of the version
    # How an FP8 row's KV dtype was set: "build" (the engine was built with ``trtllm-bench build
    # --quantization FP8``: "If you specify FP8 quantization, the KV cache will automatically be set
    # to FP8 as well!") or "checkpoint" (PyTorch backend, ModelOpt checkpoint: MODELOPT_FP8_KV).
    fp8_kv_from: str
    # Per-model ``llm_options`` the doc lists: (base model name, kv dtype, ADP balance timeout).
    llm_options: tuple[tuple[str, str | None, int | None], ...] = ()


PERF_OVERVIEW_DOCS = {
    "docs/source/performance/perf-overview.md@258c7540": PerfOverviewDoc(
        "NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md @258c7540 (v0.17)", "build"
    ),
    "docs/source/performance/perf-overview.md@ab4143e1": PerfOverviewDoc(
        "dominicshanshan/TensorRT-LLM docs/source/performance/perf-overview.md @ab4143e1 (v0.20)",
        "checkpoint",
    ),
    # Not read here (no stored copy at that commit); the rows' FP8 checkpoints are ModelOpt ones.
    "docs/source/performance/perf-overview.md@00f37686": PerfOverviewDoc(
        "NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md @00f37686 (v1.0)", "checkpoint"
    ),
    "docs/source/developer-guide/perf-overview.md@585c7565": PerfOverviewDoc(
        "NVIDIA/TensorRT-LLM docs/source/developer-guide/perf-overview.md @585c7565",
        "checkpoint",
        # DeepSeek R1: kv_cache_config.dtype fp8, attention_dp_config {enable_balance: true,
        # timeout_iters: 60} with enable_attention_dp.
        llm_options=(("DeepSeek-R1-0528", "fp8", 60),),
    ),
}


def perf_overview_engine(record: MeasuredRecord, model_name: str) -> StatedEngine | None:
    """The run settings the record's perf-overview version states, for its trtllm-bench
    ``throughput`` rows (max-throughput loads; the v0.14 online-serving rows ran on Triton)."""
    if record.load != "max_throughput":
        return None
    doc = next((d for key, d in PERF_OVERVIEW_DOCS.items() if key in record.source), None)
    if doc is None:
        return None
    cite, kv, timeout = doc.cite, None, None
    if record.weights == "fp8" and (doc.fp8_kv_from == "build" or model_name not in NOT_MODELOPT):
        kv = "fp8"
        if doc.fp8_kv_from == "checkpoint":
            cite = f"{cite}; {MODELOPT_FP8_KV}"
    for name, option_kv, option_timeout in doc.llm_options:
        if name == model_name:
            kv = option_kv or kv
            timeout = option_timeout if record.attention_dp else None
    if kv is None and timeout is None:
        return None
    return StatedEngine(cite, kv, adp_balance_timeout_iters=timeout)


def stated_engine(record: MeasuredRecord, model_name: str) -> StatedEngine | None:
    """The engine settings the record's campaign script states, or None (engine defaults)."""
    if record.source_name == PERF_OVERVIEW:
        return perf_overview_engine(record, model_name)
    key = (record.source_name, record.backend, record.weights, record.system)
    rule = SCRIPTS.get(key)
    if rule is None or model_name not in SCRIPT_MODELS or record.tp is None or record.concurrency is None:
        return None
    return rule(record.tp, record.concurrency, record.isl or 0, record.osl or 0, record.attention_dp)
