"""Min-GPU sizing against brute force: every option at every worker count, simulated with the same
requests; the search must find the same fewest GPUs. Plus the sanity properties users rely on."""

import math

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
