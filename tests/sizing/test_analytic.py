"""Analytic percentiles against queueing theory's closed forms (M/M/1, M/M/c, M/D/1), naive Poisson
sums, and the simulator itself on a plain deployment; and the rate sizing JSON against its schema."""

import json
import math

import numpy as np
import pytest
from tests.sizing.test_minimize import option

from servopt.report.schema import SizingDoc
from servopt.simulate.engine import Deployment, run
from servopt.simulate.metrics import summary
from servopt.simulate.workload import Lengths
from servopt.sizing import analytic
from servopt.sizing.check import Offered, Targets, measured
from servopt.sizing.minimize import Sized, Sizer, Verdict
from servopt.sizing.plan import SizingResult


def erlang_c_naive(c: int, a: float) -> float:
    """The textbook formula, with factorials."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


@pytest.mark.parametrize("c", [1, 2, 3, 8, 20])
@pytest.mark.parametrize("rho", [0.1, 0.5, 0.8, 0.97])
def test_erlang_c_matches_the_textbook_formula(c, rho):
    assert analytic.erlang_c(c, rho * c) == pytest.approx(erlang_c_naive(c, rho * c), rel=1e-12)


def test_erlang_c_closed_forms():
    for rho in (0.2, 0.6, 0.9):
        assert analytic.erlang_c(1, rho) == pytest.approx(rho)  # M/M/1: P(wait) = rho
        assert analytic.erlang_c(2, 2 * rho) == pytest.approx(2 * rho**2 / (1 + rho))


@pytest.mark.parametrize(("lam", "service_ms"), [(5.0, 100.0), (9.0, 100.0), (1.0, 500.0)])
def test_mm1_wait_is_exact(lam, service_ms):
    # M/M/1: P(Wq > t) = rho exp(-(mu - lam) t); mean rho / (mu - lam).
    mu = 1000.0 / service_ms
    rho = lam / mu
    got = analytic.queue_wait_ms(lam, 1, service_ms, 1.0, 1.0)
    assert got["mean"] == pytest.approx(rho / (mu - lam) * 1000.0)
    for p in (50, 90, 99):
        exact = max(0.0, math.log(rho / (1 - p / 100)) / (mu - lam) * 1000.0)
        assert got[f"p{p}"] == pytest.approx(exact, abs=1e-9)


@pytest.mark.parametrize("c", [2, 4, 16])
def test_mmc_wait_percentiles_are_exact(c):
    # M/M/c: P(Wq > t) = C(c, a) exp(-(c mu - lam) t).
    service_ms, lam = 200.0, 0.85 * c * 5.0
    mu = 5.0
    chance = erlang_c_naive(c, lam / mu)
    got = analytic.queue_wait_ms(lam, c, service_ms, 1.0, 1.0)
    assert got["mean"] == pytest.approx(chance / (c * mu - lam) * 1000.0)
    for p in (50, 90, 99):
        tail = 1 - p / 100
        exact = math.log(chance / tail) / (c * mu - lam) * 1000.0 if chance > tail else 0.0
        assert got[f"p{p}"] == pytest.approx(exact, abs=1e-9)


def test_md1_mean_wait_is_pollaczek_khinchine():
    # M/D/1 (cs2 = 0): Wq = rho S / (2 (1 - rho)).
    lam, service_ms = 8.0, 100.0
    rho = lam * service_ms / 1000.0
    got = analytic.queue_wait_ms(lam, 1, service_ms, 1.0, 0.0)
    assert got["mean"] == pytest.approx(rho * service_ms / (2 * (1 - rho)))


def test_saturated_queue_has_no_figures():
    assert analytic.queue_wait_ms(10.0, 1, 100.0, 1.0, 1.0) is None
    assert analytic.queue_wait_ms(25.0, 2, 100.0, 1.0, 1.0) is None


def poisson_quantile_naive(p: float, mean: float) -> int:
    k = 0
    while sum(math.exp(-mean) * mean**j / math.factorial(j) for j in range(k + 1)) < p:
        k += 1
    return k


@pytest.mark.parametrize("mean", [0.3, 1.0, 4.5, 17.0, 60.0])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_poisson_quantile_matches_the_sum(mean, p):
    assert analytic.poisson_quantile(p, mean) == poisson_quantile_naive(p, mean)


def test_poisson_quantile_large_means_use_the_normal_approximation():
    # Far past 500 the Poisson is normal to within a count or two at these percentiles.
    for mean in (800.0, 5000.0):
        assert abs(analytic.poisson_quantile(0.99, mean) - (mean + 2.3263 * math.sqrt(mean))) <= 2


def _sized(offered: Offered, targets: Targets, n: int, role_option) -> tuple[Sized, Sizer]:
    sizer = Sizer(offered, targets, budget=64)
    dep = Deployment((role_option.workers(n),), request_overhead_ms=0.0)
    return Sized(n * role_option.gpus, ((role_option, n),), Verdict(True, 0.0, 0.0, ""), dep), sizer


def test_agg_model_tracks_the_simulator_on_a_plain_deployment():
    # Moderate load on identical requests: the model's mean TTFT and TPOT come within 15% of the
    # simulated means (a broken formula - a lost factor, a wrong unit - is far off).
    offered = Offered(rate=6.0, lengths=Lengths(600, 60), num_requests=3000, seed=3)
    targets = Targets(5000.0, 200.0, 90.0, 90.0)
    opt = option("agg", 1, 1.0, 32)
    sized, sizer = _sized(offered, targets, 2, opt)
    req = sizer.requests
    raw = run(sized.deployment, req)
    m = measured(req, offered.lifetime_ms(targets))
    sim_ttft = summary((raw.t_first - raw.t_arrive)[m])
    sim_tpot = summary(((raw.t_done - raw.t_first) / (req.osl - 1))[m])
    got = analytic.percentiles(sized, offered.rate, req.isl, req.osl, 1.0)
    assert got["ttft_ms"]["mean"] == pytest.approx(sim_ttft["mean"], rel=0.15)
    assert got["tpot_ms"]["mean"] == pytest.approx(sim_tpot["mean"], rel=0.15)
    for figures in got.values():
        assert figures["p50"] <= figures["p90"] <= figures["p99"]


def test_sizing_json_follows_its_schema_and_holds_no_nan():
    offered = Offered(rate=12.0, lengths=Lengths(500, 50, 0.5, 0.5), num_requests=400, seed=5)
    targets = Targets(800.0, 30.0, 90.0, 90.0)
    sizer = Sizer(offered, targets, budget=32)
    agg = sizer.size_agg([option("agg", 1, 1.0, 16), option("agg", 2, 0.55, 32)])
    prefill = [option("prefill", 1, 1.0, 64)]
    decode = [option("decode", 1, 0.8, 16)]
    disagg = sizer.size_disagg(prefill, decode)
    best = min((s for s in (agg, disagg) if s), key=lambda s: s.gpus)
    doc = SizingResult(best, agg, disagg, sizer.counters, offered, targets, [], "none").to_json()
    doc = {
        "model": "synthetic",
        "system": "none",
        "decode_system": None,
        "backend": "vllm",
        "backend_version": "0",
        "decode_backend_version": None,
        "objective": "min_gpus",
        "modes": ["agg", "disagg"],
        **doc,
    }
    json.dumps(doc, allow_nan=False)
    parsed = SizingDoc.model_validate(doc)
    assert parsed.best.analytic.ttft_ms is not None and parsed.best.simulated.tpot_ms is not None
    assert parsed.load.request_rate == 12.0 and parsed.best.total_gpus_used == best.gpus
    ratio_ttft = parsed.best.at_targets["ttft_p90_ms"] / targets.ttft_ms
    ratio_tpot = parsed.best.at_targets["tpot_p90_ms"] / targets.tpot_ms
    assert parsed.best.binding == ("ttft" if ratio_ttft >= ratio_tpot else "tpot")
    assert np.isfinite(parsed.best.goodput.per_gpu)
