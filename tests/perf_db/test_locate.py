"""Locating aiconfigurator-core's data and its queryable versions."""

from __future__ import annotations

import pytest

from servopt.errors import UnknownNameError
from servopt.perf_db import locate


def test_peer_data_is_found():
    assert (locate.system_data_dir("h200_sxm") / "gemm").is_dir()


def test_version_ordering_follows_pep440():
    ordered = ["0.1.dev5", "0.5.6.post2", "0.5.9", "0.5.10", "1.3.0rc10", "1.3.0rc20", "1.3.0", "1.3.1"]
    assert sorted(reversed(ordered), key=locate.version_key) == ordered


def test_slots_current_and_next():
    slots = locate.version_slots("h200_sxm", "trtllm")
    assert slots["current"] == "1.3.0rc20" and slots["next"] == "1.3.0rc23"
    assert locate.resolve_version("h200_sxm", "h200_sxm", "trtllm", None) == "1.3.0rc20"
    assert locate.resolve_version("h200_sxm", "h200_sxm", "trtllm", "next") == "1.3.0rc23"


def test_override_systems_have_no_next():
    assert locate.version_slots("a100_sxm", "trtllm") == {"current": "1.0.0"}


def test_unknown_version_lists_the_queryable_ones():
    with pytest.raises(UnknownNameError, match=r"allowed: 1\.3\.0rc20, 1\.3\.0rc23, current, next"):
        locate.resolve_version("h200_sxm", "h200_sxm", "trtllm", "1.3.0rc10")


def test_system_yaml_data_dir_is_read_off_its_line_or_parsed(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("gpu:\n  mem: 1\ndata_dir: data/x_sxm # relative\nnode: {}\n")
    quoted = tmp_path / "quoted.yaml"
    quoted.write_text("data_dir: 'data/y sxm'\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text("gpu:\n  data_dir: data/not_top_level\n")
    assert locate._data_dir_entry(plain) == "data/x_sxm"
    assert locate._data_dir_entry(quoted) == "data/y sxm"
    assert locate._data_dir_entry(nested) is None
    for path in sorted(locate.systems_root().glob("*.yaml")):
        spec = locate.load_yaml(path)
        expected = str(spec["data_dir"]) if isinstance(spec, dict) and "data_dir" in spec else None
        assert locate._data_dir_entry(path) == expected, path.name


def test_yaml_memo_equals_the_parse_and_follows_edits(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVOPT_CACHE_DIR", str(tmp_path / "cache"))
    doc = tmp_path / "m.yaml"
    doc.write_text("groups:\n  - {op_file: a.txt, tier: shared}\n")
    first = locate.load_yaml_memo(doc)
    assert first == locate.load_yaml(doc) == {"groups": [{"op_file": "a.txt", "tier": "shared"}]}
    assert len(list((tmp_path / "cache" / "yaml").glob("*.json"))) == 1
    assert locate.load_yaml_memo(doc) == first  # from the memo
    doc.write_text("groups: []\n# edited\n")
    assert locate.load_yaml_memo(doc) == {"groups": []}
    manifest = locate.systems_root() / "perf_data_reuse_manifest.yaml"
    assert locate.load_yaml_memo(manifest) == locate.load_yaml(manifest)
