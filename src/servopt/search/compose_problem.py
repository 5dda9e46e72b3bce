"""The integer problem the "cpsat" composition model reads, and the deployments it returns.

Built from the same pruned, encoded pools as the "menu" engine (``replicas.DisaggMenu`` and
``AggMenu`` hold them: rates in integer units from ``encode``, TPOT as levels), so both engines
solve one integer problem and their answers compare exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servopt.search.conventions import Conventions
from servopt.search.encode import TpotLevels
from servopt.search.options import Sla
from servopt.search.replicas import AggMenu, DisaggMenu, ReplicaRows
from servopt.search.xpyd_model import Packing


@dataclass(frozen=True, eq=False)
class ComposeProblem:
    """Everything the model reads, in integers.

    Decode arrays hold the agg pool for aggregated serving (``agg=True``), where the prefill
    arrays are empty. ``*_ttft_ok`` say which options meet the TTFT target (checked in float).
    """

    d_gpus: np.ndarray
    d_units: np.ndarray
    d_level: np.ndarray
    d_key: np.ndarray
    d_ttft_ok: np.ndarray
    p_gpus: np.ndarray
    p_units: np.ndarray
    p_key: np.ndarray
    p_ttft_ok: np.ndarray
    n_levels: int
    sizes: np.ndarray  # allowed replica sizes, ascending, each <= the size limit
    total_gpus: int
    max_x: int  # prefill workers per replica (0 for agg)
    max_y: int  # decode workers per replica (1 for agg)
    max_p_pool: int = 0  # GPUs of the prefill pool per replica; 0 = no cap
    max_d_pool: int = 0
    agg: bool = False

    @property
    def empty(self) -> bool:
        return len(self.d_gpus) == 0 or (not self.agg and len(self.p_gpus) == 0)

    def reachable_sizes(self) -> np.ndarray:
        """Allowed sizes within the budget that x prefill + y decode workers can make (agg: a
        worker's size)."""
        if self.agg:
            reach = set(np.unique(self.d_gpus).tolist())
        else:
            p_pools = {x * int(g) for g in np.unique(self.p_gpus) for x in range(1, self.max_x + 1)}
            d_pools = {y * int(g) for g in np.unique(self.d_gpus) for y in range(1, self.max_y + 1)}
            if self.max_p_pool:
                p_pools = {s for s in p_pools if s <= self.max_p_pool}
            if self.max_d_pool:
                d_pools = {s for s in d_pools if s <= self.max_d_pool}
            reach = {a + b for a in p_pools for b in d_pools}
        sizes = [s for s in self.sizes.tolist() if s in reach and s <= self.total_gpus]
        return np.array(sizes, dtype=np.int64)

    def value_bound(self) -> int:
        """No deployment exceeds this many rate units: a replica's rate is at most its GPUs times
        the best rate per GPU of either pool, and the replicas share G GPUs."""
        G = self.total_gpus
        per_gpu = int(((self.d_units * G + self.d_gpus - 1) // self.d_gpus).max())
        if not self.agg:
            per_gpu = min(per_gpu, int(((self.p_units * G + self.p_gpus - 1) // self.p_gpus).max()))
        return max(per_gpu, 0)


@dataclass(frozen=True)
class Choice:
    """A deployment: replica types (rows, sizes ascending, indices into the pools) and counts."""

    rows: ReplicaRows
    packing: Packing


def disagg_problem(
    menu: DisaggMenu, *, levels: TpotLevels, sla: Sla, conventions: Conventions, total_gpus: int
) -> ComposeProblem:
    """The disaggregated problem over the menu's pruned pools (rates and levels encoded there)."""
    replica, pre, dec = menu.replica, menu.prefill, menu.decode
    return ComposeProblem(
        d_gpus=dec.gpus,
        d_units=menu.d_units,
        d_level=menu.d_level,
        d_key=dec.pair_key,
        d_ttft_ok=np.ones(len(dec), dtype=np.bool_),
        p_gpus=pre.gpus,
        p_units=menu.p_units,
        p_key=pre.pair_key,
        p_ttft_ok=conventions.disagg_ttft_factor * pre.ttft_ms <= sla.ttft_ms,
        n_levels=len(levels),
        sizes=np.flatnonzero(menu.allowed).astype(np.int64),
        total_gpus=total_gpus,
        max_x=replica.max_prefill_worker,
        max_y=replica.max_decode_worker,
        max_p_pool=replica.max_prefill_gpus,
        max_d_pool=replica.max_decode_gpus,
    )


def agg_problem(menu: AggMenu, *, levels: TpotLevels, sla: Sla, total_gpus: int) -> ComposeProblem:
    """The aggregated problem: one agg worker per replica, replica sizes the workers' own."""
    agg = menu.agg
    none = np.zeros(0, dtype=np.int64)
    return ComposeProblem(
        d_gpus=agg.gpus,
        d_units=menu.units,
        d_level=menu.level,
        d_key=np.zeros(len(agg), dtype=np.int64),
        d_ttft_ok=agg.ttft_ms <= sla.ttft_ms,
        p_gpus=none,
        p_units=none,
        p_key=none,
        p_ttft_ok=np.zeros(0, dtype=np.bool_),
        n_levels=len(levels),
        sizes=np.unique(agg.gpus[agg.gpus <= total_gpus]).astype(np.int64),
        total_gpus=total_gpus,
        max_x=0,
        max_y=1,
        agg=True,
    )
