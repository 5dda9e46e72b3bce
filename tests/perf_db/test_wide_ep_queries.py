"""Large-EP tables: all-to-all and wide-EP expert compute vs the peer's own op queries (h200_sxm,
trtllm), plus the coverage probes and the rules the peer documents (units, dtype chain, node-1
substitute, distribution chain, singleton floor)."""

from __future__ import annotations

import numpy as np
import pytest

from servopt.errors import ServoptError
from servopt.perf_db.wide_ep_queries import a2a_pairs, compute_eps

DSV3 = dict(hidden=7168, topk=8, experts=256)


def test_a2a_latency_is_converted_from_microseconds(h200):
    """The moe_a2a collector writes microseconds; the first measured point reads back in ms."""
    import pyarrow.parquet as pq

    from servopt.perf_db import locate

    path = locate.system_data_dir("h200_sxm") / "comm/trtllm/1.3.0rc11/moe_a2a_perf.parquet"
    t = pq.read_table(path).to_pandas()
    row = t[(t.comm_backend == "trtllm_deepep_ll") & (t.phase == "dispatch") & (t.comm_dtype == "fp8")]
    row = row[(row.hidden_size == 7168) & (row.num_experts == 256) & (row.topk == 8)].iloc[0]
    got = h200.moe_a2a_ms("trtllm_deepep_ll", "dispatch", "fp8", 8, 1, 7168, 8, 256, int(row.num_tokens))
    assert float(got) == pytest.approx(row.latency / 1000.0, rel=1e-12)


def test_multi_node_deepep_reads_the_full_node_slice(h200):
    tokens = np.array([1, 48, 100, 4000, 100000])
    one_node = h200.moe_a2a_ms("trtllm_deepep_ll", "combine", "fp8", 8, 1, 7168, 8, 256, tokens)
    for ep, nodes in ((16, 2), (32, 4), (64, 8)):
        wide = h200.moe_a2a_ms("trtllm_deepep_ll", "combine", "fp8", ep, nodes, 7168, 8, 256, tokens)
        np.testing.assert_array_equal(wide, one_node)
    # Intra-node sizes that were not measured stay unanswerable (no substitute inside one node).
    lat = h200.moe_a2a_ms("trtllm_deepep_ll", "combine", "fp8", 4, 1, 7168, 8, 256, 48, missing="nan")
    assert np.isnan(lat)
    with pytest.raises(ServoptError, match="moe_a2a"):
        h200.moe_a2a_ms("trtllm_deepep_ll", "combine", "fp8", 4, 1, 7168, 8, 256, 48)


def test_a2a_dtype_chain(h200):
    exact = h200.moe_a2a_ms("trtllm_deepep_ll", "dispatch", "fp8", 8, 1, 7168, 8, 256, 64)
    alias = h200.moe_a2a_ms("trtllm_deepep_ll", "dispatch", "fp8_block", 8, 1, 7168, 8, 256, 64)
    assert float(alias) == float(exact)
    with pytest.raises(ServoptError, match="comm_dtype"):
        h200.moe_a2a_ms("trtllm_deepep_ll", "dispatch", "int4", 8, 1, 7168, 8, 256, 64)


def test_a2a_beyond_the_data_scales_linearly_with_tokens(h200):
    """Past the last measured token count the curve holds its utilisation (linear proxy)."""
    big = h200.moe_a2a_ms("trtllm_deepep_ht", "dispatch", "bfloat16", 8, 1, 7168, 8, 256, [131072, 262144])
    assert big[1] == pytest.approx(2.0 * big[0], rel=1e-9)


def test_coverage_probes(h200):
    assert h200.moe_a2a_pairs("trtllm_deepep_ll", "dispatch", "fp8", **DSV3) == {(8, 1)}
    assert h200.moe_a2a_pairs("trtllm_deepep_ht", "combine", "bfloat16", **DSV3) == {(8, 1)}
    assert h200.moe_a2a_pairs("trtllm_deepep_ht", "combine", "fp8", **DSV3) == set()
    assert h200.moe_a2a_pairs("trtllm_deepep_ll", "dispatch", "fp8", 4096, 8, 128) == set()
    assert h200.moe_expert_compute_eps("fp8_block", 7168, 2048, 8, 256) == {2, 4, 8, 16, 32, 64, 128, 256}
    assert h200.moe_expert_compute_eps("nvfp4", 7168, 2048, 8, 256) == set()
    assert 1 in h200.regular_moe_eps("fp8_block", 7168, 2048, 8, 256)


