"""Rate sizing: the fewest GPUs that serve an offered request rate within percentile targets.

``check`` (targets, offered load, one simulated verdict), ``minimize`` (the min-GPU search with
optimistic bounds and simulation verification), ``options`` (worker options from a model's layouts).
"""
