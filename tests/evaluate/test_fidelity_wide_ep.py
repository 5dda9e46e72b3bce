"""Large-EP fidelity against aiconfigurator 0.12.0: DeepSeek-V3 on h200_sxm/trtllm, tp1 dp=ep in
{8, 16, 32, 64}, the peer's own large-EP graph (DeepEP HT prefill, DeepEP LL decode) through its
static session vs servopt's wide-EP graph on its own database. TTFT, TPOT and memory within 0.1%
(they agree to rounding)."""

from __future__ import annotations

from functools import cache

import numpy as np
import peer_oracle
import pytest

from servopt.evaluate.candidates import Candidates, ModelSetup, Workload, build_layout_ops
from servopt.evaluate.static import run_static
from servopt.hardware import load_system
from servopt.models.ops import Family, QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model
from servopt.perf_db.database import open_database

pytestmark = pytest.mark.peer

SYSTEM = "h200_sxm"
VERSION = peer_oracle.PEER_VERSIONS["trtllm"]
FP8_BLOCK = QuantModes("fp8_block", "fp8_block", "fp8", "float16")
REL_TOL = 1e-3
CASES = [
    (ep, batch, isl, osl)
    for ep, batch, (isl, osl) in [
        (8, 1, (4000, 1000)),
        (8, 48, (1024, 128)),
        (16, 8, (4000, 1000)),
        (16, 48, (4000, 1000)),
        (16, 128, (1024, 128)),
        (32, 48, (8000, 500)),
        (32, 1, (1024, 128)),
        (64, 44, (4000, 1000)),
        (64, 128, (2000, 64)),
    ]
]


@cache
def _db():
    return open_database(SYSTEM, "trtllm", VERSION)


def _setup() -> ModelSetup:
    return ModelSetup(resolve_model("DEEPSEEK_V3"), "trtllm", FP8_BLOCK, load_system(SYSTEM), VERSION)


def _peer_model(layout: Layout):
    """The peer's DeepSeek-V3 on its large-EP graph for ``layout``."""
    peer_oracle._quiet()
    from aiconfigurator_core.sdk import common, config
    from aiconfigurator_core.sdk.models import get_model

    mc = config.ModelConfig(
        tp_size=layout.tp,
        pp_size=layout.pp,
        attention_dp_size=layout.dp,
        moe_tp_size=layout.moe_tp,
        moe_ep_size=layout.moe_ep,
        gemm_quant_mode=common.GEMMQuantMode.fp8_block,
        moe_quant_mode=common.MoEQuantMode.fp8_block,
        kvcache_quant_mode=common.KVCacheQuantMode.fp8,
        fmha_quant_mode=common.FMHAQuantMode.bfloat16,
    )
    # What the peer's task resolves for these tuples from the same data coverage.
    mc.moe_comm_backend = {"context": "trtllm_deepep_ht", "generation": "trtllm_deepep_ll"}
    mc.num_gpus_per_node = 8
    mc.system = SYSTEM
    return get_model("deepseek-ai/DeepSeek-V3", mc, "trtllm")


def _peer(layout: Layout, batch: int, isl: int, osl: int):
    s = peer_oracle.peer_static(_peer_model(layout), "trtllm", batch, isl, osl)
    ttft = sum(s.get_context_latency_dict().values())
    tpot = sum(s.get_generation_latency_dict().values()) / (osl - 1)
    return ttft, tpot, s.get_memory()["total"]


@pytest.mark.parametrize(("ep", "batch", "isl", "osl"), CASES)
def test_static_matches_peer(ep, batch, isl, osl):
    pytest.importorskip("aiconfigurator_core", reason="the peer (aiconfigurator-core) is the oracle")
    layout = Layout(1, 1, ep, 1, ep)
    lops = build_layout_ops(_setup(), [layout], skip_invalid=False, db=_db(), role="decode")
    # The layout really is priced on the all-to-all graph.
    families = {op.family for op in lops.ops[0].generation}
    assert Family.MOE_A2A in families and Family.MOE_DISPATCH not in families
    r = run_static(
        _db(), lops, Candidates(np.array([0]), np.array([batch]), np.array([0])), Workload(isl, osl)
    )
    ours = (float(r.ttft_ms[0]), float(r.tpot_ms[0]), float(r.memory.total[0]))
    for name, a, b in zip(("ttft", "tpot", "memory"), ours, _peer(layout, batch, isl, osl), strict=True):
        assert a == pytest.approx(b, rel=REL_TOL), name


@pytest.mark.parametrize(("ep", "batch", "ctx"), [(16, 32, 4000), (32, 64, 8000), (8, 16, 4000)])
def test_agg_matches_peer(ep, batch, ctx):
    pytest.importorskip("aiconfigurator_core", reason="the peer (aiconfigurator-core) is the oracle")
    from servopt.evaluate.agg import run_agg

    layout = Layout(1, 1, ep, 1, ep)
    row = peer_oracle.summary_row(peer_oracle.peer_agg(_peer_model(layout), "trtllm", batch, ctx, 4000, 1000))
    lops = build_layout_ops(_setup(), [layout], skip_invalid=False, db=_db(), role="agg")
    r = run_agg(
        _db(), lops, Candidates(np.array([0]), np.array([batch]), np.array([ctx])), Workload(4000, 1000)
    )
    assert float(r.ttft_ms[0]) == pytest.approx(row["ttft"], rel=REL_TOL)
    assert float(r.tpot_ms[0]) == pytest.approx(row["tpot"], rel=REL_TOL)
    assert float(r.tokens_per_s_per_gpu[0]) == pytest.approx(row["tokens/s/gpu"], rel=REL_TOL)
