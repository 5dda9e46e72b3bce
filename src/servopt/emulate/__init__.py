"""``servopt emulate``: an OpenAI-compatible endpoint serving a planned deployment's simulated timings.

``schedule`` (requests arriving in real time, scheduled by the simulator), ``server`` (the HTTP API
and metrics).
"""
