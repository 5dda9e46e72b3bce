"""The grid fit recovers known parameters, is deterministic, screens version gaps, and keeps scopes
with too few records at the broader scope or neutral."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from servopt.calibrate import fit as F
from servopt.calibrate.model import HarnessFit, Scope


def _sample(source: str, backend: str, system: str, measured, clients: int = 1) -> F.Sample:
    setup = SimpleNamespace(
        record=SimpleNamespace(source_name=source),
        backend=backend,
        system=system,
        layout=SimpleNamespace(label="tp1"),
        replica_concurrency=clients,
    )
    return F.Sample(setup, np.asarray(measured, dtype=float), replay=None)


def _synthetic_runs(n: int, seed: int) -> np.ndarray:
    """Per record and grid point: TTFT, TPOT, tok/s/GPU, E2E with a decode step that grows with the
    decode scale and the iteration overhead (what the simulator does, in a closed form)."""
    rng = np.random.default_rng(seed)
    grid = F.grid_adjustments()
    ttft0 = rng.uniform(20, 400, n)
    step0 = rng.uniform(5, 30, n)
    osl = rng.uniform(200, 2000, n)
    runs = np.zeros((n, len(grid), 4))
    for g, adj in enumerate(grid):
        tpot = step0 * adj.decode_scale + adj.iteration_overhead_ms
        ttft = ttft0 + adj.iteration_overhead_ms
        e2e = ttft + tpot * (osl - 1)
        runs[:, g] = np.stack([ttft, tpot, 1000.0 * osl / e2e, e2e], axis=1)
    return runs


def _measured_at(runs: np.ndarray, g: int, r: float) -> np.ndarray:
    ttft, tpot, tput, e2e = runs[:, g].T
    return np.stack([ttft + r, tpot, tput * e2e / (e2e + r)], axis=1)


def test_fit_recovers_the_parameters_that_made_the_measurements():
    runs = _synthetic_runs(30, seed=1)
    g = F.grid_adjustments().index(F.Adjustments(0.0, 2.0, 1.0, 0.9))
    measured = _measured_at(runs, g, 137.0)
    samples = [_sample("A", "sglang", "b200_sxm", m) for m in measured]
    values, harnesses, loss = F.fit_scope(samples, runs, list(range(30)))
    assert values == {"request_overhead_ms": 137.0, "iteration_overhead_ms": 2.0, "decode_scale": 0.9}
    assert harnesses == (HarnessFit("A", "sglang", 137.0, 30),)
    assert loss == pytest.approx(0.0, abs=1e-12)


def test_fit_is_robust_to_a_few_wild_rows():
    runs = _synthetic_runs(30, seed=2)
    g = F.grid_adjustments().index(F.Adjustments(0.0, 1.0, 1.0, 1.1))
    measured = _measured_at(runs, g, 80.0)
    measured[:3] *= 6.0  # three rows 6x off (a queue the model does not have)
    samples = [_sample("A", "sglang", "b200_sxm", m) for m in measured]
    values, _, _ = F.fit_scope(samples, runs, list(range(30)))
    # Bounded influence: 10% of the rows 6x off move the overhead by a millisecond, not by 6x.
    assert abs(values.pop("request_overhead_ms") - 80.0) <= 2.0
    assert values == {"iteration_overhead_ms": 1.0, "decode_scale": 1.1}


def test_scopes_version_gap_and_too_few_records():
    runs = _synthetic_runs(40, seed=3)
    g = F.grid_adjustments().index(F.Adjustments(0.0, 0.5, 1.0, 1.0))
    good = _measured_at(runs, g, 100.0)
    samples = [_sample("AD"[i % 2], "sglang", "b200_sxm", good[i]) for i in range(20)]
    samples += [_sample("B", "vllm", "h100_sxm", good[i]) for i in range(20, 23)]  # 3 < 5: not fitted
    # A source twice slower per decode step than servopt's data: screened out, not fitted on.
    slow = good[23:].copy()
    slow[:, 1] *= 2.2
    samples += [_sample("C", "trtllm", "h200_sxm", m) for m in slow]
    result = F.fit(samples, runs)
    scopes = {f.scope: f for f in result.profile.fits}
    assert set(scopes) == {Scope("sglang", "b200_sxm"), Scope("sglang"), Scope()}
    assert scopes[Scope()].records == 23 and scopes[Scope()].sources == ("A", "B", "D")
    assert list(result.excluded) == [("C", "trtllm")]
    assert any(
        line.startswith("vllm: 3 light-load records with TTFT, 3 with TPOT") for line in result.unfitted
    )
    # vllm falls back to every backend's fit; an unfitted profile is neutral.
    assert result.profile.adjustments("vllm", "h100_sxm")[1] == "every backend"
    assert scopes[Scope()].values["request_overhead_ms"] == 100.0
    empty = F.fit(samples[20:23], runs)
    assert empty.profile.fits == () and empty.profile.adjustments("vllm", "h100_sxm")[0] == F.Adjustments()
    # One source's records alone fit nothing: its offsets cannot be told apart from its harness.
    alone = F.fit([s for s in samples if s.source == "A"], runs)
    assert alone.profile.fits == () and any("from 1 source(s) < 2 (A)" in u for u in alone.unfitted)
    # Deterministic: the same inputs give the same profile.
    assert F.fit(samples, runs).profile == result.profile


def _brute_force(samples, runs, groups) -> tuple[float, int, tuple[float, ...]]:
    """Every grid point and every pair of request overheads of two harness groups, record by record."""
    meas = np.stack([s.measured for s in samples])
    r = F.REQUEST_GRID_MS
    best = (np.inf, -1, ())
    for g in range(runs.shape[1]):
        per_group = []
        for members in groups:
            loss = np.zeros(len(r))
            for i in members:
                ttft, _, tput, e2e = runs[i, g]
                loss += F._rho(np.log((ttft + r) / meas[i, 0]))
                loss += F._rho(np.log(tput * e2e / (e2e + r) / meas[i, 2]))
            per_group.append(loss)
        tpot_loss = sum(float(F._rho(np.log(runs[i, g, 1] / meas[i, 1]))) for i in range(len(samples)))
        total = per_group[0][:, None] + per_group[1][None, :] + tpot_loss  # every (r_a, r_b)
        a, b = np.unravel_index(int(np.argmin(total)), total.shape)
        if total[a, b] < best[0] - 1e-12:
            best = (float(total[a, b]), g, (float(r[a]), float(r[b])))
    return best


@pytest.mark.parametrize("noise", [0.0, 0.15])
def test_each_harness_gets_its_own_request_overhead_as_brute_force_finds(noise):
    """Two harnesses of the same engine with different light-load offsets (InferenceX-like 120 ms,
    GPUStack-like 15 ms): the closed form per harness is the joint grid minimum."""
    runs = _synthetic_runs(16, seed=4)
    g = F.grid_adjustments().index(F.Adjustments(0.0, 1.0, 1.0, 1.05))
    measured = np.concatenate([_measured_at(runs[:8], g, 120.0), _measured_at(runs[8:], g, 15.0)])
    measured *= np.exp(np.random.default_rng(5).normal(0.0, noise, measured.shape))
    samples = [_sample("X" if i < 8 else "G", "sglang", "h100_sxm", m) for i, m in enumerate(measured)]
    values, harnesses, loss = F.fit_scope(samples, runs, list(range(16)))
    # Harnesses in sorted order: G (rows 8-15), then X (rows 0-7).
    b_loss, b_g, (b_g_ms, b_x_ms) = _brute_force(samples, runs, [range(8, 16), range(8)])
    assert loss == pytest.approx(b_loss, rel=1e-9, abs=1e-12)
    assert F.grid_adjustments()[b_g] == F.Adjustments(
        0.0, values["iteration_overhead_ms"], 1.0, values["decode_scale"]
    )
    assert [(h.source, h.request_overhead_ms, h.records) for h in harnesses] == [
        ("G", b_g_ms, 8),
        ("X", b_x_ms, 8),
    ]
    if noise == 0.0:
        assert (b_g_ms, b_x_ms) == (15.0, 120.0) and F.grid_adjustments()[b_g] == F.grid_adjustments()[g]
        # A harness not seen: the median of the two (each counts once), on the 1 ms grid.
        assert values["request_overhead_ms"] == 68.0  # (15 + 120) / 2 = 67.5, halves round up


def test_harnesses_with_few_light_load_records_share_one_pooled_overhead():
    runs = _synthetic_runs(12, seed=6)
    g = F.grid_adjustments().index(F.Adjustments(0.0, 0.5, 1.0, 1.0))
    measured = np.concatenate([_measured_at(runs[:6], g, 110.0), _measured_at(runs[6:], g, 40.0)])
    samples = [_sample("A", "trtllm", "b200_sxm", m) for m in measured[:6]]
    # B and C: two light-load rows and one under load (its TTFT does not count) each: 2 < 3, pooled.
    samples += [_sample("B", "trtllm", "b200_sxm", measured[6], clients=2)]
    samples += [_sample("B", "trtllm", "b200_sxm", measured[7], clients=3)]
    samples += [_sample("B", "trtllm", "b200_sxm", measured[8], clients=64)]
    samples += [
        _sample("C", "trtllm", "b200_sxm", m, clients=c) for m, c in zip(measured[9:], (1, 4, 8), strict=True)
    ]
    groups = F.harness_groups(samples, list(range(12)))
    assert groups == [(("A", "trtllm"), [0, 1, 2, 3, 4, 5]), (None, [6, 7, 8, 9, 10, 11])]
    values, harnesses, loss = F.fit_scope(samples, runs, list(range(12)))
    assert harnesses == (HarnessFit("A", "trtllm", 110.0, 6),)
    # One harness of its own: the scope's value is its value, the pooled one (40 ms) is not listed.
    assert values["request_overhead_ms"] == 110.0
    assert loss == pytest.approx(0.0, abs=1e-12)
    # With no harness of its own, one pooled overhead on every record, as before per-harness fits.
    few = [0, 1, 6, 7, 9, 10]
    values, harnesses, _ = F.fit_scope(samples, runs, few)
    assert harnesses == () and F.harness_groups(samples, few) == [(None, list(range(6)))]
    assert 40.0 < values["request_overhead_ms"] < 110.0


def test_a_harness_not_seen_takes_the_median_of_the_scopes_harnesses():
    runs = _synthetic_runs(28, seed=7)
    g = F.grid_adjustments().index(F.Adjustments(0.0, 0.0, 1.0, 1.0))
    # A has 15 records, B and C 6 each (each harness counts once, not each row); D one, pooled.
    rows = {"A": (range(0, 15), 10.0), "B": (range(15, 21), 50.0), "C": (range(21, 27), 131.0)}
    rows["D"] = (range(27, 28), 50.0)
    samples = [
        _sample(source, "vllm", "h100_sxm", _measured_at(runs, g, ms)[i])
        for source, (members, ms) in rows.items()
        for i in members
    ]
    values, harnesses, _ = F.fit_scope(samples, runs, list(range(28)))
    assert [(h.source, h.request_overhead_ms) for h in harnesses] == [("A", 10.0), ("B", 50.0), ("C", 131.0)]
    assert values["request_overhead_ms"] == 50.0
    assert F.grid_median_ms([10.0, 131.0]) == 71.0 and F.grid_median_ms([7.0]) == 7.0
    # fit() carries them into the profile: a known harness gets its own, anyone else the median.
    prof = F.fit(samples, runs).profile
    own, label = prof.adjustments("vllm", "h100_sxm", "C")
    assert own.request_overhead_ms == 131.0 and label == "vllm on h100_sxm, C harness"
    assert prof.adjustments("vllm", "h100_sxm", "D") == (
        own._replace(request_overhead_ms=50.0),
        "vllm on h100_sxm",
    )
    assert prof.adjustments("vllm", "h100_sxm")[0].request_overhead_ms == 50.0
    assert prof.adjustments("vllm", "h100_sxm", "A")[0].request_overhead_ms == 10.0
