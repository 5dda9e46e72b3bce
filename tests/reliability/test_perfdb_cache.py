"""The perf-database cache file: any damage is noticed (CRC over header and arrays), set aside with
one warning and rebuilt; a stale or older-format file is rebuilt silently."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from servopt.perf_db import cache
from servopt.perf_db.database import open_database

ARRAYS = {
    "lat": np.linspace(1.0, 2.0, 1000),
    "idx": np.arange(64, dtype=np.int64).reshape(8, 8),
    "keys": np.array(["bfloat16", "fp8"]),
}


@pytest.fixture
def cached(tmp_path):
    path = tmp_path / "perfdb" / "x.bin"
    assert cache.save(path, ARRAYS, "fp")
    return path


def _damage(path, how: str) -> None:
    raw = bytearray(path.read_bytes())
    if how == "flip_data":
        raw[-100] ^= 0x01  # one bit of the last array
    elif how == "flip_header":
        at = raw.index(b'"fingerprint"')
        raw[at + 1] ^= 0x20
    elif how == "scale_floats":  # the probe: data altered, header intact
        head_len = int.from_bytes(raw[8:16], "little")
        header = json.loads(bytes(raw[cache.PRELUDE_BYTES : cache.PRELUDE_BYTES + head_len]))
        _, shape, offset = header["arrays"]["lat"]
        np.frombuffer(raw, np.float64, count=int(np.prod(shape)), offset=offset)[:] *= 0.6
    elif how == "zero_half":
        n = len(raw)
        raw[n // 4 : 3 * n // 4] = bytes(n // 2)
    elif how == "truncate":
        raw = raw[: len(raw) // 2]
    elif how == "empty":
        raw = bytearray()
    elif how == "garbage":
        raw = bytearray(b"not a cache file at all, but long enough to have a prelude")
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize(
    "how", ["flip_data", "flip_header", "scale_floats", "zero_half", "truncate", "empty", "garbage"]
)
def test_damage_is_set_aside_with_one_warning_never_used(cached, how, cache_warnings):
    _damage(cached, how)
    with pytest.raises(cache.Damaged):
        cache.read(cached)
    assert cache.load(cached, "fp") is None
    assert not cached.exists()
    assert cached.with_name("x.bin.damaged").is_file()
    (warning,) = cache_warnings()
    assert str(cached) in warning and "damaged" in warning


def test_a_wrong_shape_header_with_a_valid_checksum_is_damage_not_a_traceback(cached, cache_warnings):
    raw = bytearray(cached.read_bytes())
    head_len = int.from_bytes(raw[8:16], "little")
    start = cache.PRELUDE_BYTES
    header = json.dumps({"fingerprint": "fp", "arrays": [1, 2, 3]}).encode().ljust(head_len)
    raw[start : start + head_len] = header
    raw[16:24] = zlib.crc32(raw[start:]).to_bytes(8, "little")  # a consistent checksum
    cached.write_bytes(bytes(raw))
    assert cache.load(cached, "fp") is None
    assert len(cache_warnings()) == 1


def test_stale_and_older_format_files_rebuild_silently(cached, cache_warnings):
    assert cache.load(cached, "another-fingerprint") is None
    raw = bytearray(cached.read_bytes())
    raw[: len(cache.MAGIC)] = cache.OLDER_MAGICS[0]
    cached.write_bytes(bytes(raw))
    assert cache.read(cached) is None and cache.load(cached, "fp") is None
    assert cache_warnings() == []
    assert cached.exists()  # not damaged: simply overwritten by the rebuild


def test_intact_file_round_trips(cached):
    back = cache.load(cached, "fp")
    for k, a in ARRAYS.items():
        np.testing.assert_array_equal(back[k], a)


def test_altered_database_is_rebuilt_and_answers_as_before(tmp_path, cache_warnings):
    def probe(db):
        return db.generation_attention_ms("bfloat16", [1, 33], [1000, 5000], 32, 8, 128)

    built = open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    expected = probe(built)
    (path,) = (tmp_path / "perfdb").glob("*.bin")
    raw = bytearray(path.read_bytes())
    head_len = int.from_bytes(raw[8:16], "little")
    header = json.loads(bytes(raw[cache.PRELUDE_BYTES : cache.PRELUDE_BYTES + head_len]))
    for name, (dtype, shape, offset) in header["arrays"].items():
        if dtype == "<f8" and name.endswith(":leaf_lat"):
            np.frombuffer(raw, np.float64, count=int(np.prod(shape)), offset=offset)[:] *= 0.6
    path.write_bytes(bytes(raw))
    from servopt.perf_db import build

    build._LOADED.clear()  # this process's memo of loaded databases
    rebuilt = open_database("h200_sxm", "sglang", cache_dir=str(tmp_path))
    assert not rebuilt.from_cache
    np.testing.assert_array_equal(probe(rebuilt), expected)
    assert len(cache_warnings()) == 1
    assert open_database("h200_sxm", "sglang", cache_dir=str(tmp_path)).from_cache
