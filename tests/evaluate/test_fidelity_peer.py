"""Fidelity against aiconfigurator 0.12.0 on the same measured data (h200_sxm).

A seeded sample of configurations spanning six models (dense, MoE, MLA+MoE), the three backends,
bf16 / fp8 / fp8_block, tp / dp / ep layouts, batch sizes 1-512 and several (isl, osl) pairs is run
through the peer's static and aggregated sessions and through servopt (its own perf database and
op model). Configurations the peer's data cannot answer are skipped by both.

Targets: static TTFT and TPOT within 2% for >= 95% of the configurations and within 5% for all;
memory within 2%; aggregated TTFT, TPOT and tokens/s/gpu within 3%.
"""

from __future__ import annotations

import itertools
import math
import random
from functools import cache

import numpy as np
import peer_oracle
import pytest

from servopt.evaluate.agg import run_agg
from servopt.evaluate.batch_sizes import ctx_tokens_list
from servopt.evaluate.candidates import Candidates, ModelSetup, Workload, build_layout_ops
from servopt.evaluate.static import run_static
from servopt.hardware import load_system
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model
from servopt.perf_db.database import open_database

pytestmark = pytest.mark.peer

SYSTEM = "h200_sxm"
SEED = 20260118
N_STATIC = 320
N_AGG = 90

MODELS = {
    "QWEN3_32B": "dense",
    "LLAMA3.1_70B": "dense",
    "QWEN3_30B_A3B": "moe",
    "QWEN3_235B_A22B": "moe",
    "MIXTRAL_8X7B": "moe",
    "DEEPSEEK_V3": "mla_moe",
}
QUANTS = {
    "bf16": QuantModes("float16", "float16", "float16", "float16"),
    "fp8": QuantModes("fp8", "fp8", "fp8", "float16"),
    "fp8_block": QuantModes("fp8_block", "fp8_block", "fp8", "float16"),
}
BACKENDS = ("trtllm", "vllm", "sglang")
BATCHES = (1, 2, 8, 16, 64, 128, 256, 512)
WORKLOADS = ((4000, 1000), (1024, 128), (8000, 500), (512, 2048), (2000, 64))


def _layouts(family: str, backend: str) -> list[Layout]:
    if family == "dense":
        return [Layout(tp, 1, 1, 1, 1) for tp in (1, 2, 4, 8)] + [Layout(4, 2, 1, 1, 1)]
    out = []
    for tp, dp in itertools.product((1, 2, 4, 8), (1, 2, 4, 8)):
        width = tp * dp
        if width > 8 or (backend == "trtllm" and tp > 1 and dp > 1):
            continue
        for ep in (1, 2, 4, 8):
            if width % ep:
                continue
            moe_tp = width // ep
            if backend == "vllm" and moe_tp > 1 and ep > 1:
                continue
            out.append(Layout(tp, 1, dp, moe_tp, ep))
    return out