def test_probe_helpers_on_plain_columns():
    keys = {
        "comm_backend": np.array(["a", "a", "b"]),
        "phase": np.array(["dispatch", "combine", "dispatch"]),
        "comm_dtype": np.array(["fp8", "fp8", "bfloat16"]),
        "ep_size": np.array([8, 16, 8]),
        "node_num": np.array([1, 2, 1]),
        "hidden_size": np.array([7168, 7168, 7168]),
        "topk": np.array([8, 8, 8]),
        "num_experts": np.array([256, 256, 256]),
    }
    assert a2a_pairs(keys, "a", "dispatch", None, 7168, 8, 256) == {(8, 1)}
    assert a2a_pairs(keys, "a", "combine", "fp8", 7168, 8, 256) == {(16, 2)}
    assert a2a_pairs(keys, "b", "dispatch", "fp8", 7168, 8, 256) == set()
    assert a2a_pairs({}, "a", "dispatch", None, 7168, 8, 256) == set()
    comp = {
        "moe_dtype": np.array(["fp8_block", "fp8_block", "fp8_block"]),
        "hidden_size": np.array([7168, 7168, 7168]),
        "inter_size": np.array([2048, 2048, 2048]),
        "topk": np.array([8, 8, 8]),
        "num_experts": np.array([256, 256, 256]),
        "moe_tp_size": np.array([1, 1, 2]),
        "moe_ep_size": np.array([8, 16, 4]),
    }
    assert compute_eps(comp, "fp8_block", 7168, 2048, 8, 256) == {8, 16}
    assert compute_eps(comp, "nvfp4", 7168, 2048, 8, 256) == set()


def test_expert_compute_missing_quant_is_named(h200):
    with pytest.raises(ServoptError, match="moe_quant_mode"):
        h200.moe_expert_compute_ms("nvfp4", "power_law_1.01", 8, 256, 256, 7168, 2048, 16, 768)
    lat = h200.moe_expert_compute_ms(
        "nvfp4", "power_law_1.01", 8, 256, 256, 7168, 2048, 16, 768, missing="nan"
    )
    assert np.isnan(lat)


def test_expert_compute_distribution_falls_back(h200):
    """An unmeasured distribution reads the first collected one (no 'uniform' rows here)."""
    a = h200.moe_expert_compute_ms("fp8_block", "power_law_9.9", 8, 256, 256, 7168, 2048, 16, 768)
    first = h200.families["wideep_moe"].key_cols[2][0]
    b = h200.moe_expert_compute_ms("fp8_block", str(first), 8, 256, 256, 7168, 2048, 16, 768)
    assert float(a) == float(b)


def test_sol_database_has_no_large_ep_data(perf_cache):
    from servopt.perf_db.database import open_database

    db = open_database("h200_sxm", "trtllm", cache_dir=str(perf_cache), sol=True)
    assert db.moe_a2a_pairs("trtllm_deepep_ll", "dispatch", "fp8", **DSV3) == set()
    assert db.moe_expert_compute_eps("fp8_block", 7168, 2048, 8, 256) == set()
    assert np.isnan(
        db.moe_a2a_ms("trtllm_deepep_ll", "dispatch", "fp8", 16, 2, 7168, 8, 256, 48, missing="nan")
    )


# ------------------------------------------------------------------ fidelity vs the peer
POINTS = 600


@pytest.fixture(scope="module")
def peer_eval(h200):
    pytest.importorskip("aiconfigurator_core", reason="the peer (aiconfigurator-core) is the oracle")
    import logging

    logging.getLogger("aiconfigurator_core").setLevel(logging.ERROR)
    from aiconfigurator_core.sdk import common
    from aiconfigurator_core.sdk import operations as ops
    from aiconfigurator_core.sdk.engine import _evaluate_single_op
    from aiconfigurator_core.sdk.perf_database import get_database

    db = get_database("h200_sxm", "trtllm", h200.version)

    def one(make_op, x):
        try:
            return float(_evaluate_single_op(db, make_op(), is_context=True, batch_size=1, s=1, x=int(x)))
        except Exception:  # the peer's typed data miss
            return float("nan")

    def curve(make_op, tokens):
        """The peer's latency at every token count (a fresh op each time, as its session builds one)."""
        return [one(make_op, x) for x in tokens]

    return curve, ops, common


