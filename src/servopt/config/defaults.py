"""Defaults for every key an experiment may leave out: the seed's, else the peer's (aiconfigurator).

Sources, so that answers compare like for like with the peer:

- workload and SLA (isl 4000, osl 1000, ttft 1000 ms, tpot 40 ms, backend trtllm, latest version,
  wide EP off): the seed's YAML comments;
- quantization: the checkpoint's own (``ModelArch.quant``), collectives in half precision;
- parallel search lists: the peer's defaults per model kind and backend, owned by
  ``servopt.models.parallel`` (dense: num_gpu = tp = [1,2,4,8], pp = dp = moe_tp = moe_ep = [1];
  MoE: num_gpu = tp = dp = moe_tp = moe_ep = [1,2,4,8,16], pp = [1]). Where the measured data
  covers expert parallelism wider than one node for the model (all-to-all + EP expert compute,
  ``Catalog.large_ep_eps``), the role's lists union in the peer's multi-node EP ladder and replicas may
  grow to 512 GPUs, as the peer does with no flag; ``enable_wide_ep: true`` swaps in the explicit
  wide-EP lists instead (for agg they are listed here, as the peer's legacy task builder has them);
  on SGLang, agg and prefill workers of models whose graph has a context-parallel variant
  (``models.context_parallel``) sweep cp in {1, 2, 4, 8} as the peer does (decode: cp = 1);
- replica, worker caps and latency corrections: the peer's (identical to the seed's example values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from servopt.models.arch import ModelArch
from servopt.models.context_parallel import supports_context_parallel
from servopt.models.parallel import (
    AGG_LARGE_EP_LADDER,
    ParallelLists,
    default_agg_lists,
    default_disagg_lists,
)

DEFAULT_BACKEND = "trtllm"
DEFAULT_ISL = 4000
DEFAULT_OSL = 1000
DEFAULT_TTFT_MS = 1000.0
DEFAULT_TPOT_MS = 40.0
DEFAULT_ENABLE_WIDE_EP = False

# MTP is never on unless asked for (the peer's rule); the rates are the seed example's.
DEFAULT_NEXTN = 0
DEFAULT_NEXTN_ACCEPT_RATES = (0.85, 0.0, 0.0, 0.0, 0.0)
DEFAULT_COMM_QUANT = "half"

# Replica sizes: small powers of two, then whole 8-GPU nodes up to 128 GPUs (the peer's list).
DEFAULT_NUM_GPU_PER_REPLICA = (1, 2, 4, 8, *range(16, 129, 8))
DEFAULT_MAX_GPU_PER_REPLICA = 128
# Wide-EP workers span up to 64 GPUs, so a replica needs room for several of them; any size up to
# the cap is allowed (the peer leaves the size list unset under wide EP).
WIDE_EP_MAX_GPU_PER_REPLICA = 512
DEFAULT_MAX_PREFILL_WORKER = 32
DEFAULT_MAX_DECODE_WORKER = 32

# The peer's silicon-calibrated corrections of its (optimistic) static prefill/decode latencies.
DEFAULT_PREFILL_LATENCY_CORRECTION_SCALE = 1.1
DEFAULT_DECODE_LATENCY_CORRECTION_SCALE = 1.08
# Prefill at ISL >= ~1000 already saturates the GPU: batching only multiplies TTFT.
DEFAULT_PREFILL_MAX_BATCH_SIZE = 1
# Per-rank decode batch cap.
DEFAULT_DECODE_MAX_BATCH_SIZE = 512

# Backends with wide-EP search lists (the peer has none for vLLM).
WIDE_EP_BACKENDS = ("trtllm", "sglang")
# Agg wide-EP ladders: multi-node expert parallel with attention DP, no MoE TP.
_AGG_WIDE_EP_LISTS = AGG_LARGE_EP_LADDER


# The experiment's ``calibration`` key: the shipped profile unless it says none (the raw model) or
# names a profile file (servopt.calibrate.model.resolve_calibration reads it).
DEFAULT_CALIBRATION = "default"
CALIBRATION_NAMES = ("default", "none")


def top_level_defaults() -> dict[str, Any]:
    """Defaults of the experiment's top-level optional keys (decode_system_name: the prefill system)."""
    return {
        "backend_name": DEFAULT_BACKEND,
        "backend_version": None,
        "isl": DEFAULT_ISL,
        "osl": DEFAULT_OSL,
        "ttft": DEFAULT_TTFT_MS,
        "tpot": DEFAULT_TPOT_MS,
        "enable_wide_ep": DEFAULT_ENABLE_WIDE_EP,
        "robust": False,
    }


