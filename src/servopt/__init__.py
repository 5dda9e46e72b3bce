"""servopt: exact LLM serving deployment optimizer.

Measured GPU performance grids -> Numba kernels that evaluate whole batches of deployment
candidates -> an OR-Tools CP-SAT model that finds the Pareto-optimal aggregated and xPyD
disaggregated deployments under TTFT/TPOT targets.
"""

__version__ = "0.1.0"