def _sample(n: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    configs = []
    for model, family in MODELS.items():
        for backend in BACKENDS:
            for qname in QUANTS:
                for layout in _layouts(family, backend):
                    configs.append((model, backend, qname, layout))
    rng.shuffle(configs)
    picked = []
    # Round-robin over models so every model gets its share of the sample.
    by_model = {m: [c for c in configs if c[0] == m] for m in MODELS}
    while len(picked) < n and any(by_model.values()):
        for m in MODELS:
            if by_model[m]:
                model, backend, qname, layout = by_model[m].pop()
                isl, osl = rng.choice(WORKLOADS)
                picked.append((model, backend, qname, layout, rng.choice(BATCHES), isl, osl))
    return picked


@cache
def _db(backend: str):
    return open_database(SYSTEM, backend, peer_oracle.PEER_VERSIONS[backend])


def _setup(model: str, backend: str, qname: str) -> ModelSetup:
    return ModelSetup(
        resolve_model(model), backend, QUANTS[qname], load_system(SYSTEM), peer_oracle.PEER_VERSIONS[backend]
    )


def _peer_static(model, backend, qname, layout, batch, isl, osl):
    pm = peer_oracle.peer_model(resolve_model(model), layout, QUANTS[qname], backend)
    s = peer_oracle.peer_static(pm, backend, batch, isl, osl)
    ttft = sum(s.get_context_latency_dict().values())
    tpot = sum(s.get_generation_latency_dict().values()) / (osl - 1)
    return ttft, tpot, s.get_memory()["total"]


def _ours_static(model, backend, qname, layout, batch, isl, osl):
    lops = build_layout_ops(_setup(model, backend, qname), [layout], skip_invalid=False)
    cand = Candidates(np.array([0]), np.array([batch]), np.array([0]))
    r = run_static(_db(backend), lops, cand, Workload(isl, osl))
    return float(r.ttft_ms[0]), float(r.tpot_ms[0]), float(r.memory.total[0])


def _rel(ours: float, peer: float) -> float:
    return abs(ours - peer) / abs(peer) if peer else abs(ours)


def _run(sample, peer_fn, ours_fn):
    rows, skipped = [], 0
    for cfg in sample:
        try:
            peer = peer_fn(*cfg)
        except Exception:  # the peer's data (or layout rules) cannot answer: skipped by both
            skipped += 1
            continue
        if not all(math.isfinite(v) and v > 0 for v in peer):
            skipped += 1
            continue
        rows.append((cfg, peer, ours_fn(*cfg)))
    return rows, skipped


def _report(rows, names) -> str:
    lines = []
    for i, name in enumerate(names):
        errs = sorted(((_rel(o[i], p[i]), cfg) for cfg, p, o in rows), key=lambda t: -t[0])
        within2 = sum(e <= 0.02 for e, _ in errs) / len(errs)
        lines.append(f"{name}: n={len(errs)} within2%={within2:.3f} max={errs[0][0]:.4f} worst={errs[0][1]}")
    return "\n".join(lines)


def test_static_ttft_tpot_memory_match_peer():
    pytest.importorskip("aiconfigurator_core")
    rows, skipped = _run(_sample(N_STATIC, SEED), _peer_static, _ours_static)
    report = _report(rows, ("ttft", "tpot", "memory"))
    print(f"\nstatic: {len(rows)} configs compared, {skipped} skipped (peer cannot answer)\n{report}")
    assert len(rows) >= 200, report
    for i, name in enumerate(("ttft", "tpot")):
        errs = np.array([_rel(o[i], p[i]) for _, p, o in rows])
        assert np.mean(errs <= 0.02) >= 0.95, f"{name}\n{report}"
        assert errs.max() <= 0.05, f"{name}\n{report}"
    mem = np.array([_rel(o[2], p[2]) for _, p, o in rows])
    assert mem.max() <= 0.02, report
    # Every model and backend is represented.
    assert {cfg[0] for cfg, _, _ in rows} == set(MODELS)
    assert {cfg[1] for cfg, _, _ in rows} == set(BACKENDS)


def _agg_ctx(isl: int, batch: int) -> int:
    """The largest context budget of the sweep that still leaves a decoding request."""
    options = [c for c in ctx_tokens_list(isl) if batch - math.ceil(c / isl) >= (1 if batch > 1 else 0)]
    return options[-1] if options else isl


def _peer_agg(model, backend, qname, layout, batch, isl, osl):
    pm = peer_oracle.peer_model(resolve_model(model), layout, QUANTS[qname], backend)
    row = peer_oracle.summary_row(peer_oracle.peer_agg(pm, backend, batch, _agg_ctx(isl, batch), isl, osl))
    return float(row["ttft"]), float(row["tpot"]), float(row["tokens/s/gpu"])


def _ours_agg(model, backend, qname, layout, batch, isl, osl):
    lops = build_layout_ops(_setup(model, backend, qname), [layout], skip_invalid=False)
    cand = Candidates(np.array([0]), np.array([batch]), np.array([_agg_ctx(isl, batch)]))
    r = run_agg(_db(backend), lops, cand, Workload(isl, osl))
    return float(r.ttft_ms[0]), float(r.tpot_ms[0]), float(r.tokens_per_s_per_gpu[0])


def test_agg_ttft_tpot_throughput_match_peer():
    pytest.importorskip("aiconfigurator_core")
    rows, skipped = _run(_sample(N_AGG, SEED + 1), _peer_agg, _ours_agg)
    report = _report(rows, ("ttft", "tpot", "tokens/s/gpu"))
    print(f"\nagg: {len(rows)} configs compared, {skipped} skipped\n{report}")
    assert len(rows) >= 50, report
    for i in range(3):
        # The peer rounds its agg row to 3 decimals: allow that on tiny values.
        errs = np.array([abs(o[i] - p[i]) / max(abs(p[i]), 0.05) for _, p, o in rows])
        assert errs.max() <= 0.03, report


NEXTN_CASES = [
    ("DEEPSEEK_V3", "trtllm", "fp8_block", Layout(8, 1, 1, 1, 8), 1, (0.85,)),
    ("DEEPSEEK_V3", "trtllm", "fp8_block", Layout(1, 1, 8, 1, 8), 3, (0.85, 0.6, 0.3)),
    ("QWEN3_32B", "trtllm", "fp8_block", Layout(2, 1, 1, 1, 1), 2, (0.8, 0.5)),
    ("QWEN3_30B_A3B", "vllm", "bf16", Layout(2, 1, 1, 1, 2), 1, (0.7,)),
]


@pytest.mark.parametrize(("model", "backend", "qname", "layout", "nextn", "rates"), NEXTN_CASES)
def test_nextn_static_and_agg_match_peer(model, backend, qname, layout, nextn, rates):
    """Speculative decoding: the verification cost (static) and the accepted-token progress (agg)."""
    pytest.importorskip("aiconfigurator_core")
    from servopt.evaluate.nextn import expected_accepted_tokens

    arch = resolve_model(model)
    accepted = expected_accepted_tokens(nextn, rates)
    setup = _setup(model, backend, qname)._replace(nextn=nextn)
    lops = build_layout_ops(setup, [layout], skip_invalid=False)
    pm = peer_oracle.peer_model(arch, layout, QUANTS[qname], backend, nextn)
    isl, osl, batch = 2000, 500, 16

    s = peer_oracle.peer_static(pm, backend, batch, isl, osl)
    ours = run_static(
        _db(backend), lops, Candidates(np.array([0]), np.array([batch]), np.array([0])), Workload(isl, osl)
    )
    assert ours.ttft_ms[0] == pytest.approx(sum(s.get_context_latency_dict().values()), rel=0.02)
    assert ours.tpot_ms[0] == pytest.approx(
        sum(s.get_generation_latency_dict().values()) / (osl - 1), rel=0.02
    )
    assert ours.memory.total[0] == pytest.approx(s.get_memory()["total"], rel=0.02)

    ctx = _agg_ctx(isl, batch)
    row = peer_oracle.summary_row(
        peer_oracle.peer_agg(pm, backend, batch, ctx, isl, osl, decode_tokens_per_iteration=1.0 + accepted)
    )
    agg = run_agg(
        _db(backend),
        lops,
        Candidates(np.array([0]), np.array([batch]), np.array([ctx])),
        Workload(isl, osl),
        accepted_tokens=accepted,
    )
    for ours_v, key in (
        (agg.ttft_ms, "ttft"),
        (agg.tpot_ms, "tpot"),
        (agg.tokens_per_s_per_gpu, "tokens/s/gpu"),
    ):
        assert ours_v[0] == pytest.approx(float(row[key]), rel=0.03, abs=1e-3), key


MODE_CASES = [
    ("QWEN3_32B", "trtllm", "fp8_block", Layout(2, 1, 1, 1, 1), "static_ctx", 2, 0),
    ("QWEN3_32B", "vllm", "bf16", Layout(4, 1, 1, 1, 1), "static_gen", 64, 0),
    ("LLAMA3.1_70B", "sglang", "bf16", Layout(8, 1, 1, 1, 1), "static", 4, 1500),
    ("QWEN3_235B_A22B", "trtllm", "fp8_block", Layout(1, 1, 8, 1, 8), "static_gen", 128, 0),
    ("DEEPSEEK_V3", "sglang", "fp8_block", Layout(8, 1, 1, 1, 8), "static_ctx", 1, 0),
    ("DEEPSEEK_V3", "vllm", "fp8_block", Layout(8, 1, 1, 1, 8), "static", 8, 1000),
]


@pytest.mark.parametrize(("model", "backend", "qname", "layout", "mode", "batch", "prefix"), MODE_CASES)
def test_worker_modes_and_prefix_match_peer(model, backend, qname, layout, mode, batch, prefix):
    """Disaggregated worker modes (memory differs per mode) and cached prefixes."""
    pytest.importorskip("aiconfigurator_core")
    isl, osl = 3000, 400
    pm = peer_oracle.peer_model(resolve_model(model), layout, QUANTS[qname], backend)
    s = peer_oracle.peer_static(pm, backend, batch, isl, osl, mode, prefix=prefix)
    lops = build_layout_ops(_setup(model, backend, qname), [layout], skip_invalid=False)
    cand = Candidates(np.array([0]), np.array([batch]), np.array([0]))
    ours = run_static(_db(backend), lops, cand, Workload(isl, osl, prefix), mode)
    assert ours.context_ms[0] == pytest.approx(sum(s.get_context_latency_dict().values()), rel=0.02)
    assert ours.generation_ms[0] == pytest.approx(sum(s.get_generation_latency_dict().values()), rel=0.02)
    assert ours.memory.total[0] == pytest.approx(s.get_memory()["total"], rel=0.02)
    assert bool(ours.memory.kv_oom[0]) == s.check_kv_cache_oom() and bool(ours.memory.oom[0]) == s.check_oom()
    row = peer_oracle.summary_row(s)
    assert ours.tokens_per_s_per_gpu[0] == pytest.approx(float(row["tokens/s/gpu"]), rel=0.02, abs=1e-3)
