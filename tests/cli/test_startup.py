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
