"""What the search returns: deployments, the Pareto frontier, and deterministic work counters.

Every figure here is float, recomputed from the worker options (the integer model only chose);
``value_units`` keeps the integer objective the solver optimised, for exact comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["agg", "disagg"]
Kind = Literal["identical", "packed"]


@dataclass(frozen=True)
class ReplicaGroup:
    """``count`` identical replicas of one shape. Option indices point into the tables given to
    ``solve`` (agg, prefill, decode); ``*_row`` repeats those options' own ``row`` back-reference."""

    count: int
    gpus: int  # GPUs of one replica
    rate_per_s: float  # requests/s of one replica (degradations applied)
    ttft_ms: float
    tpot_ms: float
    concurrency: float  # requests in flight in one replica
    agg_option: int = -1
    agg_row: int = -1
    prefill_option: int = -1
    prefill_row: int = -1
    prefill_workers: int = 0
    prefill_gpus: int = 0  # per prefill worker
    decode_option: int = -1
    decode_row: int = -1
    decode_workers: int = 0
    decode_gpus: int = 0  # per decode worker


@dataclass(frozen=True)
class Deployment:
    """A whole cluster deployment: one group (identical) or up to K groups (packed)."""

    mode: Mode
    kind: Kind
    groups: tuple[ReplicaGroup, ...]
    total_gpus: int
    tokens_per_request: float
    value_units: int  # the integer objective: sum of count * replica rate units
    status: str  # OPTIMAL or FEASIBLE (time limit hit before the proof)

    @property
    def replicas(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def gpus_used(self) -> int:
        return sum(g.count * g.gpus for g in self.groups)

    @property
    def idle_gpus(self) -> int:
        return self.total_gpus - self.gpus_used

    @property
    def rate_per_s(self) -> float:
        return sum(g.count * g.rate_per_s for g in self.groups)

    @property
    def tokens_per_s(self) -> float:
        return self.rate_per_s * self.tokens_per_request

    @property
    def tokens_per_s_per_gpu(self) -> float:
        """The cluster metric: tokens/s over the whole GPU budget (idle GPUs count)."""
        return self.tokens_per_s / self.total_gpus

    @property
    def ttft_ms(self) -> float:
        return max(g.ttft_ms for g in self.groups)

    @property
    def tpot_ms(self) -> float:
        return max(g.tpot_ms for g in self.groups)

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1000.0 / self.tpot_ms if self.tpot_ms > 0 else math.inf

    @property
    def concurrency(self) -> float:
        return sum(g.count * g.concurrency for g in self.groups)


@dataclass(frozen=True)
class FrontierPoint:
    """One Pareto point: the best deployment whose TPOT is at most ``tpot_ms``."""

    deployment: Deployment

    @property
    def tpot_ms(self) -> float:
        return self.deployment.tpot_ms

    @property
    def tokens_per_s_per_user(self) -> float:
        return self.deployment.tokens_per_s_per_user

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.deployment.tokens_per_s_per_gpu


@dataclass
class Counters:
    """Deterministic work counters (CP-SAT figures are from num_workers=1 runs)."""

    options_in: dict[str, int] = field(default_factory=dict)
    options_kept: dict[str, int] = field(default_factory=dict)
    tpot_levels: int = 0
    replica_rows: int = 0  # candidate replicas at the SLA's TPOT cap
    solves: int = 0  # CP-SAT solves, tie-break solves included
    deterministic_time: float = 0.0
    branches: int = 0
    frontier_points: int = 0
    all_optimal: bool = True


@dataclass(frozen=True)
class ModeResult:
    """One serving mode's answers: identical (the peer's shape), packed, and the frontier."""

    mode: Mode
    identical: Deployment
    packed: Deployment
    frontier: tuple[FrontierPoint, ...]  # identical deployments, TPOT descending
    packed_frontier: tuple[FrontierPoint, ...] | None
    counters: Counters

    @property
    def packed_gain(self) -> float:
        """Relative throughput gain of packing the whole budget over identical replicas."""
        return self.packed.tokens_per_s / self.identical.tokens_per_s - 1.0


@dataclass(frozen=True)
class SearchResult:
    """Both modes' results; a mode is None when it was not asked for or is infeasible."""

    agg: ModeResult | None
    disagg: ModeResult | None
    infeasible: dict[str, str] = field(default_factory=dict)  # mode -> reason

    @property
    def best(self) -> ModeResult:
        """The mode whose identical deployment gives more tokens/s/GPU (the peer's choice rule)."""
        modes = [m for m in (self.agg, self.disagg) if m is not None]
        return max(modes, key=lambda m: m.identical.tokens_per_s_per_gpu)
