"""servopt_kernels.aot: the ahead-of-time module builds, loads without numba, and answers as the JIT.

The build compiles every entry kernel (seconds, more on a cold numba cache) and links a C extension,
so it runs once per module; it needs a C compiler and Python's headers, as a user's machine does.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from servopt_kernels import aot, jit

needs_cc = pytest.mark.skipif(
    shutil.which("cc") is None or not Path(sysconfig.get_paths()["include"], "Python.h").is_file(),
    reason="building the AOT module needs a C compiler and Python.h",
)

CLI = """
import contextlib, io, json, sys
from servopt.cli.app import main
sys.argv = ["servopt", "cli", "default", "--model", "QWEN3_32B", "--total_gpus", "64",
            "--system", "h200_sxm", "--json"]
buf = io.StringIO()
try:
    with contextlib.redirect_stdout(buf):
        main()
except SystemExit as exc:
    assert not exc.code, exc.code
from servopt_kernels import jit
print(json.dumps({"doc": json.loads(buf.getvalue()), "numba": "numba" in sys.modules,
                  "misses": jit.aot_misses}))
"""


def test_pycc_offers_what_the_build_uses():
    # numba.pycc is pending deprecation (numba/numba#8509: kept until a replacement exists). This
    # fails, everywhere, the day a numba release drops it or what build() calls, or setuptools
    # (which pycc imports at run time) is missing: servopt would otherwise fall back to the JIT
    # silently, ~0.4 s slower per CLI run. See docs/architecture.md, "Library internals".
    assert aot.pycc_problem() is None


def test_pycc_problem_names_what_is_missing(monkeypatch):
    # The check above can fail: a pycc without compile() is reported by name.
    class OldCC:
        export = output_dir = target_cpu = None

    monkeypatch.setattr(aot, "_pycc", lambda: OldCC)
    assert aot.pycc_problem() == "numba.pycc.CC lacks compile"


@pytest.fixture(scope="module")
def aot_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("aot_cache")
    assert aot.wants_build(root)
    path = aot.build_locked(root)
    assert path is not None and path == aot.module_path(root) and path.is_file()
    assert not aot.wants_build(root)
    return root


def _cli(cache: Path, aot_on: bool) -> dict:
    env = {**os.environ, "SERVOPT_AOT": "1" if aot_on else "0", "SERVOPT_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", CLI], capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


@needs_cc
def test_cli_on_the_aot_module_imports_no_numba_and_answers_as_the_jit(aot_cache):
    on_jit = _cli(aot_cache, aot_on=False)
    on_aot = _cli(aot_cache, aot_on=True)
    assert on_jit["numba"] and not on_aot["numba"]
    assert on_aot["misses"] == {}  # every kernel call of the run had the declared argument types
    assert on_aot["doc"] == on_jit["doc"]  # bit for bit: strict IEEE kernels (config.FASTMATH)


@needs_cc
def test_every_entry_kernel_is_exported(aot_cache):
    module = aot.load(aot_cache)
    assert module is not None
    for k in jit.entry_kernels():
        assert callable(getattr(module, k.export_name)), k.export_name


def test_fingerprint_is_deterministic_and_names_the_module():
    assert aot.fingerprint() == aot.fingerprint()
    assert aot.module_path(Path("/x")).name.startswith(aot.MODULE_PREFIX + aot.fingerprint())


def test_a_failed_build_is_recorded_and_retried_only_later(tmp_path, monkeypatch):
    monkeypatch.setattr(aot, "build", lambda root: None)
    assert aot.build_locked(tmp_path) is None
    assert not aot.wants_build(tmp_path)
    marker = Path(str(aot.module_path(tmp_path)) + aot.FAILED_SUFFIX)
    old = marker.stat().st_mtime - aot.RETRY_FAILED_S - 1
    os.utime(marker, (old, old))
    assert aot.wants_build(tmp_path)


@needs_cc
def test_a_truncated_module_is_removed_not_imported(aot_cache, tmp_path):
    # Importing a truncated extension module kills the process with SIGBUS; the build record stops
    # it before the import.
    root = tmp_path / "cache"
    shutil.copytree(aot_cache, root)
    path = aot.module_path(root)
    os.truncate(path, path.stat().st_size // 2)
    code = f"from pathlib import Path; from servopt_kernels import aot; print(aot.load(Path({str(root)!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "None", out.stderr[-2000:]
    assert "damaged" in out.stderr and not path.exists()
    assert aot.wants_build(root)
