"""Attention kernel lanes: the walk order that picks which kernel's rows serve a slice."""

from __future__ import annotations

from servopt.perf_db import lanes


def test_framework_default_lane_is_tried_first():
    pinned, matched = lanes.framework_default("sglang", "0.5.16", 90)
    assert (pinned, matched) == ("fa3", True)
    walk = lanes.walk_order(
        "sglang", "0.5.14", 90, {"triton": (24, 3000), "fa3": (66, 30000)}, {}, ["triton", "fa3"]
    )
    assert walk == ["fa3", "triton"]


def test_without_a_map_entry_the_load_order_decides():
    assert lanes.framework_default("trtllm", "1.3.0rc20", 90) == (None, False)
    assert lanes.walk_order("trtllm", "1.3.0rc20", 90, {"b": (1, 1), "a": (9, 9)}, {}, ["b", "a"]) == [
        "b",
        "a",
    ]


def test_requested_version_lanes_rank_before_inherited_ones():
    shared = {"vllm_x": (3, 500), "vllm_y": (80, 50000), "donor": (90, 90000)}
    primary = {"vllm_x": (3, 500), "vllm_y": (80, 50000)}
    walk = lanes.walk_order("vllm", "0.24.0", 90, shared, primary, ["vllm_y", "vllm_x", "donor"])
    assert walk == ["vllm_y", "vllm_x", "donor"]
