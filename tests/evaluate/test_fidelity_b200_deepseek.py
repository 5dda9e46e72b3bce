"""DeepSeek-R1 decode on b200_sxm / TRT-LLM 1.3.0rc20 against aiconfigurator 0.12.0, by layout.

The InferenceX DeepSeek-R1 B200 TRT-LLM rows (``docs/reality.md``, "What the mean-field model
cannot explain") are predicted high with experts split by tensor parallelism and low with expert
parallelism, FP8 only. This pins that servopt's decode step at those layouts is the peer's on the
same data, op list and tables alike, so the gap is the data's (the fp8_block MoE rows are DeepGEMM's),
not servopt's op model: tp8 with moe_tp 8, tp8 with moe_ep 8 and tp4 with moe_tp 4, in the FP8
(fp8_block, fp8 KV) and NVFP4 checkpoints, 4 requests (the rows' light load).

Target: static_gen TPOT within 1% of the peer's.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import peer_oracle
import pytest

from servopt.evaluate.candidates import Candidates, ModelSetup, Workload, build_layout_ops
from servopt.evaluate.static import run_static
from servopt.hardware import load_system
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model
from servopt.perf_db.database import open_database

pytestmark = pytest.mark.peer

SYSTEM = "b200_sxm"
BACKEND = "trtllm"
VERSION = "1.3.0rc20"
MODEL = "DEEPSEEK_R1"
QUANTS = {
    "fp8_block": QuantModes("fp8_block", "fp8_block", "fp8", "float16"),
    "nvfp4": QuantModes("nvfp4", "nvfp4", "fp8", "float16"),
}
LAYOUTS = (Layout(8, 1, 1, 8, 1), Layout(8, 1, 1, 1, 8), Layout(4, 1, 1, 4, 1))
BATCH, ISL, OSL = 4, 1024, 1024


@cache
def _db():
    return open_database(SYSTEM, BACKEND, VERSION)


@pytest.mark.parametrize("qname", sorted(QUANTS))
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.label)
def test_decode_step_matches_peer(layout, qname):
    pytest.importorskip("aiconfigurator_core")
    arch = resolve_model(MODEL)
    quant = QUANTS[qname]
    pm = peer_oracle.peer_model(arch, layout, quant, BACKEND)
    s = peer_oracle.peer_static(pm, BACKEND, BATCH, ISL, OSL, mode="static_gen", system=SYSTEM)
    peer_tpot = sum(s.get_generation_latency_dict().values()) / (OSL - 1)

    setup = ModelSetup(arch, BACKEND, quant, load_system(SYSTEM), VERSION)
    lops = build_layout_ops(setup, [layout], skip_invalid=False)
    ours = run_static(
        _db(), lops, Candidates(np.array([0]), np.array([BATCH]), np.array([0])), Workload(ISL, OSL)
    )
    assert float(ours.tpot_ms[0]) == pytest.approx(peer_tpot, rel=0.01)
