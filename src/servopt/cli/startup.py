"""Start-up trims for the ``servopt`` process (the CLI only; library users get plain imports).

``ortools.sat.python.cp_model`` imports pandas at module level for its pandas-indexed helper API
(``new_int_var_series`` and friends), which servopt never calls. pandas costs 0.3-0.5 s of a
~1 s warm ``cli default`` on 2 cores, so the CLI imports cp_model against a stub ``pandas`` that
only provides the two classes cp_model names at import time, then removes the stub: a later
``import pandas`` anywhere in the process gets the real package.
"""

from __future__ import annotations

import sys
import types


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