def _worker(arch: ModelArch, lists: ParallelLists) -> dict[str, Any]:
    return {
        "gemm_quant_mode": arch.quant.gemm,
        "moe_quant_mode": arch.quant.moe,
        "kvcache_quant_mode": arch.quant.kvcache,
        "fmha_quant_mode": arch.quant.fmha,
        "comm_quant_mode": DEFAULT_COMM_QUANT,
        **{key: list(values) for key, values in lists._asdict().items()},
    }


def default_config(
    *,
    serving_mode: str,
    arch: ModelArch,
    backend: str,
    system: str,
    decode_system: str | None = None,
    enable_wide_ep: bool = False,
    large_ep: Mapping[str, Sequence[int]] | None = None,
) -> dict[str, Any]:
    """The complete default ``config:`` block for one experiment (plain data, ready to patch).

    ``large_ep`` is ``Catalog.large_ep_eps`` (per role, covered multi-node EP sizes); ``enable_wide_ep``
    swaps in the explicit wide-EP lists instead.
    """
    wide = enable_wide_ep and arch.is_moe and backend in WIDE_EP_BACKENDS
    large_ep = {} if wide or not arch.is_moe else dict(large_ep or {})
    cp_agg, cp_prefill = (
        not wide and supports_context_parallel(arch, backend, role) for role in ("agg", "prefill")
    )
    config: dict[str, Any] = {
        "nextn": DEFAULT_NEXTN,
        "nextn_accept_rates": list(DEFAULT_NEXTN_ACCEPT_RATES),
    }
    if serving_mode == "agg":
        lists = (
            _AGG_WIDE_EP_LISTS[backend]
            if wide
            else default_agg_lists(
                is_moe=arch.is_moe,
                backend=backend,
                system=system,
                large_ep_eps=large_ep.get("agg", ()),
                context_parallel=cp_agg,
            )
        )
        config["worker_config"] = _worker(arch, lists)
        return config
    prefill, decode = default_disagg_lists(
        is_moe=arch.is_moe,
        backend=backend,
        prefill_system=system,
        decode_system=decode_system or system,
        prefill_wide_ep=wide,
        decode_wide_ep=wide,
        prefill_large_ep_eps=large_ep.get("prefill", ()),
        decode_large_ep_eps=large_ep.get("decode", ()),
        context_parallel=cp_prefill,
    )
    # The peer's replica budget opens (any size up to 512 GPUs) once a role has large-EP tuples.
    multi_node = wide or bool(large_ep.get("prefill") or large_ep.get("decode"))
    config["prefill_worker_config"] = _worker(arch, prefill)
    config["decode_worker_config"] = _worker(arch, decode)
    config["replica_config"] = {
        "num_gpu_per_replica": None if multi_node else list(DEFAULT_NUM_GPU_PER_REPLICA),
        "max_gpu_per_replica": WIDE_EP_MAX_GPU_PER_REPLICA if multi_node else DEFAULT_MAX_GPU_PER_REPLICA,
        "max_prefill_worker": DEFAULT_MAX_PREFILL_WORKER,
        "max_decode_worker": DEFAULT_MAX_DECODE_WORKER,
    }
    config["advanced_tuning_config"] = {
        "prefill_latency_correction_scale": DEFAULT_PREFILL_LATENCY_CORRECTION_SCALE,
        "decode_latency_correction_scale": DEFAULT_DECODE_LATENCY_CORRECTION_SCALE,
        "prefill_max_batch_size": DEFAULT_PREFILL_MAX_BATCH_SIZE,
        "decode_max_batch_size": DEFAULT_DECODE_MAX_BATCH_SIZE,
    }
    return config
