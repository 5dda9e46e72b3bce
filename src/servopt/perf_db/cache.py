"""The on-disk cache of built databases: one ``.npz`` per (system, backend, version).

A cache file is trusted only when its fingerprint matches: servopt's format version, the system
spec, and the path, size and mtime of every source parquet file. Anything else (stale, truncated,
corrupt, missing arrays) is rebuilt, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

# Bump when the array layout or any build rule changes: old cache files then rebuild.
FORMAT_VERSION = 3
FINGERPRINT_KEY = "__fingerprint__"


def cache_path(root: Path, system: str, backend: str, version: str) -> Path:
    return root / "perfdb" / f"{system}__{backend}__{version}.npz"


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
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            if FINGERPRINT_KEY not in npz.files or str(npz[FINGERPRINT_KEY]) != expected:
                return None
            return {k: npz[k] for k in npz.files if k != FINGERPRINT_KEY}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError):
        return None


def save(path: Path, arrays: dict[str, np.ndarray], fp: str) -> None:
    """Write atomically (temp file + rename) so a crash never leaves a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays, **{FINGERPRINT_KEY: np.array(fp)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def describe(meta: dict) -> str:
    return json.dumps(meta, sort_keys=True)
