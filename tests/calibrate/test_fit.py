"""The grid fit recovers known parameters, is deterministic, screens version gaps, and keeps scopes
with too few records at the broader scope or neutral."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from servopt.calibrate import fit as F
from servopt.calibrate.model import Scope


def _sample(source: str, backend: str, system: str, measured) -> F.Sample:
    setup = SimpleNamespace(
        record=SimpleNamespace(source_name=source),
        backend=backend,
        system=system,
        layout=SimpleNamespace(label="tp1"),
        replica_concurrency=1,
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
    values, loss = F.fit_scope(samples, runs, list(range(30)))
    assert values == {"request_overhead_ms": 137.0, "iteration_overhead_ms": 2.0, "decode_scale": 0.9}
    assert loss == pytest.approx(0.0, abs=1e-12)


def test_fit_is_robust_to_a_few_wild_rows():
    runs = _synthetic_runs(30, seed=2)
    g = F.grid_adjustments().index(F.Adjustments(0.0, 1.0, 1.0, 1.1))
    measured = _measured_at(runs, g, 80.0)
    measured[:3] *= 6.0  # three rows 6x off (a queue the model does not have)
    samples = [_sample("A", "sglang", "b200_sxm", m) for m in measured]
    values, _ = F.fit_scope(samples, runs, list(range(30)))
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
