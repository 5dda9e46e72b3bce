"""Presenting results: rich tables, the terminal Pareto plot, saved files, deployment configs."""
