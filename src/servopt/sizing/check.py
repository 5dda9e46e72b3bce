"""Does a deployment serve an offered load within percentile targets? One simulation answers.

The offered load is Poisson (or constant / gamma) at ``rate`` requests/s with the workload's
lengths, drawn from a fixed seed: every candidate sees the *same* requests (common random
numbers), so comparisons between candidates are not noise, and a verdict never depends on the
machine.

Steady state, not a transient: a request that meets the targets lives at most
``E = TTFT target + (osl - 1) * TPOT target``; requests arriving in the first ``E`` (the system
filling up) and the last ``E`` (arrivals stop, load drains) are not measured, and enough requests
are simulated that the measured window is at least ``MEASURED_SPANS * E`` long.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from servopt.errors import ServoptError
from servopt.simulate.engine import Deployment, run
from servopt.simulate.workload import MAX_REQUESTS, Lengths, Load, Requests, make_requests

# The measured window spans at least this many request lifetimes (plus one each side to fill and drain).
MEASURED_SPANS = 2
MIN_MEASURED = 500


@dataclass(frozen=True)
class Targets:
    """Latency targets at percentiles (P in (0, 100); 50 is the median, not the mean)."""

    ttft_ms: float
    tpot_ms: float
    ttft_percentile: float = 99.0
    tpot_percentile: float = 99.0

    def __post_init__(self) -> None:
        for name in ("ttft_ms", "tpot_ms"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ServoptError(name, v, "must be a finite number of ms > 0")
        for name in ("ttft_percentile", "tpot_percentile"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0 < v < 100):
                raise ServoptError(name, v, "must be a percentile in (0, 100), e.g. 90 or 99")


@dataclass(frozen=True)
class Offered:
    """The load to serve: ``rate`` requests/s of ``lengths``; ``num_requests`` simulated."""

    rate: float
    lengths: Lengths
    arrival: str = "poisson"
    arrival_cv: float = 1.0
    num_requests: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        Load(request_rate=self.rate, arrival=self.arrival, arrival_cv=self.arrival_cv)  # validates

    def lifetime_ms(self, targets: Targets) -> float:
        """The longest a request meeting the targets lives."""
        return targets.ttft_ms + (self.lengths.max_osl - 1) * targets.tpot_ms

    def count(self, targets: Targets) -> int:
        """Requests to simulate: ``num_requests``, or more so the measured window spans enough
        lifetimes at this rate."""
        spans = MEASURED_SPANS + 2
        n = max(self.num_requests, math.ceil(self.rate * spans * self.lifetime_ms(targets) / 1000.0))
        if n > MAX_REQUESTS:
            raise ServoptError(
                "request_rate",
                self.rate,
                f"a steady-state run at this rate needs {n} simulated requests (more than {MAX_REQUESTS}); "
                "size a share of the load (e.g. rate / 10) and multiply",
            )
        return n

    def requests(self, targets: Targets) -> Requests:
        return make_requests(
            Load(request_rate=self.rate, arrival=self.arrival, arrival_cv=self.arrival_cv),
            self.lengths,
            self.count(targets),
            self.seed,
        )


@dataclass(frozen=True)
class Verdict:
    ok: bool
    ttft_ms: float  # at the TTFT percentile (inf: some request never finished)
    tpot_ms: float  # at the TPOT percentile
    binding: str  # "ttft", "tpot" or "" when both hold


def measured(requests: Requests, lifetime_ms: float) -> np.ndarray:
    """Requests that arrived after the system filled and before arrivals stopped mattering."""
    t = requests.arrival_ms
    mask = (t >= t[0] + lifetime_ms) & (t <= t[-1] - lifetime_ms)
    if mask.sum() < min(MIN_MEASURED, len(t) // 2):
        mask = np.zeros(len(t), dtype=bool)
        mask[len(t) // 10 :] = True  # too short a run for a window: all but the first tenth
    return mask


def percentiles(raw, requests: Requests, targets: Targets, lifetime_ms: float) -> tuple[float, float]:
    measured_ = measured(requests, lifetime_ms)
    if np.any(raw.t_done < 0):
        return math.inf, math.inf
    ttft = (raw.t_first - raw.t_arrive)[measured_]
    steps = (requests.osl - 1)[measured_]
    tpot = ((raw.t_done - raw.t_first)[measured_] / np.maximum(steps, 1))[steps > 0]
    t = float(np.percentile(ttft, targets.ttft_percentile))
    p = float(np.percentile(tpot, targets.tpot_percentile)) if tpot.size else 0.0
    return t, p


def check(deployment: Deployment, requests: Requests, targets: Targets, lifetime_ms: float) -> Verdict:
    """Simulate ``requests`` on ``deployment``; do the percentiles meet the targets?"""
    raw = run(deployment, requests)
    t, p = percentiles(raw, requests, targets, lifetime_ms)
    binding = "ttft" if t > targets.ttft_ms else ("tpot" if p > targets.tpot_ms else "")
    return Verdict(binding == "", t, p, binding)
