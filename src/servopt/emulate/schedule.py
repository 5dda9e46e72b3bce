"""Requests arriving in real time, scheduled by the simulator.

Every request that reaches the emulator is added with its arrival time; the token times of every
in-flight request follow the latest simulation (``servopt.simulate.engine.run``) of all requests
of the current epoch. This is exact by causality: a request arriving at time t changes nothing the
engines did before t, so tokens already sent stay right and later tokens move to where the
simulator now puts them. An epoch ends when every request of it has finished; the next arrival
starts a fresh one (the simulated engines are idle then, so nothing carries over). A handler keeps
its request's :class:`Epoch`: if the next epoch begins while it is still sending (every token due,
the event loop behind), it reads the final times of its own.

Simulated time runs ``speedup`` times faster than the wall clock; figures reported by the emulator
are in simulated time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from servopt.simulate.engine import Deployment, RawRun, run
from servopt.simulate.workload import Requests


class Epoch:
    """The requests of one busy period, from an idle engine to the next.

    Its simulation is re-run after each new arrival; once the next epoch begins it gets no more
    arrivals, so its latest simulation is final. A request's handler holds its epoch, and keeps
    reading its token times from it even after the schedule has moved on.
    """

    def __init__(self, deployment: Deployment, origin: float, first_id: int):
        self.deployment = deployment
        self.origin = origin  # the clock reading at simulated time 0 of this epoch
        self.first_id = first_id
        self.arrival_ms: list[float] = []
        self.isl: list[int] = []
        self.osl: list[int] = []
        self._raw: RawRun | None = None
        self.simulations = 0

    @property
    def arrivals(self) -> int:
        """How many requests have joined: the simulation changes only when this does."""
        return len(self.arrival_ms)

    def __contains__(self, rid: int) -> bool:
        return self.first_id <= rid < self.first_id + len(self.arrival_ms)

    def add(self, arrival_ms: float, isl: int, osl: int) -> int:
        self.arrival_ms.append(arrival_ms)
        self.isl.append(int(isl))
        self.osl.append(int(osl))
        self._raw = None
        return self.first_id + len(self.arrival_ms) - 1

    def raw(self) -> RawRun:
        """The latest simulation of this epoch's requests (re-run after new arrivals)."""
        if self._raw is None:
            req = Requests(
                np.asarray(self.arrival_ms, dtype=np.float64),
                np.asarray(self.isl, dtype=np.int64),
                np.asarray(self.osl, dtype=np.int64),
            )
            self._raw = run(self.deployment, req, record_tokens=True)
            self.simulations += 1
        return self._raw

    def token_times_ms(self, rid: int) -> np.ndarray:
        """Simulated ms (since the epoch began) at which each of the request's tokens is produced."""
        r = rid - self.first_id
        return self.raw().token_times_ms(r, self.osl[r])

    def arrival(self, rid: int) -> float:
        return self.arrival_ms[rid - self.first_id]


class LiveSchedule:
    def __init__(
        self, deployment: Deployment, *, speedup: float = 1.0, clock: Callable[[], float] = time.monotonic
    ):
        self.deployment = deployment
        self.speedup = speedup
        self.clock = clock
        self.epoch = Epoch(deployment, clock(), 0)
        self._simulations_before = 0  # by the epochs before this one

    @property
    def simulations(self) -> int:
        return self._simulations_before + self.epoch.simulations

    @property
    def origin(self) -> float:
        return self.epoch.origin

    def now_ms(self) -> float:
        """Simulated ms since the epoch began."""
        return (self.clock() - self.epoch.origin) * 1000.0 * self.speedup

    def wall_time(self, sim_ms: float) -> float:
        """The clock reading at which simulated time ``sim_ms`` of this epoch is reached."""
        return self.epoch.origin + sim_ms / 1000.0 / self.speedup

    def add(self, isl: int, osl: int, at: float | None = None) -> int:
        """A request that arrived at clock reading ``at`` (default: now); returns its id (ids keep
        growing across epochs).

        ``at`` is when the server had it (its body read), before parsing it, counting its tokens and
        re-simulating (a real server's clock starts there too). Those few ms are in the past when the
        request joins: tokens of others sent in that window followed a schedule without it. Arrivals
        stay in order: one whose handler was overtaken arrives with the last.
        """
        at = self.clock() if at is None else min(at, self.clock())
        if self.epoch.arrival_ms and self._idle_at(at):
            self._simulations_before += self.epoch.simulations
            next_id = self.epoch.first_id + len(self.epoch.arrival_ms)
            self.epoch = Epoch(self.deployment, at, next_id)
        arrival = (at - self.epoch.origin) * 1000.0 * self.speedup
        if self.epoch.arrival_ms:
            arrival = max(arrival, self.epoch.arrival_ms[-1])
        return self.epoch.add(arrival, isl, osl)

    def _idle_at(self, at: float) -> bool:
        raw = self.epoch.raw()
        at_ms = (at - self.epoch.origin) * 1000.0 * self.speedup
        return bool(np.all(raw.t_done >= 0)) and float(raw.t_done.max()) <= at_ms

    def raw(self) -> RawRun:
        return self.epoch.raw()

    def in_epoch(self, rid: int) -> bool:
        return rid in self.epoch

    def token_times_ms(self, rid: int) -> np.ndarray:
        return self.epoch.token_times_ms(rid)

    def arrival(self, rid: int) -> float:
        return self.epoch.arrival(rid)

    def load_now(self) -> tuple[int, int, float]:
        """(waiting for a first token, generating, KV tokens in use) at this moment."""
        if not self.epoch.arrival_ms:
            return 0, 0, 0.0
        raw, now = self.raw(), self.now_ms()
        arrived = np.asarray(self.epoch.arrival_ms) <= now
        waiting = int(np.sum(arrived & ((raw.t_first > now) | (raw.t_first < 0))))
        running = int(np.sum((raw.t_first >= 0) & (raw.t_first <= now) & (raw.t_done > now)))
        tl = raw.timeline
        rows = tl[tl[:, 0] <= now]
        kv = float(rows[-1, 3]) if len(rows) else 0.0
        return waiting, running, kv
