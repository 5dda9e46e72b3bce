"""Min-GPU sizing against brute force: every option at every worker count, simulated with the same
requests; the search must find the same fewest GPUs. Plus the sanity properties users rely on."""

import math
from dataclasses import replace

import numpy as np
import pytest
from tests.simulate.test_engine import smooth_tables

from servopt.simulate.engine import Deployment, InstanceKind
from servopt.simulate.policy import ENGINE_DEFAULTS
from servopt.simulate.workload import Lengths
from servopt.sizing import check, minimize
from servopt.sizing.check import Offered, Targets
from servopt.sizing.minimize import PoolOption, Sizer


def option(role: str, gpus: int, speed: float, cap: int, backend: str = "vllm") -> PoolOption:
    policy = ENGINE_DEFAULTS[backend].with_overrides(max_batch_size=cap, max_num_tokens=4096)
    kind = InstanceKind(role, 1, policy, 200_000, smooth_tables(speed), float(gpus))
    return PoolOption(f"{role} g{gpus} x{speed} b{cap}", kind, gpus)


def instance(seed: int):
    rng = np.random.default_rng(seed)
    offered = Offered(
        rate=float(rng.uniform(5.0, 120.0)),
        lengths=Lengths(int(rng.integers(200, 1500)), int(rng.integers(20, 200)), 0.5, 0.5),
        num_requests=300,
        seed=seed,
    )
    targets = Targets(float(rng.uniform(150, 1500)), float(rng.uniform(8, 40)), 90.0, 90.0)
    agg = [option("agg", g, s, c) for g, s, c in [(1, 1.0, 16), (2, 0.55, 32), (4, 0.3, 64), (1, 1.0, 64)]]
    return offered, targets, agg


