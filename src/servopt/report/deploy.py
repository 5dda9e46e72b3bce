"""Deployment configs for a chosen configuration: engine settings per backend, the Dynamo worker
command lines and a single-node ``run.sh`` (Kubernetes manifests: ``report/k8s.py``).

Every value comes from the chosen configuration (parallel sizes, batch sizes, token budgets, KV
dtype, speculative decoding); only the container image and the model path are parameters.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Literal

import yaml

from servopt.errors import ServoptError

Role = Literal["agg", "prefill", "decode"]

# Headroom for chat templates / system prompts on top of the modelled input length; the engines
# reject a request longer than max_num_tokens, so the budget must cover it.
PROMPT_OVERHEAD_TOKENS = 500
# Fraction of free GPU memory the engines may give to the KV cache: the same fractions the memory
# model's KV-budget rules assume for each backend.
KV_MEMORY_FRACTION = {"trtllm": 0.9, "vllm": 0.92, "sglang": 0.88}
# TRT-LLM MoE backend that runs the kernel a MoE quant mode was priced with. MXFP4 x MXFP8 is the
# CUTLASS MoE on Blackwell: "B200/GB200 | MXFP8 | MXFP4 | CUTLASS | Max Throughput" (TensorRT-LLM
# docs/source/deployment-guide/quick-start-recipe-for-gpt-oss-on-trtllm.md, "MoE Backend Support
# Matrix", and its max-throughput ``moe_config: backend: CUTLASS``). Later releases default to the
# TRTLLM backend (deployment-guide-for-gpt-oss-on-trtllm.md), so the choice is written out. Other
# modes keep the engine's default for the checkpoint (the w4a16_mxfp4 table is Hopper's default
# TRITON path), so nothing is written for them.
TRTLLM_MOE_BACKEND = {"w4a8_mxfp4_mxfp8": "CUTLASS"}
# The Dynamo worker module per backend.
_DYNAMO_MODULE = {"trtllm": "dynamo.trtllm", "vllm": "dynamo.vllm", "sglang": "dynamo.sglang"}
# Prefill -> decode KV transfer, as the disaggregation examples of the Dynamo release the manifests
# target configure it (report/k8s.py cites them): NIXL for vLLM (set on the prefill worker) and SGLang.
VLLM_KV_TRANSFER = '{"kv_connector":"NixlConnector","kv_role":"kv_both"}'
SGLANG_BOOTSTRAP_PORT = 12345


@dataclass(frozen=True)
class WorkerPlan:
    """One kind of worker in a replica (agg, or the prefill or decode pool of an xPyD replica)."""

    role: Role
    workers_per_replica: int
    tp: int
    pp: int
    dp: int
    moe_tp: int
    moe_ep: int
    batch_size: int  # per attention-DP rank, as the engines count it
    ctx_tokens: int  # context-token budget per step (agg), or isl * batch (prefill); 0 for decode
    cp: int = 1  # context-parallel ranks (SGLang agg/prefill workers only)
    moe_quant_mode: str = ""  # the priced MoE kernel's quant mode (models.quant_modes), "" if unknown

    @property
    def gpus_per_worker(self) -> int:
        return self.tp * self.pp * self.dp * self.cp


@dataclass(frozen=True)
class DeploymentPlan:
    name: str
    model: str  # HF id or local path served by the engines
    backend: Literal["trtllm", "vllm", "sglang"]
    backend_version: str
    replicas: int
    workers: tuple[WorkerPlan, ...]
    isl: int
    osl: int
    kvcache_quant_mode: str
    is_moe: bool
    nextn: int = 0

    @property
    def mode(self) -> str:
        return "agg" if self.workers[0].role == "agg" else "disagg"


def max_num_tokens(plan: DeploymentPlan, w: WorkerPlan) -> int:
    """Tokens one engine step must hold, rounded up to a multiple of 32 (kernel tiling)."""
    if w.role == "decode":
        tokens = w.batch_size * (plan.nextn + 1)
    elif w.role == "prefill":
        tokens = max(w.ctx_tokens, plan.isl) + PROMPT_OVERHEAD_TOKENS
    else:
        tokens = w.batch_size * (plan.nextn + 1) + max(w.ctx_tokens, plan.isl) + PROMPT_OVERHEAD_TOKENS
    return 32 * math.ceil(tokens / 32)


def _cuda_graph_batch_sizes(max_batch: int) -> list[int]:
    sizes = [b for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024) if b < max_batch]
    return [*sizes, max_batch]


def _no_context_parallel(plan: DeploymentPlan, w: WorkerPlan) -> None:
    # The search prices cp > 1 on SGLang only; a plan saying otherwise was not made by it.
    if w.cp > 1:
        raise ServoptError(
            "cp", w.cp, f"context parallelism is modelled on sglang only, not {plan.backend}", ["1"]
        )


def trtllm_engine_config(plan: DeploymentPlan, w: WorkerPlan) -> dict:
    """TensorRT-LLM ``--extra-engine-args`` YAML content for one worker kind."""
    _no_context_parallel(plan, w)
    cfg: dict = {
        "backend": "pytorch",
        "tensor_parallel_size": w.tp * w.dp,
        "pipeline_parallel_size": w.pp,
        "enable_attention_dp": w.dp > 1,
        "max_batch_size": w.batch_size,
        "max_num_tokens": max_num_tokens(plan, w),
        "max_seq_len": plan.isl + plan.osl + PROMPT_OVERHEAD_TOKENS,
        "kv_cache_config": {
            "free_gpu_memory_fraction": KV_MEMORY_FRACTION["trtllm"],
            "dtype": "fp8" if plan.kvcache_quant_mode == "fp8" else "auto",
            "enable_block_reuse": False,
        },
        "cuda_graph_config": {"enable_padding": True, "batch_sizes": _cuda_graph_batch_sizes(w.batch_size)},
        "disable_overlap_scheduler": w.role == "prefill",
    }
    if plan.is_moe:
        cfg["moe_tensor_parallel_size"] = w.moe_tp
        cfg["moe_expert_parallel_size"] = w.moe_ep
        if w.moe_quant_mode in TRTLLM_MOE_BACKEND:
            cfg["moe_config"] = {"backend": TRTLLM_MOE_BACKEND[w.moe_quant_mode]}
    if plan.mode == "disagg":
        cfg["cache_transceiver_config"] = {"backend": "DEFAULT", "max_tokens_in_buffer": plan.isl + plan.osl}
    if plan.nextn > 0:
        cfg["speculative_config"] = {"decoding_type": "MTP", "num_nextn_predict_layers": plan.nextn}
    return cfg


def vllm_args(plan: DeploymentPlan, w: WorkerPlan) -> list[str]:
    _no_context_parallel(plan, w)
    args = [
        "--tensor-parallel-size", str(w.tp),
        "--pipeline-parallel-size", str(w.pp),
        "--data-parallel-size", str(w.dp),
        "--max-num-seqs", str(w.batch_size),
        "--max-num-batched-tokens", str(max_num_tokens(plan, w)),
        "--max-model-len", str(plan.isl + plan.osl + PROMPT_OVERHEAD_TOKENS),
        "--gpu-memory-utilization", str(KV_MEMORY_FRACTION["vllm"]),
        "--kv-cache-dtype", "fp8" if plan.kvcache_quant_mode == "fp8" else "auto",
        "--no-enable-prefix-caching",
    ]  # fmt: skip
    if plan.is_moe and w.moe_ep > 1:
        args.append("--enable-expert-parallel")
    if plan.nextn > 0:
        args += ["--speculative-config", f'{{"method": "mtp", "num_speculative_tokens": {plan.nextn}}}']
    return args


def sglang_args(plan: DeploymentPlan, w: WorkerPlan) -> list[str]:
    args = [
        # SGLang's tp size is the whole worker's GPU group; attention TP, attention DP and context
        # parallelism each take a factor of it (attention tp = tp_size / (dp_size * attn_cp_size)).
        "--tp-size", str(w.tp * w.dp * w.cp),
        "--pp-size", str(w.pp),
        "--max-running-requests", str(w.batch_size * w.dp),
        "--chunked-prefill-size", str(max_num_tokens(plan, w)),
        "--context-length", str(plan.isl + plan.osl + PROMPT_OVERHEAD_TOKENS),
        "--mem-fraction-static", str(KV_MEMORY_FRACTION["sglang"]),
        "--kv-cache-dtype", "fp8_e4m3" if plan.kvcache_quant_mode == "fp8" else "auto",
    ]  # fmt: skip
    if w.dp > 1:
        args += ["--dp-size", str(w.dp), "--enable-dp-attention"]
    if w.cp > 1:
        # SGLang's prefill context parallelism (sgl-project/sglang python/sglang/srt/server_args.py:
        # ``attn_cp_size``, "The attention context parallelism size", and
        # ``enable_prefill_context_parallel`` with its default ``prefill_cp_mode`` "in-seq-split",
        # the zigzag split servopt prices; newer releases spell the switch ``--enable-prefill-cp
        # --cp-strategy zigzag`` and keep this one as a deprecated alias).
        args += ["--attn-cp-size", str(w.cp), "--enable-prefill-context-parallel"]
    if plan.is_moe and w.moe_ep > 1:
        args += ["--ep-size", str(w.moe_ep)]
    if plan.nextn > 0:
        args += ["--speculative-algorithm", "EAGLE", "--speculative-num-steps", str(plan.nextn)]
    return args


def _config_file(w: WorkerPlan) -> str:
    return f"{w.role}_config.yaml"


def worker_command(plan: DeploymentPlan, w: WorkerPlan, config_dir: str = ".") -> list[str]:
    """The Dynamo worker command line for one worker kind, with the disaggregation flags of the
    Dynamo release the manifests target (``--disaggregation-mode prefill|decode`` for every backend)."""
    module = _DYNAMO_MODULE[plan.backend]
    served = ["--served-model-name", plan.model]
    if plan.backend == "trtllm":
        cmd = ["python3", "-m", module, "--model-path", plan.model, *served,
               "--extra-engine-args", f"{config_dir}/{_config_file(w)}"]  # fmt: skip
    elif plan.backend == "vllm":
        cmd = ["python3", "-m", module, "--model", plan.model, *served, *vllm_args(plan, w)]
    else:
        cmd = ["python3", "-m", module, "--model-path", plan.model, *served, *sglang_args(plan, w)]
    if w.role != "agg":
        cmd += ["--disaggregation-mode", w.role]
        if plan.backend == "vllm" and w.role == "prefill":
            cmd += ["--kv-transfer-config", VLLM_KV_TRANSFER]
        elif plan.backend == "sglang":
            cmd += ["--disaggregation-transfer-backend", "nixl",
                    "--disaggregation-bootstrap-port", str(SGLANG_BOOTSTRAP_PORT), "--host", "0.0.0.0"]  # fmt: skip
    return cmd


def engine_files(plan: DeploymentPlan) -> dict[str, str]:
    """Engine config files: one YAML per worker kind for TRT-LLM, an args file for vLLM/SGLang."""
    files = {}
    for w in plan.workers:
        if plan.backend == "trtllm":
            files[_config_file(w)] = yaml.safe_dump(trtllm_engine_config(plan, w), sort_keys=False)
        else:
            args = vllm_args(plan, w) if plan.backend == "vllm" else sglang_args(plan, w)
            files[f"{w.role}_args.txt"] = shlex.join(args) + "\n"
    return files


def _comment(text: str) -> str:
    """``text`` made safe for one ``#`` comment line: a newline in a name (experiment, model path)
    would otherwise end the comment and run the rest as a command."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def run_script(plan: DeploymentPlan, config_dir: str = ".") -> str:
    """A bash script that starts the frontend and one replica's workers on one node.

    Every value from the plan is either a number or passes through ``shlex.join`` (commands) or
    ``_comment`` (the header line), so no name or path can inject a command.

    GPUs are handed out in order with CUDA_VISIBLE_DEVICES; a replica larger than one node is
    launched by running the script once per node with ``NODE_RANK`` and ``GPUS_PER_NODE`` set.
    """
    header = _comment(
        f"{plan.name}: {plan.mode} replica of {plan.model} on {plan.backend} {plan.backend_version}"
    )
    lines = [
        "#!/usr/bin/env bash",
        f"# {header}",
        "# One replica per invocation; run once per node with NODE_RANK=0,1,... for larger replicas.",
        "set -euo pipefail",
        'NODE_RANK="${NODE_RANK:-0}"',
        'GPUS_PER_NODE="${GPUS_PER_NODE:-8}"',
        'if [ "$NODE_RANK" = 0 ]; then python3 -m dynamo.frontend --http-port 8000 & fi',
    ]
    gpu = 0
    for w in plan.workers:
        for i in range(w.workers_per_replica):
            first, last = gpu, gpu + w.gpus_per_worker - 1
            devices = ",".join(f"$(( {g} % GPUS_PER_NODE ))" for g in range(first, last + 1))
            node = f"$(( {first} / GPUS_PER_NODE ))"
            cmd = shlex.join(worker_command(plan, w, config_dir))
            lines.append(f"# {w.role} worker {i}: GPUs {first}-{last} of the replica")
            lines.append(f'if [ "$NODE_RANK" = "{node}" ]; then CUDA_VISIBLE_DEVICES="{devices}" {cmd} & fi')
            gpu += w.gpus_per_worker
    lines.append("wait")
    return "\n".join(lines) + "\n"
