"""Rooflines from the system spec alone: analytic ops, collectives and the parameter rows the grid
kernels use for every op family.

``SOL = max(FLOPs / peak FLOP/s, bytes / HBM bandwidth)`` (no efficiency factor) for compute ops;
collectives move their ring traffic over the per-GPU link bandwidth of the fan-out. The analytic
ops that have no table (element-wise memory ops, pipeline hops) use the spec's empirical constants
in measured mode and drop them in SOL mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from servopt.hardware import SystemSpec
from servopt.perf_db.families import PARAM_WIDTH
from servopt_kernels import grid as gk

MS_PER_S = 1000.0
# Ring all-reduce moves each element twice (reduce-scatter + all-gather), custom all-reduce in bf16.
CUSTOM_ALLREDUCE_BYTES_PER_ELEM = 2.0
RING_ALLREDUCE_PASSES = 2.0
# The peer charges the attention side-extras (rope, kv write, qk-norm) 10% above their memory time.
ATTENTION_EXTRAS_FACTOR = 1.1


def params(n: int) -> np.ndarray:
    return np.zeros((n, PARAM_WIDTH))


def slice_params(fam, key_cols: Sequence[int], tail: Sequence[float]) -> Callable[[np.ndarray], np.ndarray]:
    """``params(u)`` for the grid lookups: the roofline row of each slice ``u`` (-1: none, zeros) holds
    the slice's key columns ``key_cols`` first (a slice key carries the op's shape), then ``tail``
    (the query's constants: bytes per element, peak flops, bandwidth...)."""
    width = len(key_cols)

    def slices(u: np.ndarray) -> np.ndarray:
        par = params(len(u))
        ok = u >= 0
        for col, key in enumerate(key_cols):
            par[ok, col] = fam.key_cols[key][u[ok]]
        par[:, width : width + len(tail)] = tail
        return par

    return slices


def run(kind: int, coords: np.ndarray, par: np.ndarray) -> np.ndarray:
    out = np.empty(len(par))
    gk.sol_batch(kind, np.ascontiguousarray(coords, dtype=np.float64), np.ascontiguousarray(par), out)
    return out


def collective_bw(system: SystemSpec, num_gpus: np.ndarray) -> np.ndarray:
    """Per-GPU link bandwidth of a collective over ``num_gpus`` ranks, vectorised."""
    n = np.asarray(num_gpus)
    out = np.full(n.shape, system.node.network_bw_bytes_per_s, dtype=np.float64)
    out = np.where(n <= system.node.gpus_per_nvlink_domain, system.inter_node_bw_bytes_per_s, out)
    return np.where(n <= system.node.gpus_per_node, system.node.nvlink_bw_bytes_per_s, out)


def custom_allreduce_ms(system: SystemSpec, num_gpus, elems) -> np.ndarray:
    n = np.asarray(num_gpus, dtype=np.float64)
    size = np.asarray(elems, dtype=np.float64)
    bw = collective_bw(system, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = RING_ALLREDUCE_PASSES * size * CUSTOM_ALLREDUCE_BYTES_PER_ELEM / n * (n - 1.0) / bw * MS_PER_S
    return np.where(n <= 1, 0.0, t)


def nccl_ms(system: SystemSpec, op: str, bytes_per_elem: float, num_gpus, elems) -> np.ndarray:
    n = np.asarray(num_gpus, dtype=np.float64)
    size = np.asarray(elems, dtype=np.float64)
    passes = RING_ALLREDUCE_PASSES if op == "all_reduce" else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = passes * bytes_per_elem * size * (n - 1.0) / n / collective_bw(system, n) * MS_PER_S
    return np.where(n <= 1, 0.0, t)


def mem_op_ms(system: SystemSpec, nbytes, sol: bool = False) -> np.ndarray:
    b = np.asarray(nbytes, dtype=np.float64)
    bw = system.gpu.mem_bw_bytes_per_s
    if sol:
        return b / bw * MS_PER_S
    emp = system.empirical
    return (b / (bw * emp.mem_bw_efficiency) + emp.mem_op_constant_latency_s) * MS_PER_S


def p2p_ms(system: SystemSpec, nbytes, sol: bool = False) -> np.ndarray:
    """One pipeline hop; the peer always prices it at the inter-node bandwidth."""
    t = np.asarray(nbytes, dtype=np.float64) / system.inter_node_bw_bytes_per_s
    if not sol:
        t = t + system.empirical.p2p_latency_s
    return t * MS_PER_S


def attention_extras_ms(
    system: SystemSpec, num_heads, num_kv_heads, head_dim, fmha_bytes, qk_norm, sol
) -> np.ndarray:
    """Fused side-ops of context attention: rope on q and k, kv-cache write, optional qk-norm.

    Sized per token (as the peer does), not per batch: a few microseconds per layer.
    """
    q = np.asarray(num_heads, dtype=np.float64) * head_dim
    k = np.asarray(num_kv_heads, dtype=np.float64) * head_dim
    extra = 2.0 * mem_op_ms(system, 2.0 * q + 2.0 * k, sol)  # rope
    extra = extra + 2.0 * mem_op_ms(system, k * fmha_bytes, sol)  # k and v writes
    if qk_norm:
        extra = extra + 2.0 * (2.0 * mem_op_ms(system, 2.0 * q, sol) + 2.0 * mem_op_ms(system, 2.0 * k, sol))
    return ATTENTION_EXTRAS_FACTOR * extra


def scale_ms(system: SystemSpec, m, k, which: str) -> np.ndarray:
    """fp8 activation-quantization overheads as pure memory traffic over an (m x k) activation."""
    from servopt.perf_db.gemm import COMPUTE_SCALE_BYTES_PER_ELEM, SCALE_MATRIX_BYTES_PER_ELEM

    per_elem = COMPUTE_SCALE_BYTES_PER_ELEM if which == "compute_scale" else SCALE_MATRIX_BYTES_PER_ELEM
    elems = np.asarray(m, dtype=np.float64) * np.asarray(k, dtype=np.float64)
    return per_elem * elems / system.gpu.mem_bw_bytes_per_s * MS_PER_S
