"""End to end: DeepSeek-V3 on h200_sxm/trtllm, default search (no flag). The data covers large EP,
so the answer uses it and is never below the peer's (aiconfigurator 0.12.0: 317.25 tokens/s/gpu on
32 GPUs with a tp1 dp16 ep16 decode worker; 382.19 on 512)."""

from __future__ import annotations

import pytest

from servopt.config import default_experiments
from servopt.pipeline import run_experiments

PEER_BEST = {32: 317.25, 512: 382.1895}


@pytest.mark.parametrize("total_gpus", [32, 512])
def test_deepseek_v3_default_search_uses_large_ep(total_gpus):
    doc = run_experiments(default_experiments("DEEPSEEK_V3", total_gpus, "h200_sxm")).to_json()
    best = doc["best"]
    assert best["tokens_per_s_per_gpu"] >= PEER_BEST[total_gpus] - 1e-9
    assert best["mode"] == "disagg"
    assert best["decode_tp"] == 1 and best["decode_moe_tp"] == 1
    assert best["decode_dp"] == best["decode_moe_ep"] > 8  # attention DP x EP across nodes
