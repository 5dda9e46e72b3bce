"""The on-disk cache of built databases: one flat ``.bin`` file per (system, backend, version).

A cache file is used only when it is intact and current. Intact: a CRC-32 over everything after the
prelude (header and arrays) matches the one stored, and the header describes arrays that fit in the
file. Current: its fingerprint matches servopt's format version, the system spec, and the path, size
and mtime of every source parquet file. A stale file is rebuilt silently; a damaged one (truncated,
bytes altered, not a cache file at all) is set aside with one warning and rebuilt, never used
(``servopt.cache_store``).

Layout: ``MAGIC``, the header's length (u64, little-endian), the CRC-32 (u64), a JSON header
(fingerprint and, per array, dtype, shape and byte offset), then the arrays' bytes, each 64-byte
aligned. A warm run reads the file once into one writable buffer and views every array in it (~5 ms
for 17 MB) after checking its CRC (~5 ms: zlib's crc32 runs at over 3 GB/s where sha256 took 10 ms
and blake2b 38 ms); an ``.npz`` cost ~40 ms per run in per-member zip and header parsing. Views are
writable and aligned, as the kernels' declared signatures require.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np

from servopt import cache_store

# Bump when the array layout or any build rule changes: old cache files then rebuild.
FORMAT_VERSION = 5
# The file format (prelude and header); files of an older one are stale, not damaged.
MAGIC = b"SRVOPTD2"
OLDER_MAGICS = (b"SRVOPTDB",)
PRELUDE_BYTES = len(MAGIC) + 8 + 8
ALIGN_BYTES = 64


class Damaged(Exception):
    """A cache file that exists but cannot be trusted; the message says why."""


def cache_path(root: Path, system: str, backend: str, version: str) -> Path:
    return root / "perfdb" / f"{system}__{backend}__{version}.bin"


def fingerprint(system_spec_json: str, source_files: list[Path]) -> str:
    from servopt.perf_db.gemm import GEMM_FORMAT_VERSION

    h = hashlib.sha256()
    # The GEMM tables have their own layout version (perf_db/gemm.py); either bump rebuilds.
    h.update(f"servopt-perfdb-{FORMAT_VERSION}-gemm-{GEMM_FORMAT_VERSION}\n".encode())
    h.update(system_spec_json.encode())
    for path in source_files:
        st = path.stat()
        h.update(f"\n{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def load(path: Path, expected: str) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when absent, stale or damaged (the caller rebuilds)."""
    try:
        found = read(path)
    except Damaged as err:
        cache_store.set_aside(path, str(err))
        return None
    if found is None or found[0] != expected:
        return None
    return found[1]


def read(path: Path) -> tuple[str, dict[str, np.ndarray]] | None:
    """(fingerprint, arrays) of an intact cache file; None when absent or of an older format.

    Raises ``Damaged`` when the file is there but unreadable, truncated or altered.
    """
    try:
        size = path.stat().st_size
        buf = bytearray(size)
        with open(path, "rb") as fh:
            got = fh.readinto(buf)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise Damaged(f"unreadable: {err.strerror or err}") from None
    if got != size or size < PRELUDE_BYTES:
        raise Damaged(f"{size} bytes, shorter than its prelude")
    magic = bytes(buf[: len(MAGIC)])
    if magic in OLDER_MAGICS:
        return None
    if magic != MAGIC:
        raise Damaged("not a servopt cache file")
    header_len = int.from_bytes(buf[len(MAGIC) : len(MAGIC) + 8], "little")
    crc = int.from_bytes(buf[len(MAGIC) + 8 : PRELUDE_BYTES], "little")
    if zlib.crc32(memoryview(buf)[PRELUDE_BYTES:]) != crc:
        raise Damaged("checksum mismatch (truncated or altered)")
    start = PRELUDE_BYTES
    try:
        header = json.loads(bytes(buf[start : start + header_len]))
        out = {}
        for name, (dtype, shape, offset) in header["arrays"].items():
            dt = np.dtype(dtype)
            count = int(np.prod(shape, dtype=np.int64))
            if dt.hasobject or offset < start + header_len or offset + count * dt.itemsize > size:
                raise Damaged(f"array {name} does not fit in the file")
            out[name] = np.frombuffer(buf, dtype=dt, count=count, offset=offset).reshape(tuple(shape))
        return str(header["fingerprint"]), out
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as err:
        raise Damaged(f"malformed header ({type(err).__name__})") from None


def _align(n: int) -> int:
    return -(-n // ALIGN_BYTES) * ALIGN_BYTES


def save(path: Path, arrays: dict[str, np.ndarray], fp: str) -> bool:
    """Write atomically (``cache_store.write_atomic``); False when the cache cannot be written."""
    # (np.require, not np.ascontiguousarray: that one turns 0-d arrays into 1-d ones)
    arrays = {k: np.require(v, requirements="C") for k, v in arrays.items()}
    for name, a in arrays.items():
        if a.dtype.hasobject:
            raise ValueError(f"cache array {name} holds Python objects")

    # Offsets depend on the header's length, which depends on the offsets: fix the header's size
    # first with placeholder offsets of the final width, then fill them in.
    def header(offsets: dict[str, int]) -> bytes:
        entries = {k: [a.dtype.str, list(a.shape), offsets[k]] for k, a in arrays.items()}
        return json.dumps({"fingerprint": fp, "arrays": entries}).encode()

    width = 10**12
    head_len = len(header(dict.fromkeys(arrays, width)))
    offsets, cursor = {}, _align(PRELUDE_BYTES + head_len)
    for k, a in arrays.items():
        offsets[k] = cursor
        cursor = _align(cursor + a.nbytes)
    # The whole file in memory (one more copy of ~17 MB, at build time only): the CRC is over it.
    body = bytearray(cursor - PRELUDE_BYTES)
    body[:head_len] = header(offsets).ljust(head_len)
    for k, a in arrays.items():
        at = offsets[k] - PRELUDE_BYTES
        body[at : at + a.nbytes] = a.tobytes()
    prelude = MAGIC + head_len.to_bytes(8, "little") + zlib.crc32(body).to_bytes(8, "little")
    cache_store.sweep_temp_files(path.parent)

    def write(fh) -> None:
        fh.write(prelude)
        fh.write(body)

    return cache_store.write_atomic(path, write)


def describe(meta: dict) -> str:
    return json.dumps(meta, sort_keys=True)
