"""Parallel layout enumeration: the seed's rule, backend filters, defaults, and the peer as oracle."""

from __future__ import annotations

import itertools
import logging

import pytest

from servopt.errors import ServoptError, UnknownNameError
from servopt.models.parallel import (
    Layout,
    default_agg_lists,
    default_disagg_lists,
    enumerate_layouts,
)

X = [1, 2, 4, 8, 16]


def _naive(is_moe, backend, lists, num_experts=None, cps=(1,)):
    """Plain restatement of the rule, independent of the implementation's structure."""
    g, tps, pps, dps, mtps, meps = lists
    out = []
    for tp, pp, dp, mtp, mep, cp in itertools.product(
        tps, pps, dps if is_moe else [1], mtps if is_moe else [1], meps if is_moe else [1], cps
    ):
        if tp * pp * dp * cp not in g:
            continue
        if is_moe and tp * dp * cp != mtp * mep:
            continue
        if backend == "trtllm" and dp > 1 and tp > 1:
            continue
        if backend == "vllm" and mtp > 1 and mep > 1:
            continue
        if cp > 1 and (tp > 1 or dp > 1):  # SGLang: cp excludes attention TP and DP
            continue
        if num_experts and mep > num_experts:
            continue
        out.append((tp, pp, dp, mtp, mep, cp))
    return out


@pytest.mark.parametrize(
    ("backend", "cps"), [("trtllm", [1]), ("vllm", [1]), ("sglang", [1]), ("sglang", [1, 2, 4, 8])]
)
@pytest.mark.parametrize("is_moe", [False, True])
def test_matches_naive_rule(backend, cps, is_moe):
    lists = ([4, 8], [1, 2, 4, 8], [1, 2], [1, 2, 4, 8], [1, 2], [1, 2, 4, 8])
    got = enumerate_layouts(
        is_moe=is_moe,
        backend=backend,
        num_gpu_per_worker=lists[0],
        tp_list=lists[1],
        pp_list=lists[2],
        dp_list=lists[3],
        moe_tp_list=lists[4],
        moe_ep_list=lists[5],
        cp_list=cps,
    )
    assert [tuple(x) for x in got] == _naive(is_moe, backend, lists, cps=cps)
    assert all(isinstance(x, Layout) and x.gpus in (4, 8) for x in got)
    assert any(x.cp > 1 for x in got) == (cps != [1])


def test_layout_cp_field_label_and_columns():
    five = Layout(2, 1, 1, 1, 1)
    assert five.cp == 1 and five == Layout(2, 1, 1, 1, 1, 1)
    assert five.label == "tp2pp1dp1etp1ep1" and "cp" not in five.columns()
    cp = Layout(1, 2, 1, 1, 4, 4)
    assert cp.gpus == 8 and cp.label == "tp1pp2dp1etp1ep4cp4"
    assert cp.columns() == {"tp": 1, "pp": 2, "dp": 1, "moe_tp": 1, "moe_ep": 4, "cp": 4}


def test_cp_lists_refused_where_not_modelled():
    lists = {"num_gpu_per_worker": [2], "tp_list": [1], "pp_list": [1]}
    with pytest.raises(
        ServoptError, match=r"cp_list: \[1, 2\]: context parallelism .* sglang only .*allowed: \[1\]"
    ):
        enumerate_layouts(is_moe=False, backend="vllm", cp_list=[1, 2], **lists)
    with pytest.raises(ServoptError, match=r"cp_list: .*decode workers are not context-parallel"):
        enumerate_layouts(is_moe=False, backend="sglang", cp_list=[2], role="decode", **lists)
    with pytest.raises(ServoptError, match="cp_list: 0"):
        enumerate_layouts(is_moe=False, backend="sglang", cp_list=[0], **lists)
    got = enumerate_layouts(is_moe=False, backend="sglang", cp_list=[2], role="prefill", **lists)
    assert got == [Layout(1, 1, 1, 1, 1, 2)]


