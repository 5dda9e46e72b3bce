"""Requests arriving in real time, scheduled by the simulator.

Every request that reaches the emulator is added with its arrival time; the token times of every
in-flight request follow the latest simulation (``servopt.simulate.engine.run``) of all requests
of the current epoch. This is exact by causality: a request arriving at time t changes nothing the
engines did before t, so tokens already sent stay right and later tokens move to where the
simulator now puts them. An epoch ends when every request of it has finished; the next arrival
starts a fresh one (the simulated engines are idle then, so nothing carries over).

Simulated time runs ``speedup`` times faster than the wall clock; figures reported by the emulator
are in simulated time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from servopt.simulate.engine import Deployment, RawRun, run
from servopt.simulate.workload import Requests


class LiveSchedule:
    def __init__(
        self, deployment: Deployment, *, speedup: float = 1.0, clock: Callable[[], float] = time.monotonic
    ):
        self.deployment = deployment
        self.speedup = speedup
        self.clock = clock
        self._reset()
        self.simulations = 0

    def _reset(self) -> None:
        self.origin = self.clock()
        self.arrival_ms: list[float] = []
        self.isl: list[int] = []
        self.osl: list[int] = []
        self.epoch_start_id = getattr(self, "next_id", 0)
        self.next_id = self.epoch_start_id
        self._raw: RawRun | None = None
        self._dirty = False

    def now_ms(self) -> float:
        """Simulated ms since the epoch began."""
        return (self.clock() - self.origin) * 1000.0 * self.speedup

    def wall_time(self, sim_ms: float) -> float:
        """The clock reading at which simulated time ``sim_ms`` of this epoch is reached."""
        return self.origin + sim_ms / 1000.0 / self.speedup

    def add(self, isl: int, osl: int) -> int:
        """A request arriving now; returns its id (ids keep growing across epochs)."""
        if self.arrival_ms and self._idle_now():
            self._reset()
        self.arrival_ms.append(self.now_ms())
        self.isl.append(int(isl))
        self.osl.append(int(osl))
        rid = self.next_id
        self.next_id += 1
        self._dirty = True
        return rid

    def _idle_now(self) -> bool:
        raw = self.raw()
        return bool(np.all(raw.t_done >= 0)) and float(raw.t_done.max()) <= self.now_ms()

    def raw(self) -> RawRun:
        """The latest simulation of this epoch's requests (re-run after new arrivals)."""
        if self._dirty or self._raw is None:
            req = Requests(
                np.asarray(self.arrival_ms, dtype=np.float64),
                np.asarray(self.isl, dtype=np.int64),
                np.asarray(self.osl, dtype=np.int64),
            )
            self._raw = run(self.deployment, req, record_tokens=True)
            self.simulations += 1
            self._dirty = False
        return self._raw

    def in_epoch(self, rid: int) -> bool:
        return self.epoch_start_id <= rid < self.next_id

    def token_times_ms(self, rid: int) -> np.ndarray:
        """Simulated ms (since the epoch began) at which each of the request's tokens is produced."""
        r = rid - self.epoch_start_id
        return self.raw().token_times_ms(r, self.osl[r])

    def arrival(self, rid: int) -> float:
        return self.arrival_ms[rid - self.epoch_start_id]

    def load_now(self) -> tuple[int, int, float]:
        """(waiting for a first token, generating, KV tokens in use) at this moment."""
        if not self.arrival_ms:
            return 0, 0, 0.0
        raw, now = self.raw(), self.now_ms()
        arrived = np.asarray(self.arrival_ms) <= now
        waiting = int(np.sum(arrived & ((raw.t_first > now) | (raw.t_first < 0))))
        running = int(np.sum((raw.t_first >= 0) & (raw.t_first <= now) & (raw.t_done > now)))
        tl = raw.timeline
        rows = tl[tl[:, 0] <= now]
        kv = float(rows[-1, 3]) if len(rows) else 0.0
        return waiting, running, kv
