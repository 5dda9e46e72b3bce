"""The load-aware serving simulator: engine instances, queues, per-request latencies.

``scenario.simulate`` runs one deployment under an offered load; ``build`` turns a planned
deployment into engine instances with step-time tables (``step_time``) and KV capacities;
``engine`` runs the compiled loop (``servopt_kernels.sim``); ``metrics`` turns per-request times
into the figures benchmark clients report; ``policy`` holds the engines' scheduling defaults;
``workload`` the arrivals and request lengths.
"""
