"""The kernels' caches: the ahead-of-time module is checked against its build record before it is
imported (a truncated module used to kill every run with SIGBUS), failed builds are retried later,
and garbage in numba's own cache files costs a recompile and one warning, not a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from servopt_kernels import aot

# --- the AOT module's record (no compiler needed: any bytes stand for the module) -------------------


@pytest.fixture
def module(tmp_path, monkeypatch):
    path = aot.module_path(tmp_path)
    # A module of this name imported earlier in the process (tests/kernels/test_aot.py) is reused
    # by ``load`` without reading any file: these tests are about the file.
    monkeypatch.delitem(sys.modules, path.name.split(".", 1)[0], raising=False)
    path.parent.mkdir(parents=True)
    data = os.urandom(50_000)
    path.write_bytes(data)
    aot._sum_path(path).write_text(aot._checksum(data))
    return path


def test_a_recorded_module_is_intact(module):
    assert aot.intact(module)


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "no_record", "bad_record"])
def test_a_damaged_module_is_removed_before_any_import(module, tmp_path, damage, cache_warnings):
    if damage == "truncate":
        os.truncate(module, 10_000)
    elif damage == "flip":
        raw = bytearray(module.read_bytes())
        raw[25_000] ^= 0x80
        module.write_bytes(bytes(raw))
    elif damage == "garbage":
        module.write_bytes(b"garbage")
    elif damage == "no_record":
        aot._sum_path(module).unlink()
    else:
        aot._sum_path(module).write_text("\x00\x01 not a record")
    assert aot.load(tmp_path) is None  # never handed to the import machinery
    assert not module.exists() and not aot._sum_path(module).exists()
    (warning,) = cache_warnings()
    assert "damaged" in warning
    assert aot.wants_build(tmp_path)  # so the background build replaces it


def test_a_module_that_does_not_import_is_removed(module, tmp_path, cache_warnings):
    # Intact bytes that are no extension module (built against something else, say).
    assert aot.load(tmp_path) is None
    assert not module.exists()
    assert "does not import" in cache_warnings()[0]


def test_a_failed_build_is_retried_after_the_backoff(tmp_path, monkeypatch):
    monkeypatch.setattr(aot, "build", lambda root: None)
    assert aot.build_locked(tmp_path) is None
    assert not aot.wants_build(tmp_path)
    marker = Path(str(aot.module_path(tmp_path)) + aot.FAILED_SUFFIX)
    old = time.time() - aot.RETRY_FAILED_S - 1
    os.utime(marker, (old, old))
    assert aot.wants_build(tmp_path)
    monkeypatch.setattr(aot, "build", lambda root: aot.module_path(root))  # a compiler appeared
    assert aot.build_locked(tmp_path) is not None
    assert not marker.exists()


def test_build_folders_of_killed_builders_are_removed(tmp_path, monkeypatch):
    dead = aot.module_path(tmp_path).parent / (aot.BUILD_DIR_PREFIX + "killed")
    dead.mkdir(parents=True)
    (dead / "half.o").write_bytes(b"0" * 1000)
    monkeypatch.setattr(aot, "build", lambda root: None)
    aot.build_locked(tmp_path)
    assert not dead.exists()


# --- numba's cache files ---------------------------------------------------------------------------

CALL_A_KERNEL = """
import numpy as np
from servopt_kernels import dedup
keys, first = dedup.unique_rows(np.array([[1, 2], [1, 2], [3, 4]], dtype=np.int64))
print(len(first))
"""


def _call(numba_cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache), "SERVOPT_AOT": "0"}
    return subprocess.run(
        [sys.executable, "-c", CALL_A_KERNEL], capture_output=True, text=True, env=env, timeout=600
    )


@pytest.mark.parametrize("suffix", [".nbi", ".nbc"])
def test_garbage_numba_cache_files_recompile_with_one_warning(tmp_path, suffix):
    first = _call(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    files = list(tmp_path.rglob("*" + suffix))
    assert files
    for f in files:
        f.write_bytes(f.read_bytes()[:20])
    damaged = _call(tmp_path)
    assert damaged.returncode == 0 and damaged.stdout == first.stdout, damaged.stderr[-2000:]
    assert "Traceback" not in damaged.stderr
    assert damaged.stderr.count("numba's kernel cache is damaged") == 1
    again = _call(tmp_path)  # the cache was rewritten sound
    assert again.returncode == 0 and again.stderr == ""
    shutil.rmtree(tmp_path, ignore_errors=True)
