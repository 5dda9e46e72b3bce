"""Start-up trims for the ``servopt`` process (the CLI only; library users get plain imports).

``ortools.sat.python.cp_model`` imports pandas at module level for its pandas-indexed helper API
(``new_int_var_series`` and friends), which servopt never calls. pandas costs 0.3-0.5 s of a
~1 s warm ``cli default`` on 2 cores, so the CLI imports cp_model against a stub ``pandas`` that
only provides the two classes cp_model names at import time, then removes the stub: a later
``import pandas`` anywhere in the process gets the real package.

Numba probes for a BLAS the first time it loads any kernel, by importing ``scipy.linalg`` (0.2 s;
scipy is installed because aiconfigurator-core, our data package, depends on it). servopt's kernels
never call BLAS (no ``np.dot``/``np.linalg``), so the CLI initialises numba's CPU target with that
import made to fail, then lifts the block: later imports of scipy work as usual.

Both trims lean on library internals (docs/architecture.md, "Library internals"): what cp_model
reads from pandas while it imports, and numba's probe module and ``cpu_target``. If a new release
changes either, the trim is skipped (the import is made the ordinary way: slower, same answers),
never fatal; ``tests/cli/test_startup.py`` fails loudly in that case, and also when a trim is no
longer needed.

Better still, the CLI does not import numba at all once the kernels' ahead-of-time module exists
(``servopt_kernels.aot``, ~0.4 s saved per run). The first run on a machine uses numba's JIT and, when
it is done, starts a low-priority background process that builds that module (seconds of compile
and a C link) for the runs after it. ``SERVOPT_AOT=0`` turns both off.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path


class _NoPandasObject:
    """Stands in for pandas.Index/Series in cp_model's isinstance checks: nothing is an instance."""


# What cp_model reads from pandas while it imports (its type aliases): ortools 9.15.
_PANDAS_NAMES = ("Index", "Series", "DataFrame")


def import_cp_model_without_pandas() -> bool:
    """Import cp_model against the pandas stub; True when it worked (pandas is still not imported)."""
    if "ortools.sat.python.cp_model" in sys.modules or "pandas" in sys.modules:
        return False
    stub = types.ModuleType("pandas")
    for name in _PANDAS_NAMES:
        setattr(stub, name, _NoPandasObject)
    sys.modules["pandas"] = stub
    try:
        import ortools.sat.python.cp_model
    except Exception:
        # cp_model wants more of pandas than the stub has: forget what imported against the stub
        # and import it the ordinary way (real pandas).
        for name in [n for n in sys.modules if n == "pandas" or n.startswith("ortools.")]:
            del sys.modules[name]
        import ortools.sat.python.cp_model  # noqa: F401

        return False
    finally:
        if sys.modules.get("pandas") is stub:
            del sys.modules["pandas"]
    return True


# The module numba imports to decide whether BLAS-backed functions (np.dot, np.linalg) compile.
_NUMBA_BLAS_PROBE = "scipy.linalg.cython_blas"


def _refresh_cpu_target() -> None:
    """numba's own initialisation of its CPU target (what its first compile or cache load does)."""
    from numba.core.registry import cpu_target

    cpu_target.target_context.refresh()


def init_numba_without_blas() -> bool:
    """Initialise numba's CPU target now, with its BLAS probe failing fast (see module docstring).
    True when it did; False when there was nothing to do or numba's internals moved (then numba
    initialises itself, probe and all, on first use)."""
    if "numba.np.arraymath" in sys.modules or _NUMBA_BLAS_PROBE in sys.modules:
        return False
    sys.modules[_NUMBA_BLAS_PROBE] = None  # type: ignore[assignment]  # None = "import fails"
    try:
        _refresh_cpu_target()
    except (ImportError, AttributeError):
        return False
    finally:
        if sys.modules.get(_NUMBA_BLAS_PROBE, 0) is None:
            del sys.modules[_NUMBA_BLAS_PROBE]
    return True


AOT_ENV = "SERVOPT_AOT"


def aot_enabled() -> bool:
    return os.environ.get(AOT_ENV, "1") != "0"


def start_kernels(cache_root: Path) -> bool:
    """Serve kernels from their AOT module when it is built (True), else get numba ready (False)."""
    if aot_enabled():
        from servopt_kernels import aot

        if aot.activate(cache_root, build_missing=False):
            return True
    init_numba_without_blas()
    return False


def build_kernels_in_background(cache_root: Path) -> bool:
    """Start the AOT build in a detached low-priority process when it is wanted; True if started."""
    if not aot_enabled():
        return False
    from servopt_kernels import aot

    if not aot.wants_build(cache_root):
        return False
    subprocess.Popen(
        [sys.executable, "-m", "servopt_kernels.aot", str(cache_root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    return True
