"""Engine scheduling policies as data: what each backend does by default, with where it says so.

The simulator's loop (``servopt_kernels.sim``) reads one policy row per instance kind; the engines
differ only in these values. Defaults are the engines' documented ones for a large GPU (>= 70 GiB)
behind an OpenAI-compatible server; every field can be overridden from the CLI.

- vLLM V1 (``vllm/engine/arg_utils.py`` ``EngineArgs.get_batch_defaults``; docs "Optimization and
  Tuning: chunked prefill"): chunked prefill always on; each step schedules the running requests
  first (decodes take one token each) and fills the rest of ``max_num_batched_tokens`` (8192 on
  >= 70 GiB non-A100 GPUs, API server) with prefill chunks; ``max_num_seqs`` 1024 on those GPUs;
  paged KV in 16-token blocks allocated as sequences grow; when blocks run out the most recently
  scheduled request is preempted and recomputed.
- SGLang (``python/sglang/srt/server_args.py``; docs "Server Arguments"): a new prefill batch runs
  as its own forward pass before decoding resumes (``enable_mixed_chunk`` off by default);
  ``chunked_prefill_size`` by GPU memory (8192 for 60-160 GiB, 16384 above; servopt's
  ``evaluate.memory.sglang_mem_fraction_static`` uses the same tiers); token-granular KV pages;
  decode requests are retracted (recomputed later) when the pool runs out.
- TensorRT-LLM, PyTorch backend (``tensorrt_llm/llmapi/llm_args.py`` defaults; docs "Scheduler"):
  in-flight batching with context and generation requests in the same iteration; ``max_num_tokens``
  8192, ``max_batch_size`` 2048; chunked context off unless enabled; the default capacity scheduler
  ``GUARANTEED_NO_EVICT`` admits a request only if its whole KV (prompt + max new tokens) fits, so
  nothing is ever preempted; 32-token KV blocks.

Request polling (``recv_interval``): every engine takes new requests from its input queue before
each forward pass by default. SGLang's ``--scheduler-recv-interval N`` (default 1;
``python/sglang/srt/managers/scheduler_recv_skipper.py``, ``SchedulerRecvSkipper.handle``) adds the
last pass's weight to a counter before each pass and polls only when it reaches N: a decode pass
weighs 1, any other (prefill/extend) 1000, no pass (the idle loop) 1 (``sglang/srt/environ.py``
``SGLANG_SCHEDULER_RECV_SKIPPER_WEIGHT_*``). So with N > 1 a request
arriving while the engine decodes waits for the N-th decode pass since the last poll; after a
prefill pass, and when nothing runs (the idle loop spins within microseconds), it polls at once.

Attention-DP balancing (``adp_balance_timeout_iters``; off, 0, by default): TensorRT-LLM with
``enable_attention_dp`` and ``attention_dp_config: {enable_balance: true, timeout_iters: N}``
(``tensorrt_llm/_torch/pyexecutor/py_executor.py`` ``PyExecutor._balance_adp_requests``; NVIDIA's
tech blog 10 "ADP Balance Strategy") schedules context requests only in a pass where every attention-DP
rank of the worker has one and a free slot; otherwise each pass holds them and counts, and they go
after N held passes, or at once when some rank has nothing to decode. The ranks are the worker's
``dp`` instances (``servopt_kernels.sim._adp_balance``). ``batching_wait_iters`` (an extra wait
when all ranks have context) is 0 in every script servopt replays and is not modelled.

Batch waiting (``batch_wait_timeout_iters`` N, ``batch_wait_max_tokens_ratio`` R; both 0, off, by
default): TensorRT-LLM without attention DP (``tensorrt_llm/_torch/pyexecutor/py_executor.py``,
``PyExecutor._schedule`` and ``_waiting_requests``; flags read in ``PyExecutor.__init__``
@0004396) asks, in an iteration whose scheduler output has both context and generation requests,
whether to stop waiting: when its count of held iterations is >= N, or the iteration's context
tokens (the prompts the scheduler fitted) plus its generation tokens are >= R x ``max_num_tokens``.
Stopping schedules the context and restarts the count; otherwise the context is held this
iteration and the count grows. Iterations that do not ask leave the count as it is, so with N = 0
the first condition always holds and a ratio alone never waits. (``servopt_kernels.sim._batch_wait``.)

Routing follows Dynamo's disaggregated serving: prefill workers pull from one shared prefill
queue; requests are pushed to the least-loaded aggregated or decode instance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from servopt.errors import ServoptError, UnknownNameError


@dataclass(frozen=True)
class SchedulerPolicy:
    """One engine instance's scheduling behaviour (see the module docstring for the sources)."""

    max_batch_size: int  # running requests per instance (vLLM max_num_seqs, TRT max_batch_size)
    max_num_tokens: int  # tokens per forward pass (vLLM max_num_batched_tokens, SGLang chunk size)
    chunked_prefill: bool
    mixed_batches: bool  # prefill chunks share passes with decodes (False: prefill passes run alone)
    reserve_full_kv: bool  # admission reserves prompt + output KV (no growth, no preemption)
    kv_block_tokens: int
    iteration_overhead_ms: float = 0.0  # fixed CPU/launch cost per pass (calibration sets it)
    # Poll for new requests every N decode-only passes (SGLang ``--scheduler-recv-interval``;
    # 1 = before every pass, every engine's default; see the module docstring).
    recv_interval: int = 1
    # TRT-LLM attention-DP balancing: hold context up to N passes until every dp rank has some
    # (``attention_dp_config.timeout_iters`` with ``enable_balance``; 0 = off, the default).
    adp_balance_timeout_iters: int = 0
    # TRT-LLM batch waiting without attention DP: hold context while decodes run, up to N passes or
    # until context + decode tokens reach ratio x max_num_tokens (``batch_wait_timeout_iters`` /
    # ``batch_wait_max_tokens_ratio``; both 0 = off, the default).
    batch_wait_timeout_iters: int = 0
    batch_wait_max_tokens_ratio: float = 0.0

    def with_overrides(self, **values) -> SchedulerPolicy:
        """A copy with the given fields replaced (None leaves a field as it is), checked."""
        policy = replace(self, **{k: v for k, v in values.items() if v is not None})
        for name in ("max_batch_size", "max_num_tokens", "kv_block_tokens", "recv_interval"):
            value = getattr(policy, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ServoptError(name, value, "must be an integer >= 1")
        value = policy.adp_balance_timeout_iters
        if not isinstance(value, int | np.integer) or value < 0:
            raise ServoptError("adp_balance_timeout_iters", value, "must be an integer >= 0 (0 = off)")
        value = policy.batch_wait_timeout_iters
        if not isinstance(value, int | np.integer) or value < 0:
            raise ServoptError("batch_wait_timeout_iters", value, "must be an integer >= 0 (0 = off)")
        value = policy.batch_wait_max_tokens_ratio
        if not np.isfinite(value) or not 0.0 <= value <= 1.0:
            raise ServoptError("batch_wait_max_tokens_ratio", value, "must be in [0, 1] (0 = off)")
        if not np.isfinite(policy.iteration_overhead_ms) or policy.iteration_overhead_ms < 0:
            raise ServoptError(
                "iteration_overhead_ms", policy.iteration_overhead_ms, "must be finite and >= 0"
            )
        return policy


ENGINE_DEFAULTS: dict[str, SchedulerPolicy] = {
    "vllm": SchedulerPolicy(
        max_batch_size=1024,
        max_num_tokens=8192,
        chunked_prefill=True,
        mixed_batches=True,
        reserve_full_kv=False,
        kv_block_tokens=16,
    ),
    "sglang": SchedulerPolicy(
        max_batch_size=4096,
        max_num_tokens=8192,
        chunked_prefill=True,
        mixed_batches=False,
        reserve_full_kv=False,
        kv_block_tokens=1,
    ),
    "trtllm": SchedulerPolicy(
        max_batch_size=2048,
        max_num_tokens=8192,
        chunked_prefill=False,
        mixed_batches=True,
        reserve_full_kv=True,
        kv_block_tokens=32,
    ),
}

# SGLang raises its chunk size on GPUs above 160 GiB (same tiers as its memory-fraction rule).
SGLANG_LARGE_GPU_BYTES = 160 * (1 << 30)
SGLANG_LARGE_GPU_CHUNK = 16384


def fit_token_budget(policy: SchedulerPolicy, longest_prompt: int) -> SchedulerPolicy:
    """Without chunked prefill a prompt is scheduled only when it fits the pass's token budget next
    to the decode tokens in flight; deployments therefore size ``max_num_tokens`` to hold the longest
    prompt plus a full batch (servopt's own deployment files do: ``report.deploy.max_num_tokens``).
    A default budget below that is raised to it; chunked policies are returned as they are."""
    if policy.chunked_prefill:
        return policy
    return replace(policy, max_num_tokens=max(policy.max_num_tokens, longest_prompt + policy.max_batch_size))


def engine_policy(backend: str, gpu_memory_bytes: int | None = None) -> SchedulerPolicy:
    """The backend's default policy for a GPU of the given memory."""
    if backend not in ENGINE_DEFAULTS:
        raise UnknownNameError("backend", backend, "no scheduling policy", tuple(ENGINE_DEFAULTS))
    policy = ENGINE_DEFAULTS[backend]
    if backend == "sglang" and gpu_memory_bytes is not None and gpu_memory_bytes > SGLANG_LARGE_GPU_BYTES:
        policy = replace(policy, max_num_tokens=SGLANG_LARGE_GPU_CHUNK)
    return policy
