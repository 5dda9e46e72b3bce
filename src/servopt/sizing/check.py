"""Does a deployment serve an offered load within percentile targets? One simulation answers.

The offered load is Poisson (or constant / gamma) at ``rate`` requests/s with the workload's
lengths, or a closed loop of ``concurrency`` clients (each sends its next request when its last
one ends), drawn from a fixed seed: every candidate sees the *same* requests (common random
numbers), so comparisons between candidates are not noise, and a verdict never depends on the
machine.

Steady state, not a transient: a request that meets the targets lives at most
``E = TTFT target + (osl - 1) * TPOT target``; requests arriving in the first ``E`` (the system
filling up) and the last ``E`` (arrivals stop, load drains) are not measured, and enough requests
are simulated that the measured window is at least ``MEASURED_SPANS * E`` long.

Closed loop: the load adapts to the deployment (no stability condition). Measured are the requests
issued after the first ``CLOSED_WARM_ROUNDS * C`` (the burst of C simultaneous first requests and
its echo) that completed before the last request was issued (all C clients busy for their whole
life); ``CLOSED_ROUNDS * C`` requests (at least ``num_requests``) are simulated.

Early stop (open loop, ``check`` only): the simulation stops as soon as its verdict is settled, and
the verdict is the one the whole run gives. Fail: once ``fail_at(N, P)`` of the N measured requests
are past a target, the order statistic at ``floor((N - 1) P / 100) - 1`` already is, and so is the
P-th percentile (numpy interpolates between that statistic's successors, both at least it; the
``- 1`` absorbs any rounding of numpy's index). Pass: once every measured request is done, later
events cannot change their times. The answer's reported percentiles come from a whole run
(``plan.SizingResult.to_json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from servopt.errors import ServoptError
from servopt.simulate.engine import Deployment, EarlyStop, run
from servopt.simulate.workload import MAX_REQUESTS, Lengths, Load, Requests, make_requests
from servopt_kernels.sim import STOP_TPOT, STOP_TTFT, STOP_WATCHED_DONE

# The measured window spans at least this many request lifetimes (plus one each side to fill and drain).
MEASURED_SPANS = 2
MIN_MEASURED = 500
CLOSED_WARM_ROUNDS = 2
CLOSED_ROUNDS = 8


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
    """The load to serve: ``rate`` requests/s of ``lengths`` (open loop), or ``concurrency``
    closed-loop clients (``rate`` None); ``num_requests`` simulated (at least)."""

    rate: float | None
    lengths: Lengths
    arrival: str = "poisson"
    arrival_cv: float = 1.0
    num_requests: int = 2000
    seed: int = 0
    concurrency: int | None = None

    def __post_init__(self) -> None:
        _ = self.load  # validates: exactly one of rate and concurrency

    @property
    def load(self) -> Load:
        return Load(
            concurrency=self.concurrency,
            request_rate=self.rate,
            arrival=self.arrival,
            arrival_cv=self.arrival_cv,
        )

    @property
    def closed(self) -> bool:
        return self.concurrency is not None

    @property
    def clients(self) -> int:
        """The simulator's ``clients`` argument (0: open loop)."""
        return self.concurrency or 0

    def lifetime_ms(self, targets: Targets) -> float:
        """The longest a request meeting the targets lives."""
        return targets.ttft_ms + (self.lengths.max_osl - 1) * targets.tpot_ms

    def count(self, targets: Targets) -> int:
        """Requests to simulate: ``num_requests``, or more so the measured window spans enough
        lifetimes at this rate (closed loop: enough rounds of C requests)."""
        if self.closed:
            n, field, value = max(self.num_requests, CLOSED_ROUNDS * self.concurrency), "concurrency", None
        else:
            spans = MEASURED_SPANS + 2
            n = max(self.num_requests, math.ceil(self.rate * spans * self.lifetime_ms(targets) / 1000.0))
            field = "request_rate"
        if n > MAX_REQUESTS:
            value = self.concurrency if self.closed else self.rate
            raise ServoptError(
                field,
                value,
                f"a steady-state run at this load needs {n} simulated requests (more than {MAX_REQUESTS}); "
                "size a share of the load (e.g. a tenth) and multiply",
            )
        return n

    def requests(self, targets: Targets) -> Requests:
        return make_requests(self.load, self.lengths, self.count(targets), self.seed)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    ttft_ms: float  # at the TTFT percentile (inf: some request never finished)
    tpot_ms: float  # at the TPOT percentile
    binding: str  # "ttft", "tpot" or "" when both hold


