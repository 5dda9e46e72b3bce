"""Exact deployment search: layouts, pruning, CP-SAT composition, Pareto sweep, brute-force oracle."""
