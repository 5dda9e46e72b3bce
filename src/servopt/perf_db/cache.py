"""The on-disk cache of built databases: one flat ``.bin`` file per (system, backend, version).

A cache file is trusted only when its fingerprint matches: servopt's format version, the system
spec, and the path, size and mtime of every source parquet file. Anything else (stale, truncated,
corrupt, missing arrays) is rebuilt, never used.

Layout: ``MAGIC``, the header's length (u64, little-endian), a JSON header (fingerprint and, per
array, dtype, shape and byte offset), then the arrays' bytes, each 64-byte aligned. A warm run reads
the file once into one writable buffer and views every array in it (~5 ms for 17 MB); an ``.npz``
cost ~40 ms per run in per-member zip and header parsing. Views are writable and aligned, as the
kernels' declared signatures require.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

# Bump when the array layout or any build rule changes: old cache files then rebuild.
FORMAT_VERSION = 4
MAGIC = b"SRVOPTDB"
ALIGN_BYTES = 64


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
    """The cached arrays, or None when absent, stale or unreadable (the caller rebuilds)."""
    fingerprint_found, arrays = read(path)
    return arrays if fingerprint_found == expected else None


def read(path: Path) -> tuple[str | None, dict[str, np.ndarray] | None]:
    """(fingerprint, arrays) of a cache file; (None, None) when absent or unreadable."""
    try:
        size = path.stat().st_size
        buf = bytearray(size)
        with open(path, "rb") as fh:
            if fh.readinto(buf) != size:
                return None, None
        if buf[: len(MAGIC)] != MAGIC:
            return None, None
        start = len(MAGIC) + 8
        header_len = int.from_bytes(buf[len(MAGIC) : start], "little")
        header = json.loads(bytes(buf[start : start + header_len]))
        out = {}
        for name, (dtype, shape, offset) in header["arrays"].items():
            dt = np.dtype(dtype)
            count = int(np.prod(shape, dtype=np.int64))
            if offset < start + header_len or offset + count * dt.itemsize > size:
                return None, None
            out[name] = np.frombuffer(buf, dtype=dt, count=count, offset=offset).reshape(tuple(shape))
        return str(header["fingerprint"]), out
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None, None


def _align(n: int) -> int:
    return -(-n // ALIGN_BYTES) * ALIGN_BYTES


def save(path: Path, arrays: dict[str, np.ndarray], fp: str) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half-written cache."""
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
    offsets, cursor = {}, _align(len(MAGIC) + 8 + head_len)
    for k, a in arrays.items():
        offsets[k] = cursor
        cursor = _align(cursor + a.nbytes)
    head = header(offsets).ljust(head_len)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + len(head).to_bytes(8, "little") + head)
            for k, a in arrays.items():
                f.seek(offsets[k])
                f.write(a.tobytes())
            f.truncate(max(cursor, f.tell()))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def describe(meta: dict) -> str:
    return json.dumps(meta, sort_keys=True)
