"""Floats to integers for the exact search: the ONE place where rounding happens.

- Rates become integer "rate units" (``RATE_UNITS_PER_REQ_PER_S`` per request/s), rounded DOWN, so
  the integer model never credits a deployment with more throughput than the float model gives it.
- TPOT never gets rounded: the distinct TPOT values of the options are sorted and each option
  carries the rank of its TPOT. Ranks preserve the order exactly, so a TPOT cap is an exact
  integer bound (``rank <= cap``) and the SLA test ``TPOT <= target`` loses nothing.
- TTFT only ever filters options (it is a property of one worker or one prefill option), which is
  done in float before encoding, so it needs no encoding at all.
"""

from __future__ import annotations

import numpy as np

from servopt.errors import ServoptError

# Integer rate units per request/s: micro-requests/s. A worker at 0.25 req/s loses at most
# 4e-6 of its rate to the floor; values stay far below 2**62 (see check_headroom).
RATE_UNITS_PER_REQ_PER_S = 1_000_000

# The largest integer objective the model may reach: CP-SAT works in int64 and reports objectives
# as doubles, so stay below 2**53 where every integer is exact in float64.
MAX_OBJECTIVE_UNITS = 2**53


def encode_rates(rate_per_s: np.ndarray, degradation: float = 1.0) -> np.ndarray:
    """``floor(rate * degradation * RATE_UNITS_PER_REQ_PER_S)`` as int64 (conservative)."""
    units = np.floor(np.asarray(rate_per_s, dtype=np.float64) * degradation * RATE_UNITS_PER_REQ_PER_S)
    return units.astype(np.int64)


def decode_rate(units: int | np.ndarray) -> float | np.ndarray:
    """Rate units back to requests/s (only for reporting bounds; reports use float rates)."""
    return np.asarray(units, dtype=np.float64) / RATE_UNITS_PER_REQ_PER_S


class TpotLevels:
    """The sorted distinct TPOT values of a pool; an option's level is its index here."""

    def __init__(self, tpot_ms: np.ndarray):
        self.values = np.unique(np.asarray(tpot_ms, dtype=np.float64))

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def rank(self, tpot_ms: np.ndarray) -> np.ndarray:
        """Exact level of each TPOT (every value must be one of the pool's own)."""
        ranks = np.searchsorted(self.values, tpot_ms)
        if np.any(ranks >= len(self)) or np.any(self.values[np.minimum(ranks, len(self) - 1)] != tpot_ms):
            raise ValueError("TPOT value outside the pool's levels")
        return ranks.astype(np.int64)

    def cap(self, tpot_limit_ms: float) -> int:
        """The highest level whose TPOT is <= the limit (-1: none is)."""
        return int(np.searchsorted(self.values, tpot_limit_ms, side="right")) - 1

    def ms(self, level: int) -> float:
        return float(self.values[level])


def check_headroom(max_replica_units: int, total_gpus: int, field: str = "rate_per_s") -> None:
    """Refuse rates so large that the integer objective could lose exactness."""
    if max_replica_units * max(total_gpus, 1) >= MAX_OBJECTIVE_UNITS:
        raise ServoptError(
            field,
            max_replica_units / RATE_UNITS_PER_REQ_PER_S,
            f"replica rate too large to encode exactly with {total_gpus} GPUs "
            f"(limit {MAX_OBJECTIVE_UNITS / RATE_UNITS_PER_REQ_PER_S / max(total_gpus, 1):.3g} req/s per GPU)",
        )
