"""Context parallelism of an MLA model (DeepSeek-V3, SGLang, cp > 1) against aiconfigurator 0.12.0
run as a black box.

The 9 layouts of the peer's default SGLang agg/prefill sweep (tp = dp = 1, moe_tp * moe_ep = cp in
{2, 4, 8}) on h200_sxm, SGLang 0.5.14: 8 on the fused graph (its context MLA zigzagged over the
cp ranks, MoE dispatch all-gather + reduce-scatter of the whole prompt) and ep8 cp8 on the DeepEP
wide-EP graph (wide-EP MLA zigzagged, DeepEP context all-to-all at attention tp = tp * cp). The
peer's model is built with ``cp_size`` and priced through its static, static prefill and agg
sessions vs servopt's graphs (``models.context_parallel``). Each test prints the points compared
and the worst relative error; the target is 1%, the pricing is exact up to float rounding.
"""

from __future__ import annotations

from functools import cache

import peer_oracle
import pytest
from fidelity_points import Worst, one

from servopt.evaluate.agg import run_agg
from servopt.evaluate.candidates import ModelSetup, Workload, build_layout_ops
from servopt.evaluate.static import run_static
from servopt.hardware import load_system
from servopt.models.ops import Family, QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model
from servopt.perf_db.database import open_database

pytestmark = pytest.mark.peer

SYSTEM = "h200_sxm"
BACKEND = "sglang"
VERSION = peer_oracle.PEER_VERSIONS[BACKEND]
MODEL = "DEEPSEEK_V3"
QUANT = QuantModes("fp8_block", "fp8_block", "fp8", "float16")
REL_TOL = 1e-6
ROW_TOL = 1e-4  # the peer's agg row is rounded to 3 decimals
LAYOUTS = [Layout(1, 1, 1, mtp, cp // mtp, cp) for cp in (2, 4, 8) for mtp in (1, 2, 4, 8) if mtp <= cp]
# EP 8 is the one the data's DeepEP coverage puts on the wide-EP graph (the peer's search agrees:
# tests/search/test_coverage_audit.py); the peer's SGLang wide-EP MLA table is fp8_block.
WIDE_EP = 8
WIDE_COMM = {"context": "deepep_ht", "generation": "deepep_ll"}


@cache
def _db():
    return open_database(SYSTEM, BACKEND, VERSION)


def _lops(layout: Layout, role: str):
    setup = ModelSetup(resolve_model(MODEL), BACKEND, QUANT, load_system(SYSTEM), VERSION)
    lops = build_layout_ops(setup, [layout], skip_invalid=False, db=_db(), role=role)
    ops = lops.ops[0]
    wide = any(op.family is Family.MOE_A2A for op in ops.context)
    assert wide == (layout.moe_ep == WIDE_EP), layout.label
    return lops


def _peer_model(layout: Layout):
    peer_oracle._quiet()
    from aiconfigurator_core.sdk import common, config
    from aiconfigurator_core.sdk.models import get_model

    wide = layout.moe_ep == WIDE_EP
    mc = config.ModelConfig(
        tp_size=layout.tp,
        pp_size=layout.pp,
        attention_dp_size=layout.dp,
        moe_tp_size=layout.moe_tp,
        moe_ep_size=layout.moe_ep,
        cp_size=layout.cp,
        gemm_quant_mode=common.GEMMQuantMode.fp8_block,
        moe_quant_mode=common.MoEQuantMode.fp8_block,
        kvcache_quant_mode=common.KVCacheQuantMode.fp8,
        fmha_quant_mode=common.FMHAQuantMode.fp8_block if wide else common.FMHAQuantMode.bfloat16,
    )
    if wide:
        mc.moe_comm_backend = WIDE_COMM
        mc.num_gpus_per_node = 8
        mc.system = SYSTEM
    return get_model(resolve_model(MODEL).hf_id, mc, BACKEND)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.label)
def test_static_prefill_matches_peer(layout):
    """Prefill worker TTFT and memory over isl (odd: the zigzag chunk rounds up), batch and a
    cached prefix."""
    pytest.importorskip("aiconfigurator_core", reason="the peer (aiconfigurator-core) is the oracle")
    lops = _lops(layout, "prefill")
    peer_model = _peer_model(layout)
    worst = Worst(f"{MODEL} {layout.label} static_ctx", REL_TOL)
    for isl, batch, prefix in ((4000, 1, 0), (4001, 2, 0), (16000, 1, 0), (1000, 8, 0), (4000, 2, 1000)):
        r = run_static(_db(), lops, one(batch), Workload(isl, 2, prefix), "static_ctx")
        s = peer_oracle.peer_static(peer_model, BACKEND, batch, isl, 2, mode="static_ctx", prefix=prefix)
        worst.check("ttft", float(r.ttft_ms[0]), sum(s.get_context_latency_dict().values()))
        worst.check("memory", float(r.memory.total[0]), s.get_memory()["total"])
    worst.report()


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.label)
def test_agg_matches_peer(layout):
    """Aggregated workers: static TTFT / TPOT (decode is tp 1's), and the IFB rows whose mixed steps
    price the chunk's context ops over the cp ranks."""
    pytest.importorskip("aiconfigurator_core", reason="the peer (aiconfigurator-core) is the oracle")
    lops = _lops(layout, "agg")
    peer_model = _peer_model(layout)
    worst = Worst(f"{MODEL} {layout.label} agg", REL_TOL)
    for isl, osl, batch in ((4000, 200, 1), (3001, 100, 4)):
        r = run_static(_db(), lops, one(batch), Workload(isl, osl))
        s = peer_oracle.peer_static(peer_model, BACKEND, batch, isl, osl)
        worst.check("ttft", float(r.ttft_ms[0]), sum(s.get_context_latency_dict().values()))
        worst.check("tpot", float(r.tpot_ms[0]), sum(s.get_generation_latency_dict().values()) / (osl - 1))
    for batch, ctx in ((8, 4000), (32, 2000)):
        row = peer_oracle.summary_row(peer_oracle.peer_agg(peer_model, BACKEND, batch, ctx, 4000, 1000))
        r = run_agg(_db(), lops, one(batch, ctx), Workload(4000, 1000))
        worst.check("agg ttft", float(r.ttft_ms[0]), row["ttft"], ROW_TOL)
        worst.check("agg tpot", float(r.tpot_ms[0]), row["tpot"], ROW_TOL)
        worst.check("agg tokens/s/gpu", float(r.tokens_per_s_per_gpu[0]), row["tokens/s/gpu"], ROW_TOL)
    worst.report()