def measured(requests: Requests, lifetime_ms: float, raw=None, clients: int = 0) -> np.ndarray:
    """Requests that arrived after the system filled and before arrivals stopped mattering
    (closed loop, ``clients`` > 0: issued after the warm-up rounds, done before the last issue)."""
    if clients:
        return _measured_closed(raw, clients)
    t = requests.arrival_ms
    mask = (t >= t[0] + lifetime_ms) & (t <= t[-1] - lifetime_ms)
    if mask.sum() < min(MIN_MEASURED, len(t) // 2):
        mask = np.zeros(len(t), dtype=bool)
        mask[len(t) // 10 :] = True  # too short a run for a window: all but the first tenth
    return mask


def _measured_closed(raw, clients: int) -> np.ndarray:
    n = len(raw.t_arrive)
    order = np.argsort(raw.t_arrive, kind="stable")  # issue order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    last_issue = float(raw.t_arrive.max())
    mask = (rank >= CLOSED_WARM_ROUNDS * clients) & (raw.t_done <= last_issue)
    if mask.sum() < min(MIN_MEASURED, n // 4):
        mask = rank >= min(clients, n // 2)  # too short a run: all but the first round
    return mask


def fail_at(n: int, percentile: float) -> int:
    """Values past a limit, out of ``n``, that put their ``percentile`` past it for certain
    (``np.percentile``'s linear interpolation; one more than the exact count, for rounding)."""
    return n - max(0, math.floor((n - 1) * percentile / 100.0) - 1)


def percentiles(
    raw, requests: Requests, targets: Targets, lifetime_ms: float, clients: int = 0
) -> tuple[float, float]:
    measured_ = measured(requests, lifetime_ms, raw, clients)
    # A run stopped once the measured requests were done holds only theirs.
    done = raw.t_done[measured_] if raw.stop == STOP_WATCHED_DONE else raw.t_done
    if np.any(done < 0):
        return math.inf, math.inf
    ttft = (raw.t_first - raw.t_arrive)[measured_]
    steps = (requests.osl - 1)[measured_]
    tpot = ((raw.t_done - raw.t_first)[measured_] / np.maximum(steps, 1))[steps > 0]
    t = float(np.percentile(ttft, targets.ttft_percentile))
    p = float(np.percentile(tpot, targets.tpot_percentile)) if tpot.size else 0.0
    return t, p


def check(
    deployment: Deployment, requests: Requests, targets: Targets, lifetime_ms: float, clients: int = 0
) -> Verdict:
    """Simulate ``requests`` on ``deployment`` (``clients`` > 0: closed loop); do the percentiles
    meet the targets? Open loop, the run stops once that is settled (module docstring): a failing
    verdict stopped early has ``inf`` for both values and its proven target as ``binding``."""
    raw = run(
        deployment, requests, clients=clients, early_stop=early_stop(requests, targets, lifetime_ms, clients)
    )
    if raw.stop in (STOP_TTFT, STOP_TPOT):
        return Verdict(False, math.inf, math.inf, "ttft" if raw.stop == STOP_TTFT else "tpot")
    t, p = percentiles(raw, requests, targets, lifetime_ms, clients)
    binding = "ttft" if t > targets.ttft_ms else ("tpot" if p > targets.tpot_ms else "")
    return Verdict(binding == "", t, p, binding)


def early_stop(
    requests: Requests, targets: Targets, lifetime_ms: float, clients: int = 0, *, fail: bool = True
) -> EarlyStop | None:
    """What settles the verdict of an open-loop run of ``requests`` (None: closed loop); without
    ``fail``, only every measured request done (all that attainment needs)."""
    if clients:
        return None
    watch = measured(requests, lifetime_ms)
    if not fail:
        return EarlyStop(watch)
    n_tpot = int((watch & (requests.osl > 1)).sum())
    return EarlyStop(
        watch,
        targets.ttft_ms,
        targets.tpot_ms,
        fail_at(int(watch.sum()), targets.ttft_percentile),
        fail_at(n_tpot, targets.tpot_percentile) if n_tpot else np.iinfo(np.int64).max,
    )


def attainment(raw, requests: Requests, targets: Targets, lifetime_ms: float, clients: int = 0) -> float:
    """The fraction of measured requests meeting *both* targets (TTFT <= ttft_ms and TPOT <=
    tpot_ms, each request on its own; a request with one output token has no TPOT to miss; one
    that never finished misses)."""
    m = measured(requests, lifetime_ms, raw, clients)
    if not m.any():
        return 0.0
    done = raw.t_done >= 0
    ttft = raw.t_first - raw.t_arrive
    steps = requests.osl - 1
    tpot = np.where(steps > 0, (raw.t_done - raw.t_first) / np.maximum(steps, 1), 0.0)
    good = done & (ttft <= targets.ttft_ms) & (tpot <= targets.tpot_ms)
    return float(good[m].sum()) / float(m.sum())


def served_rate(
    raw, requests: Requests, lifetime_ms: float, offered_rate: float | None, clients: int = 0
) -> float:
    """Requests/s the measured requests flow at: the offered rate (open loop, stable deployments),
    or, closed loop, measured completions over the span from their first issue to their last
    completion."""
    if not clients:
        return float(offered_rate)
    m = measured(requests, lifetime_ms, raw, clients)
    span = float(raw.t_done[m].max() - raw.t_arrive[m].min()) if m.any() else 0.0
    return float(m.sum()) / span * 1000.0 if span > 0 else 0.0
