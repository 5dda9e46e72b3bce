"""Ahead-of-time build of the entry kernels: one extension module that runs without importing numba.

A warm ``servopt cli default`` used to spend ~0.4 s importing numba and initialising its CPU target
just to load cached kernels. The entry kernels (``@kernel(returns=..., args=...)`` in
``servopt_kernels.jit``) are therefore also built, once per machine, into a C extension with
numba's ``pycc``; later processes import that (~1 ms) and never import numba.

- Name and place: ``<cache_root>/aot/servopt_aot_<fingerprint>.so``. The fingerprint covers the
  kernel sources, the declared signatures, the numba / llvmlite / numpy / Python versions and the
  CPU (the module is compiled for the host CPU), so any change builds a new module.
- Same answers as the JIT, bit for bit: each export is a one-line wrapper calling the kernel's numba
  dispatcher, so the kernel body is the JIT's own IR, and the kernels use strict IEEE arithmetic
  (``config.FASTMATH`` is empty), so the separately optimised module computes the same floats
  (tests compare the CLI's whole JSON answer for equality).
- Failure is never fatal: without a C compiler or Python headers the build fails and servopt
  keeps using numba's JIT (``build`` returns None). A failed build is retried by a run an hour
  later (``RETRY_FAILED_S``), so installing a compiler is enough to get the module.
- Concurrency: the module is built in a private temporary folder and renamed into place; build
  folders of killed builders are removed by the next build.
- Integrity: importing a truncated extension module kills the process (SIGBUS, no message), so the
  module's size and CRC-32 are recorded at build time in a ``.sum`` sidecar and checked before every
  import (~0.3 ms for 0.9 MB). A module that fails the check, has no sidecar or does not import is
  removed with one warning line; the run uses the JIT and rebuilds it in the background.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import time
import warnings
import zlib
from pathlib import Path

from servopt_kernels import jit

# Kernel modules built into the AOT module (all but primitives hold entry kernels; the helpers
# there are compiled into the entry kernels that call them, and their source is fingerprinted).
KERNEL_MODULES = (
    "servopt_kernels.primitives",
    "servopt_kernels.dedup",
    "servopt_kernels.grid",
    "servopt_kernels.gemm",
    "servopt_kernels.xpyd_enum",
)
MODULE_PREFIX = "servopt_aot_"
SUM_SUFFIX = ".sum"
BUILD_DIR_PREFIX = ".build-"
log = logging.getLogger("servopt.cache")


def _import_kernel_modules() -> None:
    for name in KERNEL_MODULES:
        importlib.import_module(name)


def _cpu_id() -> str:
    """The CPU the module is compiled for (model and feature flags), cheaply, without llvmlite."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith(("model name", "flags"))]
        return "\n".join(dict.fromkeys(lines))
    except OSError:
        return f"{platform.machine()}|{platform.processor()}"


def _dist_version(package: str) -> str:
    """An installed package's version from its ``.dist-info`` folder name (importlib.metadata costs
    ~20 ms to import; this is a directory listing)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return "?"
    site = Path(spec.origin).parent.parent
    found = sorted(site.glob(f"{package}-*.dist-info"))
    return found[-1].name[len(package) + 1 : -len(".dist-info")] if found else "?"


@functools.cache
def fingerprint() -> str:
    """Hash of everything the built module depends on; the sources do not change under a running
    process, so it is computed once (module_path is asked for by load, build and the lock)."""
    _import_kernel_modules()
    h = hashlib.sha256()
    # The build's layout (module + ``.sum`` record): modules built before records existed get a
    # different name, so they are rebuilt rather than reported as damaged.
    h.update(b"layout-2\n")
    for package in ("numba", "llvmlite", "numpy"):
        h.update(f"{package}={_dist_version(package)}\n".encode())
    h.update(f"{sys.version}|{sysconfig.get_config_var('EXT_SUFFIX')}|{_cpu_id()}\n".encode())
    for name in sorted((*KERNEL_MODULES, "servopt_kernels.jit", "servopt_kernels.config")):
        h.update(Path(sys.modules[name].__file__).read_bytes())
    for k in jit.entry_kernels():
        h.update(f"{k.export_name}:{k.signature}\n".encode())
    return h.hexdigest()[:20]


def module_path(cache_root: Path) -> Path:
    name = MODULE_PREFIX + fingerprint()
    return Path(cache_root) / "aot" / (name + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def _sum_path(path: Path) -> Path:
    return Path(str(path) + SUM_SUFFIX)


def _checksum(data: bytes) -> str:
    return f"{len(data)} {zlib.crc32(data):08x}"


def _discard(path: Path, why: str) -> None:
    """Remove a damaged module (and its sidecar) so that it is rebuilt; one warning line."""
    for p in (path, _sum_path(path)):
        with contextlib.suppress(OSError):
            p.unlink()
    log.warning(
        "cache: kernel module %s is damaged (%s); removed, using the JIT and rebuilding it", path, why
    )


def intact(path: Path) -> bool:
    """True when the module at ``path`` is the one its build recorded (size and CRC-32); a damaged
    one is removed (False). False, silently, when there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as err:
        _discard(path, f"unreadable: {err.strerror or err}")
        return False
    try:
        recorded = _sum_path(path).read_text().strip()
    except (OSError, UnicodeDecodeError):
        recorded = ""
    if recorded != _checksum(data):
        _discard(path, "size or checksum differs from the build's record" if recorded else "no build record")
        return False
    return True


