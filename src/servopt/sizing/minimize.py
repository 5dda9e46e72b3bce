"""The fewest GPUs that serve an offered rate within percentile targets, verified by simulation.

A deployment *serves* the load when (a) it is stable: the workers' saturation throughput covers the
rate (otherwise the queue grows without bound, however short a simulation looks fine), and (b) a
simulation of the offered requests meets the TTFT and TPOT percentiles. Both are checked for every
answer; (a) is also the optimistic bound that prunes.

Aggregated: for each worker option (layout, batch cap) the fewest workers is searched upward from
the stability bound ``ceil(rate / saturation)`` (exponential steps, then bisection, then the
answer's neighbour is checked); options are visited best bound first and the search stops when the
next option's bound cannot beat the best verified answer, so no option the simulator would accept
at fewer GPUs is skipped.

Disaggregated: TTFT is the prefill pool's alone (the prefill worker sends the first token), so each
prefill option gets its fewest workers ``x`` for the TTFT target on its own; then (prefill, decode)
pairs are visited best bound first (``x * gpus_p + ceil(rate / decode saturation) * gpus_d``), the
fewest decode workers ``y`` found by simulating the whole replica, and the best verified pair kept.

Closed loop (``offered.concurrency`` C clients): the load adapts to the deployment, so there is no
stability condition and no saturation bound; the verdict is the percentiles at C clients, and more
workers only help. Agg: per option the fewest workers from 1 (same exponential steps and
bisection), options visited fewest GPUs per worker first and cut once one worker cannot beat the
best. Disagg: the prefill pool's TTFT is no longer its own (clients re-issue when decode ends), so
for each (prefill, decode) pair and each prefill count x upward the fewest decode workers y is
searched below the previous x's (more prefill never needs more decode); x stops once x prefill
workers plus one decode worker cannot beat the best, or y reached 1.

Most goodput per GPU (``max_goodput``, open loop): goodput is ``rate x attainment``, attainment the
fraction of measured requests meeting both targets; an unstable deployment (saturation below the
rate) has goodput 0 (its queue grows without bound, so in steady state no request meets a TTFT
target). So a stable deployment of G GPUs has at most ``rate / G`` goodput per GPU: candidates
(agg option x workers from the stability bound up; disagg pair x prefill x decode workers from
their bounds up) are visited fewest GPUs first from a heap, and the search stops once
``rate / G`` cannot beat the best (ties go to fewer GPUs), so nothing better is skipped.

Least cost (``unit_cost``: each worker weighs its integer USD-per-hour units, ``sizing.cost``,
instead of its GPUs): the same searches with every bound, cut and comparison in those units and the
GPU budget kept as a separate cap. A worker's units are positive, so more workers never cost less
and every bound above stays optimistic; with one system it is the GPU count times one price.

Counters (simulations, verification failures, pruned options) are deterministic: tests pin them.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field, replace

import numpy as np

from servopt.simulate.engine import Deployment, InstanceKind, run, run_many
from servopt.simulate.workload import Requests
from servopt.sizing.check import Offered, Targets, Verdict, attainment, check, early_stop, percentiles

# Saturation is measured with this many requests per client of a full batch (bounded below).
SATURATION_REQUESTS_PER_CLIENT = 4
SATURATION_MIN_REQUESTS = 400


@dataclass(frozen=True)
class PoolOption:
    """One kind of worker: ``kind`` holds ONE worker's instances (count = its dp x pp lanes)."""

    label: str
    kind: InstanceKind
    gpus: int  # per worker
    layout: object = None  # the worker's Layout, where it came from a model (for deployment files)
    system: str = ""  # the GPU system it runs on (disagg decode may run on another one)

    def workers(self, n: int) -> InstanceKind:
        return replace(self.kind, count=self.kind.count * n)


@dataclass
class Counters:
    simulations: int = 0
    verification_failures: int = 0  # candidates at their bound that the simulation rejected
    options_pruned: int = 0