def _assert_matches_peer(mine, theirs):
    """Our curves equal the peer's to rounding, misses included, and the data answered enough."""
    mine = np.concatenate(mine)
    theirs = np.asarray(theirs)
    assert np.isfinite(theirs).sum() > len(theirs) // 3
    np.testing.assert_allclose(mine, theirs, rtol=1e-9, equal_nan=True)


def _tokens(rng, n):
    """Exact, interior and far-beyond-the-data token counts."""
    return np.concatenate(
        [
            rng.choice([1, 2, 16, 48, 128, 1024, 8192], n // 3),
            rng.integers(1, 20000, n // 3),
            rng.integers(20000, 400000, n - 2 * (n // 3)),
        ]
    )


@pytest.mark.peer
def test_a2a_matches_peer(h200, peer_eval):
    curve, ops, _ = peer_eval
    rng = np.random.default_rng(7)
    cases = [
        ("trtllm_deepep_ll", "dispatch", "fp8"),
        ("trtllm_deepep_ll", "combine", "fp8"),
        ("trtllm_deepep_ht", "dispatch", "bfloat16"),
        ("trtllm_deepep_ht", "combine", "bfloat16"),
        ("trtllm_deepep_ll", "dispatch", "fp8_block"),
    ]
    shapes = [(7168, 8, 256), (7168, 8, 384), (4096, 8, 256), (6144, 8, 256), (2048, 8, 128)]
    scales = [(8, 1), (16, 2), (64, 8), (4, 1)]
    mine, theirs = [], []
    for backend, phase, dtype in cases:
        for h, k, e in shapes:
            for ep, nodes in scales:
                tok = _tokens(rng, POINTS // 60)
                mine.append(h200.moe_a2a_ms(backend, phase, dtype, ep, nodes, h, k, e, tok, missing="nan"))

                def op(backend=backend, phase=phase, dtype=dtype, h=h, k=k, e=e, ep=ep, nodes=nodes):
                    return ops.MoEAllToAll(
                        "a", 1.0, phase=phase, comm_backend=backend, comm_dtype=dtype, hidden_size=h,
                        topk=k, num_experts=e, moe_ep_size=ep, node_num=nodes, sms=0, attention_tp_size=1,
                    )  # fmt: skip

                theirs += curve(op, tok)
    _assert_matches_peer(mine, theirs)


@pytest.mark.peer
def test_expert_compute_matches_peer(h200, peer_eval):
    curve, ops, common = peer_eval
    rng = np.random.default_rng(11)
    shapes = [(7168, 2048, 256, 256), (7168, 2048, 384, 384), (6144, 2048, 256, 256), (3072, 1536, 256, 288)]
    dists = ["power_law_1.01", "power_law_1.2_eplb", "uniform"]
    mine, theirs = [], []
    cases = [(q, *shape) for shape in shapes for q in ("fp8_block",)] + [("fp8", 7168, 2048, 256, 256)]
    for quant_mode, h, inter, e, slots in cases:
        for dist in dists:
            for ep in (2, 8, 16, 32, 64, 128, 3):
                tok = _tokens(rng, 12)
                mine.append(
                    h200.moe_expert_compute_ms(
                        quant_mode, dist, 8, e, slots, h, inter, ep, tok, missing="nan"
                    )
                )

                def op(h=h, inter=inter, e=e, slots=slots, dist=dist, ep=ep, q=quant_mode):
                    return ops.MoEExpertCompute(
                        "m", 1.0, hidden_size=h, inter_size=inter, topk=8, num_experts=e, moe_ep_size=ep,
                        quant_mode=common.MoEQuantMode[q], workload_distribution=dist,
                        attention_dp_size=1, inference_phase="generation", num_slots=slots, is_gated=True,
                    )  # fmt: skip

                theirs += curve(op, tok)
    _assert_matches_peer(mine, theirs)
