"""Compilation settings shared by every kernel.

fastmath=True would enable ``nnan``/``ninf`` and silently break the NaN = "not measured" convention
of the perf grids, so only the safe subset of flags is used.
"""

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
