"""The CLI's start-up trims (servopt.cli.startup) and the library internals they rely on.

Each trim leans on a library's internals (docs/architecture.md, "Library internals"). These tests
run in fresh processes and fail loudly when a library release changes what a trim relies on, or
makes the trim unnecessary; the trims themselves then fall back to the ordinary import.
"""

import subprocess
import sys


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip()


CODE = """
import sys
from servopt.cli.startup import import_cp_model_without_pandas
assert import_cp_model_without_pandas(), "the pandas stub no longer satisfies cp_model's import"
from ortools.sat.python import cp_model
assert "pandas" not in sys.modules
m = cp_model.CpModel()
x = m.new_int_var(0, 10, "x")
m.add_linear_expression_in_domain(x, cp_model.Domain.from_values([1, 3, 5]))
m.maximize(x)
s = cp_model.CpSolver()
assert s.solve(m) == cp_model.OPTIMAL and s.value(x) == 5
import pandas
assert hasattr(pandas, "DataFrame") and pandas.Series.__module__.startswith("pandas")
print("ok")
"""


def test_cp_model_works_without_pandas_and_real_pandas_stays_importable():
    # Fails when an ortools release reads more of pandas at import than the stub provides
    # (startup._PANDAS_NAMES): add the names, or drop the trim.
    assert _run(CODE) == "ok"


def test_cp_model_still_imports_pandas_so_the_stub_is_still_needed():
    # Fails when an ortools release stops importing pandas with cp_model: remove the stub.
    code = "import sys\nimport ortools.sat.python.cp_model\nprint('pandas' in sys.modules)"
    assert _run(code) == "True"


def test_a_stub_cp_model_rejects_falls_back_to_real_pandas():
    # What a user gets when ortools changes: the ordinary import, a working solver, no traceback.
    code = """
from servopt.cli import startup
startup._PANDAS_NAMES = ("Index",)  # too little: cp_model's import fails against this stub
assert not startup.import_cp_model_without_pandas()
from ortools.sat.python import cp_model
import pandas
assert cp_model.pd is pandas and pandas.Series.__module__.startswith("pandas")
m = cp_model.CpModel()
x = m.new_int_var(0, 7, "x")
m.maximize(x)
s = cp_model.CpSolver()
assert s.solve(m) == cp_model.OPTIMAL and s.value(x) == 7
print("ok")
"""
    assert _run(code) == "ok"


NUMBA_CODE = """
import sys
from servopt.cli.startup import init_numba_without_blas
assert init_numba_without_blas(), "numba's cpu_target moved"
assert "scipy.linalg" not in sys.modules
import numpy as np
from servopt_kernels import grid
assert grid.sol_batch is not None
from numba import njit
@njit
def twice(a):
    return a * 2.0
assert twice(np.arange(3.0)).tolist() == [0.0, 2.0, 4.0]
import scipy.linalg
assert scipy.linalg.cython_blas is not None
print("ok")
"""


def test_numba_initialises_without_the_blas_probe_and_scipy_stays_importable():
    assert _run(NUMBA_CODE) == "ok"


def test_numba_still_probes_blas_through_the_module_the_trim_blocks():
    # Fails when a numba release probes BLAS through another module (update
    # startup._NUMBA_BLAS_PROBE) or no longer at start-up (remove the trim).
    code = """
import sys
from servopt.cli import startup
startup._refresh_cpu_target()
print(startup._NUMBA_BLAS_PROBE in sys.modules)
"""
    assert _run(code) == "True"


def test_moved_numba_internals_skip_the_trim_and_numba_still_works():
    code = """
import sys
import numpy as np
from servopt.cli import startup
def moved():
    raise AttributeError("module 'numba.core.registry' has no attribute 'cpu_target'")
startup._refresh_cpu_target = moved
assert not startup.init_numba_without_blas()
assert sys.modules.get(startup._NUMBA_BLAS_PROBE, 0) is not None  # the block is lifted
from numba import njit
@njit
def twice(a):
    return a * 2.0
assert twice(np.arange(3.0)).tolist() == [0.0, 2.0, 4.0]
print("ok")
"""
    assert _run(code) == "ok"
