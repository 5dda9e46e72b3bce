"""CP-SAT in one place: the model class both builders use, and one solve -> report -> counters.

The packing model (``xpyd_model``) and the "cpsat" composition model (``compose_model``) build on
``Model`` and solve only through ``solve``: it applies the ``SolverSettings`` (deterministic time
limit, one worker, fixed seed), reads the status, objective, bound and solution into a
``SolveReport`` and adds the solve's work to the run's ``Counters``. Everything that depends on
ortools beyond its public modelling API (a private hook, in-place proto edits) is here, so a new
ortools version is checked in one module (``tests/search/test_cpsat.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ortools.sat.python import cp_model

from servopt.errors import ServoptError
from servopt.search.result import Counters
from servopt.search.settings import SolverSettings

STATUS = {
    cp_model.OPTIMAL: "OPTIMAL",
    cp_model.FEASIBLE: "FEASIBLE",
    cp_model.INFEASIBLE: "INFEASIBLE",
    cp_model.MODEL_INVALID: "MODEL_INVALID",
    cp_model.UNKNOWN: "UNKNOWN",
}


@dataclass(frozen=True)
class SolveReport:
    """One CP-SAT solve: status, objective and bound, machine-independent work, and the solution."""

    status: str
    objective: float
    bound: float
    deterministic_time: float
    wall_time_s: float
    branches: int
    # Values by variable index (empty without a solution).
    solution: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.empty(0, np.int64))

    @property
    def has_solution(self) -> bool:
        return self.status in ("OPTIMAL", "FEASIBLE")

    @property
    def proven(self) -> bool:
        """The answer is proven: an optimum, or a proof that nothing is feasible."""
        return self.status in ("OPTIMAL", "INFEASIBLE")

    def values(self, variables) -> np.ndarray:
        """The solution's values of ``variables`` (int64, in their order)."""
        return self.solution[[v.index for v in variables]]


class Model(cp_model.CpModel):
    """``CpModel`` without the ~60 deprecated camelCase aliases ortools 9.15 binds per instance.

    servopt uses only the snake_case API; binding the aliases costs about 1 ms per model, which is
    most of the model-building time of a frontier sweep (one packing model per point). The hook is
    private to ortools: ``tests/search/test_cpsat.py`` fails if it is renamed or stops binding.

    The ``set_*`` methods edit a built model in place (bounds, coefficients, a complete hint), for
    a model that is re-solved with other numbers (the composition model serves a whole sweep).
    """

    def _add_pre_pep8_methods(self) -> None:
        pass

    @staticmethod
    def set_upper_bound(var: cp_model.IntVar, upper: int) -> None:
        """Raise or lower the upper end of a variable's (one-interval) domain."""
        domain = var.proto.domain
        domain[len(domain) - 1] = upper  # the proto wrapper ignores a negative index

    @staticmethod
    def set_lower_bound(ct: cp_model.Constraint, lower: int) -> None:
        """Move the lower end of a linear constraint's (one-interval) range."""
        ct.proto.linear.domain[0] = lower

    @staticmethod
    def positions(ct: cp_model.Constraint, variables) -> np.ndarray:
        """Where each of ``variables`` sits among a linear constraint's terms."""
        where = {v: q for q, v in enumerate(ct.proto.linear.vars)}
        return np.array([where[v.index] for v in variables], dtype=np.int64)

    @staticmethod
    def set_coefficients(ct: cp_model.Constraint, positions: np.ndarray, coeffs: np.ndarray) -> None:
        """Overwrite the coefficients of a linear constraint's terms at ``positions``."""
        terms = ct.proto.linear.coeffs
        for q, c in zip(positions.tolist(), coeffs.tolist(), strict=True):
            terms[q] = c

    def set_hint(self, values: np.ndarray) -> None:
        """Replace the hint by a complete assignment (``values[i]`` for variable i)."""
        hint = self.proto.solution_hint
        hint.vars.clear()
        hint.values.clear()
        hint.vars.extend(range(values.size))
        hint.values.extend(values.tolist())


def solve(model: Model, settings: SolverSettings, counters: Counters, *, params: str = "") -> SolveReport:
    """Solve ``model`` once; ``params`` (SatParameters text) first, the settings override them.

    The one place a solve's work reaches the counters: solves, deterministic time, branches.
    """
    solver = cp_model.CpSolver()
    if params:
        solver.parameters.merge_text_format(params)
    settings.apply(solver.parameters)
    code = solver.solve(model)
    status = STATUS.get(code, str(code))
    has = status in ("OPTIMAL", "FEASIBLE")
    report = SolveReport(
        status=status,
        objective=solver.objective_value if has else float("nan"),
        bound=solver.best_objective_bound if has else float("nan"),
        deterministic_time=solver.deterministic_time,
        wall_time_s=solver.wall_time,
        branches=solver.num_branches,
        solution=np.asarray(solver.response_proto.solution, dtype=np.int64) if has else np.empty(0, np.int64),
    )
    counters.solves += 1
    counters.deterministic_time += report.deterministic_time
    counters.branches += report.branches
    return report


def stopped_early(settings: SolverSettings, cap: int) -> ServoptError:
    """The error for a solve that hit its limit before finding any deployment at ``cap``.

    Not a proof that nothing fits: raised rather than let the caller diagnose an infeasible
    target (with a wrong reason) or end a frontier early.
    """
    other = " or use the 'menu' composition" if settings.composition == "cpsat" else ""
    return ServoptError(
        "max_deterministic_time",
        settings.max_deterministic_time,
        f"CP-SAT stopped before finding any deployment at TPOT level {cap} (composition "
        f"'{settings.composition}'); raise the deterministic-time limit{other}",
    )
