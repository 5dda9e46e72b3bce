"""Compilation settings shared by every kernel.

Strict IEEE arithmetic (no fastmath flags). ``nnan``/``ninf`` would silently break the NaN = "not
measured" convention of the perf grids; ``reassoc``/``contract`` (the "safe" subset used before)
let LLVM reorder sums and fuse multiply-adds differently in the JIT and in the ahead-of-time module
(two optimisation pipelines), so one TTFT of a DeepSeek-V3 SGLang search read ...711 under the JIT
and ...712 under AOT: a run's last digit depended on whether the background AOT build had finished.
Without them both compile to the same IEEE operations and answer bit for bit alike
(tests/kernels/test_aot.py). Measured cost on the kernel benches: within noise to ~8% on some worker
tables; answers moved by at most 4e-16 relative (2e-14 in a simulated percentile).

numba keys its on-disk cache on each kernel file's stamp and bytecode, not on these flags: after
editing them alone, clear the numba cache (``$NUMBA_CACHE_DIR``) or the JIT keeps the old code
(the AOT module's fingerprint covers this file, so it is rebuilt).
"""

FASTMATH = frozenset()