def brute_agg(sizer: Sizer, options: list[PoolOption]) -> int | None:
    best = None
    for o in options:
        for n in range(1, sizer.budget // o.gpus + 1):
            if sizer.agg_verdict(o, n).ok:
                best = n * o.gpus if best is None else min(best, n * o.gpus)
                break  # more workers of this option only cost more
    return best


def whole_runs(monkeypatch):
    """The oracles simulate every request (no early stop): the search's early-stopped verdicts are
    checked against whole runs, not against themselves."""
    monkeypatch.setattr(check, "early_stop", lambda *args, **kwargs: None)
    monkeypatch.setattr(minimize, "early_stop", lambda *args, **kwargs: None)


@pytest.mark.parametrize("seed", range(100))
def test_agg_sizing_equals_brute_force(seed, monkeypatch):
    offered, targets, options = instance(seed)
    sizer = Sizer(offered, targets, budget=96)
    got = sizer.size_agg(options)
    whole_runs(monkeypatch)
    oracle = Sizer(offered, targets, budget=96)
    want = brute_agg(oracle, options)
    assert (got.gpus if got else None) == want
    if got:
        # The answer was verified: it is stable and its simulated percentiles meet the targets.
        assert (
            got.verdict.ok
            and got.verdict.ttft_ms <= targets.ttft_ms
            and got.verdict.tpot_ms <= targets.tpot_ms
        )
        assert sizer.counters.simulations <= oracle.counters.simulations


def brute_disagg(sizer: Sizer, prefill, decode, max_workers: int) -> int | None:
    best = None
    for p in prefill:
        sat_p = sizer.saturation(p, prefill_only=True)
        for x in range(1, max_workers + 1):
            for d in decode:
                sat_d = sizer.decode_saturation(d, p)
                for y in range(1, max_workers + 1):
                    gpus = x * p.gpus + y * d.gpus
                    if gpus > sizer.budget or (best is not None and gpus >= best):
                        continue
                    if x * sat_p < sizer.offered.rate or y * sat_d < sizer.offered.rate:
                        continue
                    if sizer._check(sizer.disagg_deployment(p, x, d, y)).ok:
                        best = gpus
    return best


@pytest.mark.parametrize("seed", range(30))
def test_disagg_sizing_equals_brute_force(seed, monkeypatch):
    offered, targets, _ = instance(100 + seed)
    prefill = [option("prefill", 1, 1.0, 64), option("prefill", 2, 0.5, 64)]
    decode = [option("decode", 1, 0.8, 16), option("decode", 2, 0.45, 64)]
    sizer = Sizer(offered, targets, budget=40)
    got = sizer.size_disagg(prefill, decode)
    whole_runs(monkeypatch)
    want = brute_disagg(Sizer(offered, targets, budget=40), prefill, decode, max_workers=24)
    assert (got.gpus if got else None) == want


def gpus_for(rate: float, ttft: float, tpot: float, pct: float = 90.0) -> float:
    offered = Offered(rate=rate, lengths=Lengths(800, 100, 0.5, 0.5), num_requests=300, seed=1)
    _, _, options = instance(0)
    got = Sizer(offered, Targets(ttft, tpot, pct, pct), budget=64).size_agg(options)
    return got.gpus if got else math.inf


def test_more_rate_never_needs_fewer_gpus():
    counts = [gpus_for(r, 800.0, 30.0) for r in (2.0, 5.0, 10.0, 20.0, 40.0)]
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_tighter_percentile_never_needs_fewer_gpus():
    counts = [gpus_for(15.0, 400.0, 20.0, pct) for pct in (50.0, 90.0, 99.0)]
    assert counts == sorted(counts)


def test_far_below_capacity_the_smallest_deployment_serves():
    # One 1-GPU worker meets the targets alone at a trickle of requests.
    assert gpus_for(0.2, 2000.0, 60.0) == 1


# -- closed loop: C clients instead of a rate ---------------------------------------------------
def closed_instance(seed: int):
    offered, targets, agg = instance(seed)
    rng = np.random.default_rng(1000 + seed)
    closed = Offered(
        rate=None,
        lengths=offered.lengths,
        num_requests=300,
        seed=seed,
        concurrency=int(rng.integers(1, 96)),
    )
    return closed, targets, agg


def brute_closed_agg(sizer: Sizer, options: list[PoolOption]) -> int | None:
    """Every option at every worker count within the budget (no early stop: monotonicity is not
    assumed by the oracle)."""
    best = None
    for o in options:
        for n in range(1, sizer.budget // o.gpus + 1):
            if (best is None or n * o.gpus < best) and sizer.agg_verdict(o, n).ok:
                best = n * o.gpus
    return best


@pytest.mark.parametrize("seed", range(100))
def test_closed_loop_agg_sizing_equals_brute_force(seed):
    offered, targets, options = closed_instance(seed)
    sizer = Sizer(offered, targets, budget=48)
    got = sizer.size_agg(options)
    oracle = Sizer(offered, targets, budget=48)
    want = brute_closed_agg(oracle, options)
    assert (got.gpus if got else None) == want
    if got:
        assert got.verdict.ok and got.verdict.ttft_ms <= targets.ttft_ms
        assert got.verdict.tpot_ms <= targets.tpot_ms


def brute_closed_disagg(sizer: Sizer, prefill, decode) -> int | None:
    best = None
    for p in prefill:
        for d in decode:
            for x in range(1, sizer.budget // p.gpus + 1):
                for y in range(1, (sizer.budget - x * p.gpus) // d.gpus + 1):
                    gpus = x * p.gpus + y * d.gpus
                    if best is not None and gpus >= best:
                        continue
                    if sizer._check(sizer.disagg_deployment(p, x, d, y)).ok:
                        best = gpus
    return best


@pytest.mark.parametrize("seed", range(30))
def test_closed_loop_disagg_sizing_equals_brute_force(seed):
    offered, targets, _ = closed_instance(100 + seed)
    offered = Offered(
        None, offered.lengths, num_requests=200, seed=seed, concurrency=offered.concurrency // 2 + 1
    )
    prefill = [option("prefill", 1, 1.0, 64), option("prefill", 2, 0.5, 64)]
    decode = [option("decode", 1, 0.8, 16), option("decode", 2, 0.45, 64)]
    got = Sizer(offered, targets, budget=16).size_disagg(prefill, decode)
    want = brute_closed_disagg(Sizer(offered, targets, budget=16), prefill, decode)
    assert (got.gpus if got else None) == want


def gpus_for_clients(clients: int, ttft: float, tpot: float, pct: float = 90.0) -> float:
    offered = Offered(None, Lengths(800, 100, 0.5, 0.5), num_requests=300, seed=1, concurrency=clients)
    _, _, options = instance(0)
    got = Sizer(offered, Targets(ttft, tpot, pct, pct), budget=64).size_agg(options)
    return got.gpus if got else math.inf


def test_more_clients_never_need_fewer_gpus():
    counts = [gpus_for_clients(c, 800.0, 30.0) for c in (1, 8, 32, 96, 200)]
    assert counts == sorted(counts) and counts[0] < counts[-1]


def test_tighter_percentile_never_needs_fewer_gpus_closed_loop():
    counts = [gpus_for_clients(64, 400.0, 20.0, pct) for pct in (50.0, 90.0, 99.0)]
    assert counts == sorted(counts)


def test_one_client_is_served_by_the_smallest_deployment():
    assert gpus_for_clients(1, 2000.0, 60.0) == 1


# -- most goodput per GPU -----------------------------------------------------------------------
def brute_goodput(sizer: Sizer, agg, prefill, decode) -> tuple[float, int] | None:
    """Every stable deployment within the budget simulated: (most goodput per GPU, its GPUs, fewest
    on ties); unstable ones have goodput 0; None when every goodput is 0."""
    rate, best = sizer.offered.rate, None

    def consider(gpus: int, dep) -> None:
        nonlocal best
        att, _ = sizer.goodput_of(dep)
        if att > 0:
            cand = (rate * att / gpus, -gpus)
            best = cand if best is None or cand > best else best

    for o in agg:
        for n in range(1, sizer.budget // o.gpus + 1):
            if n * sizer.saturation(o) >= rate:
                consider(n * o.gpus, Deployment((o.workers(n),), request_overhead_ms=0.0))
    for p in prefill:
        for d in decode:
            for x in range(1, sizer.budget // p.gpus + 1):
                for y in range(1, (sizer.budget - x * p.gpus) // d.gpus + 1):
                    stable = x * sizer.saturation(p, prefill_only=True) >= rate
                    if stable and y * sizer.decode_saturation(d, p) >= rate:
                        consider(x * p.gpus + y * d.gpus, sizer.disagg_deployment(p, x, d, y))
    return None if best is None else (best[0], -best[1])


def goodput_instance(seed: int):
    offered, targets, agg = instance(200 + seed)
    rng = np.random.default_rng(seed)
    offered = Offered(float(rng.uniform(2.0, 30.0)), offered.lengths, num_requests=200, seed=seed)
    prefill = [option("prefill", 1, 1.0, 64), option("prefill", 2, 0.5, 64)]
    decode = [option("decode", 1, 0.8, 16), option("decode", 2, 0.45, 64)]
    return offered, targets, agg[:3], prefill, decode


@pytest.mark.parametrize("seed", range(100))
def test_max_goodput_per_gpu_equals_brute_force(seed, monkeypatch):
    offered, targets, agg, prefill, decode = goodput_instance(seed)
    sizer = Sizer(offered, targets, budget=12)
    got = sizer.max_goodput(agg, prefill, decode)
    whole_runs(monkeypatch)
    oracle = Sizer(offered, targets, budget=12)
    want = brute_goodput(oracle, agg, prefill, decode)
    assert (None if got is None else (got.goodput_per_gpu, got.gpus)) == want
    if got is not None:
        assert 0 < got.attainment <= 1 and got.goodput == offered.rate * got.attainment
        assert sizer.counters.simulations <= oracle.counters.simulations


# -- least cost: workers weigh their system's price, not their GPUs -------------------------------
def on(o: PoolOption, system: str) -> PoolOption:
    return replace(o, label=f"{o.label} {system}", system=system)


def cost_instance(seed: int):
    """Two systems at random integer prices per GPU-hour (sizing.cost units); agg options on both,
    prefill on "a", decode on "b" (``--decode_system``)."""
    offered, targets, agg = instance(300 + seed)
    rng = np.random.default_rng(seed)
    units = {"a": int(rng.integers(10_000, 60_000)), "b": int(rng.integers(10_000, 60_000))}
    agg = [on(agg[0], "a"), on(agg[1], "b"), on(agg[2], "b"), on(agg[3], "a")]
    prefill = [on(option("prefill", 1, 1.0, 64), "a"), on(option("prefill", 2, 0.5, 64), "a")]
    decode = [on(option("decode", 1, 0.8, 16), "b"), on(option("decode", 2, 0.45, 64), "b")]
    return offered, targets, units, agg, prefill, decode


def brute_cost(sizer: Sizer, units, agg, prefill, decode) -> tuple[int | None, int | None]:
    """The least cost of agg (every option x workers) and of disagg (every (x, y)) within the budget."""
    best_agg = best = None
    for o in agg:
        for n in range(1, sizer.budget // o.gpus + 1):
            if sizer.agg_verdict(o, n).ok:
                c = n * o.gpus * units[o.system]
                best_agg = c if best_agg is None else min(best_agg, c)
                break  # more workers of this option only cost more
    for p in prefill:
        sat_p = sizer.saturation(p, prefill_only=True)
        for x in range(1, sizer.budget // p.gpus + 1):
            for d in decode:
                sat_d = sizer.decode_saturation(d, p)
                for y in range(1, (sizer.budget - x * p.gpus) // d.gpus + 1):
                    c = x * p.gpus * units[p.system] + y * d.gpus * units[d.system]
                    if (best is not None and c >= best) or x * sat_p < sizer.offered.rate:
                        continue
                    if (
                        y * sat_d >= sizer.offered.rate
                        and sizer._check(sizer.disagg_deployment(p, x, d, y)).ok
                    ):
                        best = c
    return best_agg, best


def cost_sizer(offered, targets, units, budget: int) -> Sizer:
    return Sizer(offered, targets, budget=budget, unit_cost=lambda o: o.gpus * units[o.system])


@pytest.mark.parametrize("seed", range(40))
def test_min_cost_equals_brute_force(seed):
    offered, targets, units, agg, prefill, decode = cost_instance(seed)
    sizer = cost_sizer(offered, targets, units, 32)
    got = (sizer.size_agg(agg), sizer.size_disagg(prefill, decode))
    want = brute_cost(cost_sizer(offered, targets, units, 32), units, agg, prefill, decode)
    assert tuple(sizer.objective(s) for s in got) == want
    for s in got:
        assert s is None or (s.verdict.ok and s.gpus <= 32)


def test_min_cost_on_one_system_is_min_gpus_times_the_price():
    for seed in range(10):
        offered, targets, agg = instance(seed)
        agg = [on(o, "a") for o in agg]
        by_gpus = Sizer(offered, targets, budget=64).size_agg(agg)
        by_cost = cost_sizer(offered, targets, {"a": 35_000}, 64)
        got = by_cost.size_agg(agg)
        assert (got is None) == (by_gpus is None)
        if got is not None:
            assert got.pools == by_gpus.pools and by_cost.objective(got) == 35_000 * by_gpus.gpus


def test_a_cheap_decode_system_makes_more_gpus_the_cheaper_answer():
    # Same options and load; decode GPUs ("b") at a tenth of the price of "a" GPUs. The fewest GPUs
    # and the least cost then part ways: the cheap answer spends more GPUs, mostly cheap ones.
    parted = 0
    for seed in range(20):
        offered, targets, _, agg, prefill, decode = cost_instance(seed)
        agg = [o for o in agg if o.system == "a"]
        units = {"a": 40_000, "b": 4_000}
        fewest = Sizer(offered, targets, budget=32)
        cheap = cost_sizer(offered, targets, units, 32)
        by_gpus = [s for s in (fewest.size_agg(agg), fewest.size_disagg(prefill, decode)) if s]
        by_cost = [s for s in (cheap.size_agg(agg), cheap.size_disagg(prefill, decode)) if s]
        if not by_gpus:
            continue
        g = min(by_gpus, key=fewest.objective)
        c = min(by_cost, key=cheap.objective)
        assert c.gpus >= g.gpus and cheap.objective(c) <= cheap.objective(g)
        parted += cheap.objective(c) < cheap.objective(g)
    assert parted >= 3


@pytest.mark.parametrize("seed", range(15))
def test_closed_loop_min_cost_equals_brute_force(seed):
    offered, targets, units, agg, prefill, decode = cost_instance(seed)
    rng = np.random.default_rng(2000 + seed)
    closed = Offered(None, offered.lengths, num_requests=200, seed=seed, concurrency=int(rng.integers(1, 48)))
    sizer = cost_sizer(closed, targets, units, 16)
    got = (sizer.size_agg(agg), sizer.size_disagg(prefill, decode))
    oracle = cost_sizer(closed, targets, units, 16)
    want_agg = min(
        (
            n * o.gpus * units[o.system]
            for o in agg
            for n in range(1, 16 // o.gpus + 1)
            if oracle.agg_verdict(o, n).ok
        ),
        default=None,
    )
    want_disagg = min(
        (
            x * p.gpus * units[p.system] + y * d.gpus * units[d.system]
            for p in prefill
            for d in decode
            for x in range(1, 16 // p.gpus + 1)
            for y in range(1, (16 - x * p.gpus) // d.gpus + 1)
            if oracle._check(oracle.disagg_deployment(p, x, d, y)).ok
        ),
        default=None,
    )
    assert tuple(sizer.objective(s) for s in got) == (want_agg, want_disagg)
