"""Replica menus: at a TPOT cap, the best replica of every size, dominated sizes removed.

For one replica size s and a TPOT cap, the best replica rate R*(s) does not depend on how many
replicas are deployed or which other shapes they are packed with, so the deployment problem
splits exactly into (1) R*(s) per size (here, exhaustive enumeration over the pruned menus in a
numba kernel) and (2) choosing sizes and counts (CP-SAT, ``xpyd_model``). Two replicas of the same
size that differ only in rate or TPOT level are never both needed: the better one replaces the
other in any deployment. A size is dropped when a smaller size has rate >= and TPOT level <=
(``staircase``): replacing each of its replicas by the smaller one frees GPUs, keeps or raises the
rate, keeps or lowers TPOT and never adds a replica type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servopt.search.conventions import Conventions
from servopt.search.encode import TpotLevels, encode_rates
from servopt.search.options import ReplicaSpec, WorkerOptions
from servopt_kernels.xpyd_enum import best_replica_per_size, staircase


@dataclass(frozen=True, eq=False)
class ReplicaRows:
    """Candidate replicas at one TPOT cap, one per surviving size, sizes ascending (SoA, int64)."""

    size: np.ndarray  # GPUs of one replica
    units: np.ndarray  # rate units of one replica (degradations applied, floored)
    level: np.ndarray  # TPOT level of the replica's decode (or agg) option
    prefill: np.ndarray  # index into the pruned prefill options (-1 for agg)
    x: np.ndarray  # prefill workers (0 for agg)
    decode: np.ndarray  # index into the pruned decode (or agg) options
    y: np.ndarray  # decode workers (1 agg worker for agg)

    def __len__(self) -> int:
        return int(self.size.shape[0])

    def take(self, index: np.ndarray) -> ReplicaRows:
        return ReplicaRows(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def identical_candidates(rows: ReplicaRows, total_gpus: int) -> np.ndarray:
    """Rows that can be the best identical deployment (floor(G/s) copies of one row).

    Row r deploys value floor(G/s_r) * v_r on floor(G/s_r) * s_r GPUs at level t_r; a row another
    row matches or beats on all three (value up, level down, GPUs down) can never be the unique
    best under the (value, TPOT, GPUs) order, so it is dropped (exact; ties keep the smaller size).
    """
    n = total_gpus // rows.size
    value, gpus = n * rows.units, n * rows.size
    order = np.lexsort((rows.size, gpus, rows.level, -value))
    rank = np.empty(len(rows), dtype=np.int64)
    rank[order] = np.arange(len(rows))
    # Row j dominates row i if it comes first in (value desc, level, GPUs, size) order -- hence has
    # value >= -- and has level <= and GPUs <=.
    dominated = (
        (rank[None, :] < rank[:, None])
        & (rows.level[None, :] <= rows.level[:, None])
        & (gpus[None, :] <= gpus[:, None])
    ).any(axis=1)
    return ~dominated


def _class_bounds(gpus: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Start offsets of the runs of equal (GPU count, key) (options sorted so), plus the end."""
    if gpus.size == 0:
        return np.zeros(1, dtype=np.int64)
    change = (gpus[1:] != gpus[:-1]) | (key[1:] != key[:-1])
    return np.r_[np.flatnonzero(np.r_[True, change]), gpus.size].astype(np.int64)


def _chain_ends(level: np.ndarray, bounds: np.ndarray, cap: int) -> np.ndarray:
    """Per (GPU count, key) class, the end of its chain prefix with level <= cap.

    Classes come from the Pareto pruning: each is a chain sorted by TPOT with rising rate.
    """
    ends = np.empty(bounds.size - 1, dtype=np.int64)
    for c in range(bounds.size - 1):
        lo, hi = bounds[c], bounds[c + 1]
        ends[c] = lo + int(np.searchsorted(level[lo:hi], cap, side="right"))
    return ends


