import subprocess
import sys

CODE = """
import sys
from servopt.cli.startup import import_cp_model_without_pandas
import_cp_model_without_pandas()
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
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


NUMBA_CODE = """
import sys
from servopt.cli.startup import init_numba_without_blas
init_numba_without_blas()
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
    out = subprocess.run([sys.executable, "-c", NUMBA_CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
