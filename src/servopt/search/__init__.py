"""Exact deployment search: layouts, pruning, replica menus, CP-SAT packing, Pareto sweep.

Public API (import from the modules; this package imports nothing so ``--help`` stays fast):

- ``layouts.enumerate_layouts``, ``default_agg_lists``, ``default_disagg_lists``: parallel layouts.
- ``options.WorkerOptions`` (SoA option tables), ``ReplicaSpec``, ``Sla``;
  ``conventions.Conventions``; ``settings.SolverSettings``.
- ``solve.solve`` (both modes), ``solve.solve_agg``, ``solve.solve_disagg`` -> ``result.SearchResult``
  / ``result.ModeResult`` (identical and packed ``Deployment``, frontier, ``Counters``); infeasible
  targets raise ``servopt.errors.InfeasibleError``.
- The brute-force oracle (``tests/search/enumerate.py``) and the synthetic bench tables
  (``tests/search/synthetic.py``) live with the tests: the wheel ships what users run.

Pipeline: ``prune`` (exact dominance) -> ``replicas`` (best replica per size, numba) -> ``sweep`` +
``xpyd_model`` (CP-SAT, one solve per frontier point) -> ``verify`` (float re-check).
``SolverSettings(composition="cpsat")`` swaps the replica menu for ``compose_model``: one CP-SAT
model that also chooses each replica's prefill/decode options and worker counts. Both CP-SAT
builders solve through ``cpsat`` (settings applied, one report per solve, work counters).
"""
