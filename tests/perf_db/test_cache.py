"""The build cache: reused when the sources are unchanged, rebuilt when stale or corrupt."""

from __future__ import annotations

import numpy as np

from servopt.perf_db import cache
from servopt.perf_db.database import open_database


def _probe(db):
    return db.generation_attention_ms("bfloat16", [1, 33], [1000, 5000], 32, 8, 128)


def test_second_open_is_served_from_the_cache(tmp_path):
    first = open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    assert not first.from_cache
    files = list((tmp_path / "perfdb").glob("*.npz"))
    assert [f.name for f in files] == ["h200_sxm__sglang__0.5.14.npz"]
    second = open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    assert second.from_cache
    np.testing.assert_array_equal(_probe(first), _probe(second))


def test_corrupt_cache_is_rebuilt_not_trusted(tmp_path):
    db = open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    path = tmp_path / "perfdb" / "h200_sxm__sglang__0.5.14.npz"
    path.write_bytes(path.read_bytes()[:5000])  # truncated
    rebuilt = open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    assert not rebuilt.from_cache
    np.testing.assert_array_equal(_probe(db), _probe(rebuilt))
    path.write_bytes(b"not a zip file at all")
    assert not open_database("h200_sxm", "sglang", cache_dir=str(tmp_path)).from_cache
    assert open_database("h200_sxm", "sglang", cache_dir=str(tmp_path)).from_cache


def test_stale_fingerprint_forces_a_rebuild(tmp_path):
    open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    path = tmp_path / "perfdb" / "h200_sxm__sglang__0.5.14.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k != cache.FINGERPRINT_KEY}
    cache.save(path, arrays, "some-older-source-state")
    assert not open_database("h200_sxm", "sglang", cache_dir=str(tmp_path)).from_cache


def test_fingerprint_tracks_file_size_and_mtime(tmp_path):
    f = tmp_path / "t.parquet"
    f.write_bytes(b"x")
    a = cache.fingerprint("spec", [f])
    f.write_bytes(b"xy")
    assert cache.fingerprint("spec", [f]) != a
    assert cache.fingerprint("other spec", [f]) != cache.fingerprint("spec", [f])


def test_env_variable_selects_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SERVOPT_CACHE_DIR", str(tmp_path))
    open_database("h200_sxm", "sglang")
    assert (tmp_path / "perfdb" / "h200_sxm__sglang__0.5.14.npz").is_file()