class DisaggMenu:
    """xPyD replicas from pruned prefill and decode options (see ``prune``)."""

    def __init__(
        self,
        prefill: WorkerOptions,
        decode: WorkerOptions,
        *,
        replica: ReplicaSpec,
        total_gpus: int,
        levels: TpotLevels,
        conventions: Conventions,
    ):
        self.prefill, self.decode = prefill, decode
        self.replica = replica
        self.limit = replica.size_limit(total_gpus)
        self.allowed = replica.allowed_sizes_mask(max(self.limit, 0))
        self.p_gpus = prefill.gpus
        self.p_units = encode_rates(prefill.rate_per_s, conventions.prefill_degradation)
        self.d_units = encode_rates(decode.rate_per_s, conventions.decode_degradation)
        self.d_level = levels.rank(decode.tpot_ms)
        self._bounds = _class_bounds(decode.gpus, decode.pair_key)
        self._c_start = self._bounds[:-1]
        self._c_gpus = decode.gpus[self._c_start] if len(decode) else decode.gpus
        self._c_key = decode.pair_key[self._c_start] if len(decode) else decode.pair_key
        buf = max(self.limit, 0) + 1
        self._out = [np.empty(buf, dtype=np.int64) for _ in range(6)]

    def rows(self, cap: int) -> ReplicaRows:
        """The non-dominated best replica per size with decode TPOT level <= cap."""
        ends = _chain_ends(self.d_level, self._bounds, cap)
        if self.limit < 2 or not np.any(ends > self._c_start) or self.p_gpus.size == 0:
            return _empty_rows()
        units, level, i, x, j, y = self._out
        best_replica_per_size(
            self.p_gpus,
            self.p_units,
            self.prefill.pair_key,
            self._c_gpus,
            self._c_key,
            self._c_start,
            ends,
            self.d_units,
            self.d_level,
            self.replica.max_prefill_worker,
            self.replica.max_decode_worker,
            self.allowed,
            self.replica.max_prefill_gpus,
            self.replica.max_decode_gpus,
            units,
            level,
            i,
            x,
            j,
            y,
        )
        units = np.where(units > 0, units, -1)
        sizes = np.flatnonzero(staircase(units, level))
        return ReplicaRows(
            size=sizes.astype(np.int64),
            units=units[sizes].copy(),
            level=level[sizes].copy(),
            prefill=i[sizes].copy(),
            x=x[sizes].copy(),
            decode=j[sizes].copy(),
            y=y[sizes].copy(),
        )


class AggMenu:
    """Aggregated serving: one worker is one replica."""

    def __init__(self, agg: WorkerOptions, *, total_gpus: int, levels: TpotLevels):
        self.agg = agg
        self.units = encode_rates(agg.rate_per_s)
        self.level = levels.rank(agg.tpot_ms)
        self.total_gpus = total_gpus
        self._bounds = _class_bounds(agg.gpus, np.zeros_like(agg.gpus))

    def rows(self, cap: int) -> ReplicaRows:
        """The non-dominated best worker per size with TPOT level <= cap."""
        starts, ends = self._bounds[:-1], _chain_ends(self.level, self._bounds, cap)
        # Per class the highest units under the cap, at its lowest level (units can tie after the
        # floor in encoding, and then the earlier chain entry has the lower TPOT).
        best = np.array(
            [
                lo + int(np.searchsorted(self.units[lo:hi], self.units[hi - 1]))
                for lo, hi in zip(starts, ends, strict=True)
                if hi > lo
            ],
            dtype=np.int64,
        )
        best = best[(self.units[best] > 0) & (self.agg.gpus[best] <= self.total_gpus)]
        if best.size == 0:
            return _empty_rows()
        limit = int(self.agg.gpus[best].max())
        units = np.full(limit + 1, -1, dtype=np.int64)
        level = np.full(limit + 1, -1, dtype=np.int64)
        units[self.agg.gpus[best]] = self.units[best]
        level[self.agg.gpus[best]] = self.level[best]
        keep = staircase(units, level)
        best = best[keep[self.agg.gpus[best]]]
        n = best.size
        return ReplicaRows(
            size=self.agg.gpus[best].copy(),
            units=self.units[best].copy(),
            level=self.level[best].copy(),
            prefill=np.full(n, -1, dtype=np.int64),
            x=np.zeros(n, dtype=np.int64),
            decode=best.astype(np.int64),
            y=np.ones(n, dtype=np.int64),
        )


def _empty_rows() -> ReplicaRows:
    z = np.zeros(0, dtype=np.int64)
    return ReplicaRows(z, z, z, z, z, z, z)