def test_seed_example_trtllm_moe():
    # The seed's exp_agg_full worker_config (DeepSeek-V3, trtllm).
    got = enumerate_layouts(
        is_moe=True,
        backend="trtllm",
        num_gpu_per_worker=[4, 8],
        tp_list=[1, 2, 4, 8],
        pp_list=[1],
        dp_list=[1, 2, 4, 8],
        moe_tp_list=[1],
        moe_ep_list=[1, 2, 4, 8],
    )
    assert got == [
        Layout(1, 1, 4, 1, 4),
        Layout(1, 1, 8, 1, 8),
        Layout(4, 1, 1, 1, 4),
        Layout(8, 1, 1, 1, 8),
    ]


def test_dense_ignores_moe_lists_and_num_experts_caps_ep():
    got = enumerate_layouts(
        is_moe=False,
        backend="trtllm",
        num_gpu_per_worker=[1, 2],
        tp_list=[1, 2, 4],
        pp_list=[1],
        dp_list=[2],
        moe_ep_list=[2],
    )
    assert got == [Layout(1, 1, 1, 1, 1), Layout(2, 1, 1, 1, 1)]
    moe = enumerate_layouts(
        is_moe=True,
        backend="sglang",
        num_gpu_per_worker=[8, 16],
        tp_list=[8, 16],
        pp_list=[1],
        dp_list=[1],
        moe_tp_list=[1],
        moe_ep_list=[8, 16],
        num_experts=8,
    )
    assert moe == [Layout(8, 1, 1, 1, 8)]


def test_log_line(caplog):
    with caplog.at_level(logging.DEBUG, logger="servopt.models.parallel"):
        enumerate_layouts(
            is_moe=False, backend="trtllm", num_gpu_per_worker=[1], tp_list=[1], pp_list=[1], role="decode"
        )
        enumerate_layouts(
            is_moe=False, backend="sglang", num_gpu_per_worker=[4], tp_list=[1], pp_list=[1], cp_list=[4]
        )
    lines = caplog.text.splitlines()
    assert any(
        line.endswith("Enumerated Disagg decode parallel config: tp=1, pp=1, dp=1, moe_tp=1, moe_ep=1")
        for line in lines
    )
    assert any(
        line.endswith("Enumerated Agg parallel config: tp=1, pp=1, dp=1, moe_tp=1, moe_ep=1, cp=4")
        for line in lines
    )


def test_bad_input():
    with pytest.raises(UnknownNameError, match="backend_name"):
        enumerate_layouts(is_moe=False, backend="tensorrt", num_gpu_per_worker=[1], tp_list=[1], pp_list=[1])
    with pytest.raises(ServoptError, match="tp_list: 0"):
        enumerate_layouts(is_moe=False, backend="vllm", num_gpu_per_worker=[1], tp_list=[0], pp_list=[1])
    with pytest.raises(ServoptError, match="num_gpu_per_worker"):
        enumerate_layouts(is_moe=False, backend="vllm", num_gpu_per_worker=[], tp_list=[1], pp_list=[1])


def test_defaults_and_clip():
    assert default_agg_lists(is_moe=False, backend="trtllm").tp_list == [1, 2, 4, 8]
    assert default_agg_lists(is_moe=False, backend="trtllm", system="gb200").tp_list == X
    assert default_agg_lists(is_moe=True, backend="vllm").clipped(8).num_gpu_per_worker == [1, 2, 4, 8]
    p, d = default_disagg_lists(is_moe=True, backend="sglang")
    assert p.moe_ep_list == X and d.dp_list == X
    assert list(p.cp_list) == list(d.cp_list) == [1]
    p, d = default_disagg_lists(is_moe=True, backend="sglang", context_parallel=True)
    assert list(p.cp_list) == [1, 2, 4, 8] and list(d.cp_list) == [1]
    assert list(default_agg_lists(is_moe=False, backend="sglang", context_parallel=True).cp_list) == [
        1,
        2,
        4,
        8,
    ]
    # Only SGLang has a cp sweep.
    assert list(default_agg_lists(is_moe=False, backend="trtllm", context_parallel=True).cp_list) == [1]


