"""Phase composition: static batching, aggregated in-flight batching, disaggregated workers, memory.

Everything here works on whole candidate batches (struct-of-arrays) and calls the perf database
once per op family per phase.
"""
