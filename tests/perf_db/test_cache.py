"""The build cache: reused when the sources are unchanged, rebuilt when stale or corrupt."""

from __future__ import annotations

import numpy as np
import pytest

from servopt.perf_db import cache
from servopt.perf_db.database import open_database


def _probe(db):
    return db.generation_attention_ms("bfloat16", [1, 33], [1000, 5000], 32, 8, 128)


def test_second_open_is_served_from_the_cache(tmp_path):
    first = open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    assert not first.from_cache
    files = list((tmp_path / "perfdb").glob("*.bin"))
    assert [f.name for f in files] == ["h200_sxm__sglang__0.5.14.bin"]
    second = open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    assert second.from_cache
    np.testing.assert_array_equal(_probe(first), _probe(second))


def test_corrupt_cache_is_rebuilt_not_trusted(tmp_path):
    db = open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    path = tmp_path / "perfdb" / "h200_sxm__sglang__0.5.14.bin"
    path.write_bytes(path.read_bytes()[:5000])  # truncated
    rebuilt = open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    assert not rebuilt.from_cache
    np.testing.assert_array_equal(_probe(db), _probe(rebuilt))
    path.write_bytes(b"not a cache file at all")
    assert not open_database("h200_sxm", "sglang", cache_dir=str(tmp_path)).from_cache
    assert open_database("h200_sxm", "sglang", cache_dir=str(tmp_path)).from_cache


def test_stale_fingerprint_forces_a_rebuild(tmp_path):
    open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    path = tmp_path / "perfdb" / "h200_sxm__sglang__0.5.14.bin"
    _, arrays = cache.read(path)
    cache.save(path, arrays, "some-older-source-state")
    assert cache.read(path)[0] == "some-older-source-state"
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
    assert (tmp_path / "perfdb" / "h200_sxm__sglang__0.5.14.bin").is_file()


def test_cached_arrays_come_back_equal_writable_and_aligned(tmp_path):
    arrays = {
        "f": np.linspace(0.0, 1.0, 7),
        "i2": np.arange(12, dtype=np.int64).reshape(3, 4),
        "u8": np.array([1, 0, 1], dtype=np.uint8),
        "keys": np.array(["bfloat16", "fp8"]),
        "info": np.array('{"a": 1}'),
        "empty": np.empty((0, 3)),
    }
    path = tmp_path / "c.bin"
    cache.save(path, arrays, "fp-1")
    assert cache.load(path, "fp-2") is None
    back = cache.load(path, "fp-1")
    assert back.keys() == arrays.keys()
    for k, a in arrays.items():
        assert back[k].dtype == a.dtype and back[k].shape == a.shape, k
        np.testing.assert_array_equal(back[k], a)
        assert back[k].flags.writeable and back[k].flags.aligned and back[k].flags.c_contiguous, k
    path.write_bytes(path.read_bytes()[:-8])  # truncated inside the last array
    with pytest.raises(cache.Damaged):
        cache.read(path)
    assert cache.load(path, "fp-1") is None
    assert not path.exists() and path.with_name("c.bin.damaged").is_file()
    assert cache.read(path) is None