def load(cache_root: Path):
    """The built AOT module for this machine and these kernels, or None when there is none yet (or it
    was damaged, and has been removed for a rebuild)."""
    path = module_path(cache_root)
    name = path.name.split(".", 1)[0]
    if name in sys.modules:
        return sys.modules[name]
    if not intact(path):
        return None
    try:
        loader = importlib.machinery.ExtensionFileLoader(name, str(path))
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except (ImportError, OSError) as err:
        _discard(path, f"does not import: {err}")  # built against something else
        return None
    sys.modules[name] = module
    return module


def _export_wrapper(k: jit.Kernel):
    """``def entry(a0, ..., an): return <dispatcher>(a0, ..., an)`` with the kernel's arity."""
    names = [f"a{i}" for i in range(len(k.args))]
    source = f"def {k.export_name}({', '.join(names)}):\n    return target({', '.join(names)})\n"
    namespace = {"target": k.dispatcher}
    exec(compile(source, f"<aot export {k.export_name}>", "exec"), namespace)
    return namespace[k.export_name]


# The one use of numba.pycc, a numba API pending deprecation since 0.57: numba's maintainers say it
# stays until a replacement exists (numba/numba#8509); it imports setuptools at run time. The
# attributes used here are pinned by tests/kernels/test_aot.py::test_pycc_offers_what_the_build_uses.
PYCC_API = ("export", "compile", "output_dir", "target_cpu")


def _pycc():
    """numba's ``pycc.CC`` class, its pending-deprecation warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from numba.pycc import CC
    return CC


def pycc_problem() -> str | None:
    """Why this numba cannot build the AOT module (None: pycc imports and has what ``build`` uses)."""
    try:
        cc = _pycc()
    except ImportError as err:
        return f"numba.pycc does not import: {err}"
    missing = [a for a in PYCC_API if not hasattr(cc, a)]
    return f"numba.pycc.CC lacks {', '.join(missing)}" if missing else None


def _pycc_compile(name: str, out_dir: Path) -> None:
    """Every entry kernel exported under its ``export_name`` into the extension ``name`` in ``out_dir``."""
    cc = _pycc()(name)
    cc.output_dir = str(out_dir)
    cc.target_cpu = "host"
    for k in jit.entry_kernels():
        cc.export(k.export_name, k.signature)(_export_wrapper(k))
    cc.compile()


def build(cache_root: Path) -> Path | None:
    """Compile the entry kernels into the AOT module (seconds: numba compiles them, gcc links).

    Returns its path, or None when this machine cannot build extensions (servopt then stays on the
    JIT)."""
    path = module_path(cache_root)
    name = path.name.split(".", 1)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=BUILD_DIR_PREFIX, dir=path.parent))
    try:
        _pycc_compile(name, tmp)
        built = next(tmp.glob(name + "*"))
        # The record first: a builder killed between the two leaves a record without a module
        # (rebuilt), never a module without its record.
        record = tmp / "record"
        record.write_text(_checksum(built.read_bytes()))
        os.replace(record, _sum_path(path))
        os.replace(built, path)
        return path
    except Exception:  # no compiler, no headers, a toolchain error: stay on the JIT
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def activate(cache_root: Path, *, build_missing: bool = True) -> bool:
    """Serve entry kernels from the AOT module, building it first when missing. True when active."""
    module = load(cache_root)
    if module is None and build_missing and build(cache_root) is not None:
        module = load(cache_root)
    if module is None:
        return False
    jit.activate_aot(module)
    return True


# A build that failed on this machine (no compiler, no headers) leaves this marker; a run retries it
# once the marker is RETRY_FAILED_S old (a background build costs seconds of CPU at low priority).
FAILED_SUFFIX = ".failed"
RETRY_FAILED_S = 3600.0
LOCK_NAME = ".build.lock"
# A lock older than this is a crashed builder's: take it over.
STALE_LOCK_S = 900.0
# Background builds yield the CPU to the user's foreground work.
BACKGROUND_NICENESS = 10


def _age_s(path: Path) -> float | None:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return None


def wants_build(cache_root: Path) -> bool:
    """True when no intact AOT module exists for these kernels, none is being built and none failed
    within the last RETRY_FAILED_S."""
    path = module_path(cache_root)
    if intact(path):
        return False
    failed = _age_s(Path(str(path) + FAILED_SUFFIX))
    if failed is not None and failed < RETRY_FAILED_S:
        return False
    lock = path.parent / LOCK_NAME
    try:
        return time.time() - lock.stat().st_mtime > STALE_LOCK_S
    except OSError:
        return True


def _remove_dead_builds(folder: Path) -> None:
    """Build folders of killed builders (only a lock holder calls this, so none is live)."""
    for entry in folder.glob(BUILD_DIR_PREFIX + "*"):
        shutil.rmtree(entry, ignore_errors=True)


def build_locked(cache_root: Path) -> Path | None:
    """``build`` under a lock file, recording a failure so that it is retried only later."""
    path = module_path(cache_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.parent / LOCK_NAME
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_S:
        lock.unlink(missing_ok=True)
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return None  # another process is building it
    try:
        os.close(fd)
        _remove_dead_builds(path.parent)
        built = build(cache_root)
        failed = Path(str(path) + FAILED_SUFFIX)
        if built is None:
            failed.touch()
        else:
            failed.unlink(missing_ok=True)
        return built
    finally:
        lock.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m servopt_kernels.aot <cache_root>``: build the AOT module (run in the background)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m servopt_kernels.aot <cache_root>", file=sys.stderr)
        return 2
    with contextlib.suppress(AttributeError, OSError):
        os.nice(BACKGROUND_NICENESS)
    return 0 if build_locked(Path(args[0])) is not None else 1


if __name__ == "__main__":
    sys.exit(main())
