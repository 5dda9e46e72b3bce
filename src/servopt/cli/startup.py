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


def import_cp_model_without_pandas() -> None:
    if "ortools.sat.python.cp_model" in sys.modules or "pandas" in sys.modules:
        return
    stub = types.ModuleType("pandas")
    stub.Index = stub.Series = stub.DataFrame = _NoPandasObject
    sys.modules["pandas"] = stub
    try:
        import ortools.sat.python.cp_model  # noqa: F401
    finally:
        if sys.modules.get("pandas") is stub:
            del sys.modules["pandas"]


# The module numba imports to decide whether BLAS-backed functions (np.dot, np.linalg) compile.
_NUMBA_BLAS_PROBE = "scipy.linalg.cython_blas"


def init_numba_without_blas() -> None:
    """Initialise numba's CPU target now, with its BLAS probe failing fast (see module docstring)."""
    if "numba.np.arraymath" in sys.modules or _NUMBA_BLAS_PROBE in sys.modules:
        return
    from numba.core.registry import cpu_target

    sys.modules[_NUMBA_BLAS_PROBE] = None  # type: ignore[assignment]  # None = "import fails"
    try:
        cpu_target.target_context.refresh()
    finally:
        if sys.modules.get(_NUMBA_BLAS_PROBE, 0) is None:
            del sys.modules[_NUMBA_BLAS_PROBE]


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
