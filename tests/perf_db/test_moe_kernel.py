"""MoE rows of a stated kernel measured under another backend: B200 TRT-LLM fp8_block from the
TRT-LLM-gen rows SGLang's table measured through FlashInfer."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from servopt.hardware import load_system
from servopt.perf_db import locate
from servopt.perf_db.database import open_database
from servopt.perf_db.moe_kernel import STATED_MOE_KERNELS, stated_moe_kernel, with_moe_kernel

# DeepSeek-R1's routed experts at a measured point: topk 8 of 256, hidden 7168, expert inter 2048.
SHAPE = dict(topk=8, num_experts=256, hidden_size=7168, inter_size=2048, distribution="power_law_1.01")
TRTLLM_GEN = STATED_MOE_KERNELS[("trtllm", "TRTLLM", "fp8_block")]


def parquet_ms(backend: str, version: str, kernel: str, quant: str, tp: int, ep: int, tokens: int) -> float:
    """The one row of the version's own moe_perf.parquet at that point, read directly."""
    data = locate.system_data_dir(load_system("b200_sxm").measured_data)
    (path,) = data.glob(f"*/{backend}/{version}/moe_perf.parquet")
    t = pq.read_table(path).to_pydict()
    hits = [
        t["latency"][i]
        for i in range(len(t["latency"]))
        if t["kernel_source"][i] == kernel
        and t["moe_dtype"][i] == quant
        and all(t[k][i] == v for k, v in SHAPE.items())
        and (t["moe_tp_size"][i], t["moe_ep_size"][i], t["num_tokens"][i]) == (tp, ep, tokens)
    ]
    assert len(hits) == 1, hits
    return hits[0]


@pytest.fixture(scope="module")
def b200(perf_cache):
    return open_database("b200_sxm", "trtllm", "1.3.0rc20", cache_dir=str(perf_cache))


def moe(db, quant, tp, ep, tokens):
    s = SHAPE
    args = (s["topk"], s["num_experts"], s["hidden_size"], s["inter_size"], tp, ep, tokens)
    return float(db.moe_ms(quant, s["distribution"], *args))


@pytest.mark.parametrize(("tp", "ep", "tokens"), [(8, 1, 4), (4, 1, 64), (1, 8, 16)])
def test_the_stated_kernel_prices_fp8_block_from_its_own_rows(b200, tp, ep, tokens):
    kernel = with_moe_kernel(b200, TRTLLM_GEN)
    gen = parquet_ms("sglang", "0.5.14", "sglang_flashinfer_trtllm_moe", "fp8_block", tp, ep, tokens)
    deepgemm = parquet_ms("trtllm", "1.3.0rc20", "deepgemm", "fp8_block", tp, ep, tokens)
    assert moe(kernel, "fp8_block", tp, ep, tokens) == pytest.approx(gen, rel=1e-9)
    # The engine's own database (what the search and cli estimate open) keeps DeepGEMM's rows.
    assert moe(b200, "fp8_block", tp, ep, tokens) == pytest.approx(deepgemm, rel=1e-9)
    assert not np.isclose(gen, deepgemm, rtol=0.05)


def test_other_quants_keep_the_engines_rows(b200):
    kernel = with_moe_kernel(b200, TRTLLM_GEN)
    for tokens in (4, 256):
        assert moe(kernel, "nvfp4", 8, 1, tokens) == moe(b200, "nvfp4", 8, 1, tokens)


def test_only_a_stated_backend_with_another_kernel_maps():
    assert stated_moe_kernel("trtllm", "TRTLLM", "fp8_block") is TRTLLM_GEN
    assert stated_moe_kernel("trtllm", "DEEPGEMM", "fp8_block") is None
    assert stated_moe_kernel("trtllm", None, "fp8_block") is None
    assert stated_moe_kernel("trtllm", "TRTLLM", "nvfp4") is None
    assert "FlashInfer in SGLang 0.5.14" in TRTLLM_GEN.note
