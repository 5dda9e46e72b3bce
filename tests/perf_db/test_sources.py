"""Source resolution, table reading and merging."""

from __future__ import annotations

import json

import numpy as np
import pytest

from servopt.perf_db import locate, sources
from servopt.perf_db.tables import TABLES, first_wins, read_parquet

SYSTEM = "h200_sxm"


@pytest.mark.peer
@pytest.mark.parametrize("backend", locate.BACKENDS)
def test_source_lists_match_the_peer_resolver(backend):
    core = pytest.importorskip("aiconfigurator_core", reason="the peer's resolver is the oracle")
    root, data = str(locate.systems_root()), locate.system_data_dir(SYSTEM)
    for version in locate.version_slots(SYSTEM, backend).values():
        for name, spec in TABLES.items():
            if spec.framework_agnostic:
                continue
            primary = (
                sources._op_file_path(data, backend, version, spec.filename)
                or data / backend / version / spec.filename
            )
            report = json.loads(
                core.resolve_op_sources_report_json(
                    root,
                    str(data),
                    backend,
                    version,
                    spec.filename,
                    str(primary),
                    enable_shared_layer=True,
                    strict=False,
                )
            )
            expected = [
                (r["path"], None if r["ks_filter"] is None else frozenset(r["ks_filter"]))
                for r in report["records"]
                if r["exists"]
            ]
            got = [
                (str(s.path), s.kernel_sources)
                for s in sources.resolve_sources(SYSTEM, backend, version, name, "2.26.2")
            ]
            assert got == expected, (backend, version, name)


def test_newer_version_backfills_from_older_ones():
    srcs = sources.resolve_sources(SYSTEM, "trtllm", "1.3.0rc23", "moe_perf", "2.26.2")
    assert [(s.channel, s.version) for s in srcs] == [
        ("primary", "1.3.0rc23"),
        ("fallback", "1.3.0rc20"),
        ("fallback", "1.3.0rc10"),
    ]


def test_cross_backend_rows_are_kernel_filtered():
    srcs = sources.resolve_sources(SYSTEM, "vllm", "0.24.0", "mla_context_module_perf", "2.26.2")
    assert srcs[0].channel == "primary"
    cross = [s for s in srcs if s.channel == "cross_backend"]
    assert cross and all(s.kernel_sources for s in cross)
    merged = sources.merge_sources(srcs, "mla_context_module_perf")
    from_trtllm = merged["kernel_source"] == "default"
    assert from_trtllm.any() and (~from_trtllm).any()


def test_first_source_wins_per_key():
    cols = {
        "gemm_dtype": np.array(["fp8", "fp8", "fp8"]),
        "m": np.array([1, 1, 2]),
        "n": np.array([8, 8, 8]),
        "k": np.array([8, 8, 8]),
        "latency": np.array([1.0, 9.0, 2.0]),
    }
    out = first_wins(cols, TABLES["gemm_perf"].key)
    assert out["latency"].tolist() == [1.0, 2.0]


def test_units_and_derived_columns():
    path = sources.resolve_sources(SYSTEM, "trtllm", "1.3.0rc20", "generation_attention_perf", "2.26.2")[
        0
    ].path
    cols = read_parquet(path, TABLES["generation_attention_perf"])
    np.testing.assert_array_equal(cols["seq"], cols["isl"] + cols["step"])
    mha = cols["num_heads"] == cols["num_key_value_heads"]
    assert (cols["n_kv_lookup"][mha] == 0).all() and (cols["n_kv_lookup"][~mha] > 0).all()
    assert cols["latency"].dtype == np.float64 and (cols["latency"] > 0).all()


def test_eager_allreduce_rows_are_dropped():
    srcs = sources.resolve_sources(SYSTEM, "vllm", "0.24.0", "custom_allreduce_perf", "2.26.2")
    merged = sources.merge_sources(srcs, "custom_allreduce_perf")
    assert not np.char.endswith(merged["kernel_source"], "_eager").any()
    assert len(merged["latency"]) == len(
        np.unique(np.stack([merged["num_gpus"], merged["message_size"]]), axis=1).T
    )


def test_load_table_for_the_gemm_module():
    cols = sources.load_table(SYSTEM, "trtllm", None, "gemm_perf")
    assert {"gemm_dtype", "m", "n", "k", "latency"} <= set(cols)
    assert len(cols["latency"]) > 100_000


def test_borrowed_rows_are_the_keys_older_versions_add():
    """Per source, the merged rows it contributed = its keys no earlier source holds (a set oracle)."""
    spec = TABLES["moe_perf"]
    srcs = sources.resolve_sources(SYSTEM, "sglang", "0.5.14", "moe_perf", "2.26.2")
    merged, counts = sources.merge_sources_counted(srcs, "moe_perf")
    seen: set = set()
    expected = []
    for source in srcs:
        cols = read_parquet(source.path, spec)
        keys = set(zip(*(cols[k].tolist() for k in spec.key), strict=True))
        expected.append(len(keys - seen))
        seen |= keys
    assert counts == expected and sum(counts) == len(merged["latency"])
    borrowed = sources.borrowed(srcs, counts)
    assert [(b["backend"], b["version"], b["channel"]) for b in borrowed] == [
        ("sglang", "0.5.10", "fallback")
    ]
    assert borrowed[0]["rows"] == counts[1] > 0


def test_a_version_with_its_own_table_borrows_nothing():
    srcs = sources.resolve_sources(SYSTEM, "sglang", "0.5.14", "gemm_perf", "2.26.2")
    _, counts = sources.merge_sources_counted(srcs, "gemm_perf")
    assert sources.borrowed(srcs, counts) == []