@pytest.mark.peer
@pytest.mark.parametrize("backend", ["trtllm", "vllm", "sglang"])
@pytest.mark.parametrize("is_moe", [False, True])
def test_equals_peer(backend, is_moe):
    utils = pytest.importorskip("aiconfigurator_core.sdk.utils")
    common = pytest.importorskip("aiconfigurator_core.sdk.common")
    # With the cp sweep (SGLang only); the peer's SGLang model builder then drops cp > 1 tuples with
    # attention tp or dp > 1 ("CP and attention TP/DP are mutually exclusive on sglang").
    lists = default_agg_lists(is_moe=is_moe, backend=backend, context_parallel=True)
    ours = enumerate_layouts(
        is_moe=is_moe,
        backend=backend,
        num_gpu_per_worker=lists.num_gpu_per_worker,
        tp_list=lists.tp_list,
        pp_list=[1, 2],
        dp_list=lists.dp_list,
        moe_tp_list=lists.moe_tp_list,
        moe_ep_list=lists.moe_ep_list,
        cp_list=lists.cp_list,
    )
    peer = utils.enumerate_parallel_config(
        num_gpu_list=lists.num_gpu_per_worker,
        tp_list=lists.tp_list,
        pp_list=[1, 2],
        dp_list=lists.dp_list,
        moe_tp_list=lists.moe_tp_list,
        moe_ep_list=lists.moe_ep_list,
        cp_list=list(lists.cp_list),
        is_moe=is_moe,
        backend=common.BackendName[backend],
    )
    built = [tuple(p[:6]) for p in peer if p[5] == 1 or (p[0] == 1 and p[2] == 1)]
    assert sorted(tuple(x) for x in ours) == sorted(built)
    assert any(x.cp > 1 for x in ours) == (backend == "sglang")


@pytest.mark.peer
@pytest.mark.parametrize("backend", ["trtllm", "vllm", "sglang"])
@pytest.mark.parametrize("is_moe", [False, True])
def test_default_disagg_lists_equal_peer(backend, is_moe):
    task_v2 = pytest.importorskip("aiconfigurator.sdk.task_v2")
    peer_p, peer_d = task_v2.build_disagg_parallel_lists(
        backend_name=backend,
        is_moe=is_moe,
        prefill_system="h200_sxm",
        decode_system="h200_sxm",
        prefill_enable_wideep=False,
        decode_enable_wideep=False,
        moe_backend=None,
    )
    ours_p, ours_d = default_disagg_lists(is_moe=is_moe, backend=backend)
    for ours, peer in ((ours_p, peer_p), (ours_d, peer_d)):
        assert {k: v for k, v in ours._asdict().items() if k != "cp_list"} == peer


def test_large_ep_ladders_union_into_the_defaults():
    from servopt.models.parallel import default_agg_lists, default_disagg_lists

    fused = default_agg_lists(is_moe=True, backend="trtllm")
    assert default_agg_lists(is_moe=True, backend="trtllm", large_ep_eps=()) == fused
    agg = default_agg_lists(is_moe=True, backend="trtllm", large_ep_eps=[16, 32])
    assert agg.num_gpu_per_worker == [1, 2, 4, 8, 16, 32, 64]
    assert agg.moe_tp_list == [1, 2, 4, 8, 16]
    # vLLM has no static ladder: pure-EP tuples at the covered sizes.
    vllm = default_agg_lists(is_moe=True, backend="vllm", large_ep_eps=[16, 32])
    assert vllm.moe_ep_list == [1, 2, 4, 8, 16, 32] and vllm.tp_list == [1, 2, 4, 8, 16]
    prefill, decode = default_disagg_lists(
        is_moe=True, backend="trtllm", prefill_large_ep_eps=[16], decode_large_ep_eps=[]
    )
    assert prefill.dp_list == [1, 2, 4, 8, 16, 32]
    assert decode == default_disagg_lists(is_moe=True, backend="trtllm")[1]
    # The explicit wide-EP lists win over the data-driven union.
    _, wide = default_disagg_lists(
        is_moe=True, backend="trtllm", decode_wide_ep=True, decode_large_ep_eps=[16]
    )
    assert wide.num_gpu_per_worker == [4, 8, 16, 32, 64]
    # Dense models never get a ladder.
    assert default_agg_lists(is_moe=False, backend="trtllm", large_ep_eps=[16]).dp_list == [1]