@dataclass(frozen=True)
class Sized:
    """A verified answer: the deployment, its GPUs, and its simulated percentiles."""

    gpus: int
    pools: tuple[tuple[PoolOption, int], ...]  # (option, workers)
    verdict: Verdict
    deployment: Deployment
    attainment: float | None = None  # fraction of measured requests meeting both targets
    goodput: float | None = None  # requests/s meeting both targets

    @property
    def goodput_per_gpu(self) -> float | None:
        return None if self.goodput is None else self.goodput / self.gpus


@dataclass
class Sizer:
    """Min-GPU sizing for one offered load and targets (``budget``: most GPUs allowed)."""

    offered: Offered
    targets: Targets
    budget: int
    # KV transfer (fixed ms, ms per prompt token) of a replica (prefill option, x, decode option, y).
    transfer: object = None
    # What the search minimises, in integer units per worker of an option (min_cost: USD per hour
    # in sizing.cost's units); None: its GPUs. The GPU budget holds either way.
    unit_cost: object = None
    counters: Counters = field(default_factory=Counters)
    # A calibration's client-to-engine overhead, in every verification run (not in saturation runs:
    # it delays clients, not engines, so the stability bound stays optimistic).
    request_overhead_ms: float = 0.0
    _requests: Requests | None = None
    _saturation: dict = field(default_factory=dict)

    @property
    def requests(self) -> Requests:
        if self._requests is None:
            self._requests = self.offered.requests(self.targets)
        return self._requests

    def units(self, option: PoolOption) -> int:
        return option.gpus if self.unit_cost is None else self.unit_cost(option)

    def objective(self, sized: Sized | None) -> int | None:
        """The minimised integer of an answer (None for none)."""
        return None if sized is None else sum(n * self.units(o) for o, n in sized.pools)

    def most_workers(self, option: PoolOption, used_gpus: int, used_units: int, best: Sized | None) -> int:
        """Workers of ``option`` that fit the GPU budget next to ``used_gpus`` and still beat
        ``best`` next to ``used_units`` (negative: none)."""
        n = (self.budget - used_gpus) // option.gpus
        if best is not None:
            n = min(n, (self.objective(best) - 1 - used_units) // self.units(option))
        return n

    # -- the two verdict parts ------------------------------------------------------------
    def saturation(self, option: PoolOption, *, prefill_only: bool = False) -> float:
        """Requests/s one worker completes with every batch slot busy (closed loop)."""
        key, job = self._saturation_job(option, prefill_only=prefill_only)
        if key not in self._saturation:
            self._completion_rate(key, run(job[0], job[1], clients=job[2]).t_done)
        return self._saturation[key]

    def decode_saturation(self, option: PoolOption, feeder: PoolOption) -> float:
        """Requests/s one decode worker completes with every batch slot busy, fed by prefill
        workers fast enough never to starve it (the first feeder asked is the one used)."""
        key, job = self._saturation_job(option, feeder=feeder)
        if key not in self._saturation:
            self._completion_rate(key, run(job[0], job[1], clients=job[2]).t_done)
        return self._saturation[key]

    def prime(self, wanted: list[tuple[PoolOption, bool, PoolOption | None]]) -> None:
        """Simulate the saturation runs of ``wanted`` (option, prefill_only, decode feeder) not yet
        cached, on every core at once (``run_many``): the search asks for all of them before its
        first verdict anyway, and each run is the same run ``saturation`` would make."""
        keys, jobs = [], []
        for option, prefill_only, feeder in wanted:
            key, job = self._saturation_job(option, prefill_only=prefill_only, feeder=feeder)
            if key not in self._saturation and key not in keys:
                keys.append(key)
                jobs.append(job)
        for key, raw in zip(keys, run_many(jobs), strict=True):
            self._completion_rate(key, raw.t_done)

    def _saturation_job(
        self, option: PoolOption, *, prefill_only: bool = False, feeder: PoolOption | None = None
    ) -> tuple[tuple, tuple[Deployment, Requests, int]]:
        """The cache key and the closed-loop run that measures one worker's saturation."""
        kind = option.kind
        clients, full = self._full_batch(kind)
        if kind.role == "decode":
            if feeder is None:
                raise ValueError("use decode_saturation for decode options")
            key = (id(option), "decode")
            # Enough prefill instances never to starve it (bounded: the loop scans instances per event).
            prefill = replace(feeder.kind, count=feeder.kind.count * min(clients, 32))
            return key, (Deployment((prefill, option.workers(1)), 0.0, 0.0), full, clients)
        osl = np.ones_like(full.osl) if prefill_only else full.osl
        dep = Deployment((replace(kind, role="agg", pull=False),))
        return (id(option), prefill_only), (dep, Requests(full.arrival_ms, full.isl, osl), clients)

    def _full_batch(self, kind: InstanceKind) -> tuple[int, Requests]:
        """Clients that fill every batch slot of one worker, and the offered lengths repeated for a
        closed-loop run of SATURATION_REQUESTS_PER_CLIENT requests each (at least the minimum)."""
        clients = kind.policy.max_batch_size * kind.count
        n = max(SATURATION_MIN_REQUESTS, SATURATION_REQUESTS_PER_CLIENT * clients)
        req = self.requests
        reps = -(-n // len(req.isl))
        return clients, Requests(np.zeros(n), np.tile(req.isl, reps)[:n], np.tile(req.osl, reps)[:n])

    def _completion_rate(self, key, t_done: np.ndarray) -> float:
        """Requests/s completed after the first quarter (the pool filling up), cached under key."""
        self.counters.simulations += 1
        n = len(t_done)
        warm = n // 4
        span = float(t_done.max() - np.sort(t_done)[warm])
        rate = (n - warm - 1) / span * 1000.0 if span > 0 else math.inf
        self._saturation[key] = rate
        return rate

    def _check(self, deployment: Deployment, requests: Requests | None = None) -> Verdict:
        self.counters.simulations += 1
        lifetime = self.offered.lifetime_ms(self.targets)
        deployment = replace(deployment, request_overhead_ms=self.request_overhead_ms)
        return check(
            deployment, requests or self.requests, self.targets, lifetime, clients=self.offered.clients
        )

    # -- aggregated -------------------------------------------------------------------------
    def agg_bound(self, option: PoolOption) -> int:
        if self.offered.closed:
            return 1
        return max(1, math.ceil(self.offered.rate / self.saturation(option)))

    def agg_verdict(self, option: PoolOption, n: int) -> Verdict:
        if not self.offered.closed and n * self.saturation(option) < self.offered.rate:
            return Verdict(False, math.inf, math.inf, "capacity")
        return self._check(Deployment((option.workers(n),), request_overhead_ms=0.0))

    def fewest(self, verdict, lo: int, hi_gpus: int, gpus_each: int) -> tuple[int, Verdict] | None:
        """Smallest n >= lo with ``verdict(n).ok`` and n * gpus_each <= hi_gpus: exponential steps,
        bisection, then the neighbour below the answer is checked (monotone in n in practice)."""
        if lo * gpus_each > hi_gpus:
            return None
        v = verdict(lo)
        if v.ok:
            return lo, v
        self.counters.verification_failures += 1
        good, good_v, bad = None, None, lo
        step = 1
        while good is None:
            n = bad + step
            if n * gpus_each > hi_gpus:
                n = hi_gpus // gpus_each
                if n <= bad:
                    return None
                v = verdict(n)
                if not v.ok:
                    return None
                good, good_v = n, v
                break
            v = verdict(n)
            if v.ok:
                good, good_v = n, v
            else:
                bad, step = n, step * 2
        while good - bad > 1:
            mid = (good + bad) // 2
            v = verdict(mid)
            if v.ok:
                good, good_v = mid, v
            else:
                bad = mid
        return good, good_v

    def size_agg(self, options: list[PoolOption]) -> Sized | None:
        if not self.offered.closed:
            self.prime([(o, False, None) for o in options])
        bounds = sorted(((self.agg_bound(o) * self.units(o), i) for i, o in enumerate(options)))
        best: Sized | None = None
        for _, i in bounds:
            option = options[i]
            most = self.most_workers(option, 0, 0, best)
            if self.agg_bound(option) > most:
                self.counters.options_pruned += 1
                continue
            found = self.fewest(lambda n, o=option: self.agg_verdict(o, n), self.agg_bound(option), most, 1)
            if found is None:
                continue
            n, verdict = found
            if best is None or n * self.units(option) < self.objective(best):
                best = Sized(n * option.gpus, ((option, n),), verdict, Deployment((option.workers(n),)))
        return best

    # -- disaggregated ----------------------------------------------------------------------
    def _prefill_pool(self, option: PoolOption, x: int) -> Deployment:
        # The prefill pool alone: requests leave with their first token; a shared queue.
        kind = replace(option.workers(x), role="agg", pull=True)
        return Deployment((kind,))

    def prefill_fewest(self, option: PoolOption, limit: int) -> tuple[int, Verdict] | None:
        sat = self.saturation(option, prefill_only=True)
        lo = max(1, math.ceil(self.offered.rate / sat))
        req = self.requests
        first_only = Requests(req.arrival_ms, req.isl, np.ones_like(req.osl))

        def verdict(x: int) -> Verdict:
            if x * sat < self.offered.rate:
                return Verdict(False, math.inf, math.inf, "capacity")
            v = self._check(self._prefill_pool(option, x), first_only)
            ok = v.ttft_ms <= self.targets.ttft_ms
            return Verdict(ok, v.ttft_ms, 0.0, "" if ok else "ttft")

        return self.fewest(verdict, lo, limit, option.gpus)

    def disagg_deployment(self, p: PoolOption, x: int, d: PoolOption, y: int) -> Deployment:
        fixed, per_token = self.transfer(p, x, d, y) if self.transfer else (0.0, 0.0)
        return Deployment((p.workers(x), d.workers(y)), fixed, per_token)

    def size_disagg(self, prefill: list[PoolOption], decode: list[PoolOption]) -> Sized | None:
        if self.offered.closed:
            return self._size_disagg_closed(prefill, decode)
        best: Sized | None = None
        pools = []
        self.prime([(p, True, None) for p in prefill])
        for p in prefill:
            found = self.prefill_fewest(p, self.budget)
            if found is not None:
                pools.append((p, found[0]))
        if not pools:
            return None
        self.prime([(d, False, pools[0][0]) for d in decode])
        pairs = []
        for p, x in pools:
            for d in decode:
                y_lo = max(1, math.ceil(self.offered.rate / self.decode_saturation(d, p)))
                pairs.append((x * self.units(p) + y_lo * self.units(d), p, x, d, y_lo))
        pairs.sort(key=lambda t: (t[0], t[1].label, t[3].label))
        for _, p, x, d, y_lo in pairs:
            most = self.most_workers(d, x * p.gpus, x * self.units(p), best)
            if y_lo > most:
                self.counters.options_pruned += 1
                continue
            sat_d = self.decode_saturation(d, p)

            def verdict(y: int, p=p, x=x, d=d, sat_d=sat_d) -> Verdict:
                if y * sat_d < self.offered.rate:
                    return Verdict(False, math.inf, math.inf, "capacity")
                return self._check(self.disagg_deployment(p, x, d, y))

            found = self.fewest(verdict, y_lo, most, 1)
            if found is None:
                continue
            y, v = found
            if best is None or x * self.units(p) + y * self.units(d) < self.objective(best):
                best = Sized(x * p.gpus + y * d.gpus, ((p, x), (d, y)), v, self.disagg_deployment(p, x, d, y))
        return best

    def _size_disagg_closed(self, prefill: list[PoolOption], decode: list[PoolOption]) -> Sized | None:
        best: Sized | None = None
        pairs = sorted(
            ((p, d) for p in prefill for d in decode),
            key=lambda t: (self.units(t[0]) + self.units(t[1]), t[0].label, t[1].label),
        )
        for p, d in pairs:
            y_hi: int | None = None  # the fewest decode workers at the previous x
            x = 0
            while True:
                x += 1
                most = self.most_workers(d, x * p.gpus, x * self.units(p), best)
                if most < 1:
                    if x == 1:
                        self.counters.options_pruned += 1
                    break
                if y_hi is not None:
                    most = min(most, y_hi)

                def verdict(y: int, p=p, x=x, d=d) -> Verdict:
                    return self._check(self.disagg_deployment(p, x, d, y))

                found = self.fewest(verdict, 1, most, 1)
                if found is None:
                    continue
                y, v = found
                y_hi = y
                if best is None or x * self.units(p) + y * self.units(d) < self.objective(best):
                    best = Sized(
                        x * p.gpus + y * d.gpus, ((p, x), (d, y)), v, self.disagg_deployment(p, x, d, y)
                    )
                if y == 1:
                    break  # more prefill only costs more
        return best

    # -- most goodput per GPU ------------------------------------------------------------------
    def goodput_of(self, deployment: Deployment) -> tuple[float, Verdict]:
        """(attainment, percentile verdict) of one simulated deployment (open loop)."""
        self.counters.simulations += 1
        req = self.requests
        lifetime = self.offered.lifetime_ms(self.targets)
        raw = run(
            replace(deployment, request_overhead_ms=self.request_overhead_ms),
            req,
            early_stop=early_stop(req, self.targets, lifetime, fail=False),
        )
        t, p = percentiles(raw, req, self.targets, lifetime)
        binding = "ttft" if t > self.targets.ttft_ms else ("tpot" if p > self.targets.tpot_ms else "")
        return attainment(raw, req, self.targets, lifetime), Verdict(binding == "", t, p, binding)

    def max_goodput(
        self, agg: list[PoolOption], prefill: list[PoolOption], decode: list[PoolOption]
    ) -> Sized | None:
        """The stable deployment (agg, or one prefill/decode pair) within the budget with the most
        goodput per GPU; None when every one has goodput 0. Ties: fewer GPUs, then visit order."""
        rate = self.offered.rate
        heap: list = []
        seen: set = set()

        def push(key: tuple) -> None:
            if key in seen:
                return
            if key[0] == "agg":
                _, i, n = key
                gpus = n * agg[i].gpus
            else:
                _, i, j, x, y = key
                gpus = x * prefill[i].gpus + y * decode[j].gpus
            if gpus > self.budget:
                return
            seen.add(key)
            heapq.heappush(heap, (gpus, key))

        self.prime(
            [(o, False, None) for o in agg]
            + [(p, True, None) for p in prefill]
            + [(d, False, prefill[0]) for d in decode if prefill]
        )
        for i, o in enumerate(agg):
            push(("agg", i, self.agg_bound(o)))
        for i, p in enumerate(prefill):
            x_lo = max(1, math.ceil(rate / self.saturation(p, prefill_only=True)))
            for j, d in enumerate(decode):
                push(("disagg", i, j, x_lo, max(1, math.ceil(rate / self.decode_saturation(d, p)))))
        best: Sized | None = None
        while heap:
            gpus, key = heapq.heappop(heap)
            if best is not None and rate / gpus <= best.goodput_per_gpu:
                self.counters.options_pruned += len(heap) + 1
                break
            if key[0] == "agg":
                _, i, n = key
                pools = ((agg[i], n),)
                dep = Deployment((agg[i].workers(n),), request_overhead_ms=0.0)
                push(("agg", i, n + 1))
            else:
                _, i, j, x, y = key
                pools = ((prefill[i], x), (decode[j], y))
                dep = self.disagg_deployment(prefill[i], x, decode[j], y)
                push(("disagg", i, j, x + 1, y))
                push(("disagg", i, j, x, y + 1))
            att, verdict = self.goodput_of(dep)
            if att <= 0:
                continue
            cand = Sized(gpus, pools, verdict, dep, att, rate * att)
            if best is None or cand.goodput_per_gpu > best.goodput_per_gpu:
                best = cand
        return best
