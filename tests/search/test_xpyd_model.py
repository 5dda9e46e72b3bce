"""The CP-SAT packing model, one test per constraint group, against plain enumeration."""

from __future__ import annotations

import itertools
from unittest import mock

import numpy as np
import pytest

from servopt.search import xpyd_model
from servopt.search.result import Counters
from servopt.search.settings import SolverSettings
from servopt.search.xpyd_model import XpydModel

from .conftest import make_rows

SETTINGS = SolverSettings()


def _solve(rows, G, K, identical):
    model = XpydModel(rows, total_gpus=G, max_types=K, identical=identical)
    best = model.solve(SETTINGS, Counters())
    return model, (model.tie_break(best, SETTINGS, Counters()) if best is not None else None)


def _naive(rows, G, K):
    """Best (value, -level, -gpus) over every choice of <= K rows and counts."""
    best = None
    idx = range(len(rows))
    for k in range(1, K + 1):
        for combo in itertools.combinations(idx, k):
            ranges = [range(1, G // int(rows.size[r]) + 1) for r in combo]
            for counts in itertools.product(*ranges):
                gpus = sum(n * int(rows.size[r]) for n, r in zip(counts, combo, strict=True))
                if gpus > G:
                    continue
                value = sum(n * int(rows.units[r]) for n, r in zip(counts, combo, strict=True))
                key = (value, -max(int(rows.level[r]) for r in combo), -gpus)
                best = key if best is None or key > best else best
    return best


def _key(p):
    return (p.value, -p.tpot_level, -p.gpus_used)


@pytest.mark.parametrize("folded", [True, False])
def test_identical_fills_budget_with_best_row(folded):
    rows = make_rows([2, 3, 5], [10, 16, 27], [0, 1, 2])
    with mock.patch.object(xpyd_model, "MAX_OBJECTIVE_UNITS", 2**53 if folded else 0):
        model, p = _solve(rows, 12, 1, identical=True)
    assert model.folded is folded
    # floor(12/s)*u: 6*10=60, 4*16=64, 2*27=54
    assert p.counts.tolist() == [0, 4, 0] and p.value == 64 and p.gpus_used == 12


def test_type_limit_caps_distinct_rows():
    rows = make_rows([3, 4, 5], [3, 4, 5], [0, 0, 0])
    # G=11 needs all three sizes (3+4 = 7, +... ) to fill; K bounds how many distinct ones are used.
    for K in (1, 2, 3):
        _, p = _solve(rows, 11, K, identical=False)
        assert np.count_nonzero(p.counts) <= K
        assert _key(p) == _naive(rows, 11, K)


def test_budget_and_counts():
    rows = make_rows([4, 7], [9, 17], [0, 0])
    _, p = _solve(rows, 15, 2, identical=False)
    assert p.gpus_used <= 15 and all(n >= 0 for n in p.counts)
    assert _key(p) == _naive(rows, 15, 2)  # 2*4 + 1*7 = 15 GPUs, value 35


@pytest.mark.parametrize("folded", [True, False])
@pytest.mark.parametrize("identical", [True, False])
def test_ties_prefer_lower_tpot_then_fewer_gpus(folded, identical):
    # G=4, value 4 both ways: 2 replicas of size 2 at level 1, or 1 of size 4 at level 0.
    rows = make_rows([2, 4], [2, 4], [1, 0])
    with mock.patch.object(xpyd_model, "MAX_OBJECTIVE_UNITS", 2**53 if folded else 0):
        _, p = _solve(rows, 4, 2, identical=identical)
    assert p.counts.tolist() == [0, 1] and p.tpot_level == 0
    # Same value and level: 3 GPUs beat 4.
    rows = make_rows([3, 4], [4, 4], [0, 0])
    with mock.patch.object(xpyd_model, "MAX_OBJECTIVE_UNITS", 2**53 if folded else 0):
        _, p = _solve(rows, 4, 2, identical=identical)
    assert p.counts.tolist() == [1, 0] and p.gpus_used == 3


def test_tpot_level_is_slowest_used_row():
    rows = make_rows([2, 3], [5, 8], [3, 7])
    _, p = _solve(rows, 5, 2, identical=False)
    assert p.counts.tolist() == [1, 1] and p.tpot_level == 7


@pytest.mark.parametrize("seed", range(12))
def test_random_rows_equal_naive(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5))
    rows = make_rows(rng.integers(1, 7, n), rng.integers(1, 20, n), rng.integers(0, 3, n))
    G = int(rng.integers(1, 16))
    for K in (1, 2, 3):
        if rows.size.min() > G:
            continue
        _, p = _solve(rows, G, K, identical=False)
        assert _key(p) == _naive(rows, G, K)


def test_hint_does_not_change_answer_and_reports_are_recorded():
    rows = make_rows([2, 3, 5], [10, 16, 27], [0, 1, 2])
    model = XpydModel(rows, total_gpus=12, max_types=2, identical=False)
    model.hint(np.array([6, 0, 0]))
    p = model.tie_break(model.solve(SETTINGS, Counters()), SETTINGS, Counters())
    plain = _solve(rows, 12, 2, identical=False)[1]
    assert _key(p) == _key(plain)
    assert model.status == "OPTIMAL"
    assert all(r.deterministic_time >= 0 and r.status == "OPTIMAL" for r in model.reports)


def test_two_stage_tie_break_moves_off_a_worse_hint():
    # Value 4 either way; the tie-break must leave the hinted 4-GPU deployment for the 3-GPU one.
    rows = make_rows([3, 4], [4, 4], [0, 0])
    with mock.patch.object(xpyd_model, "MAX_OBJECTIVE_UNITS", 0):
        model = XpydModel(rows, total_gpus=4, max_types=2, identical=False)
    worse = xpyd_model.Packing(counts=np.array([0, 1]), value=4, tpot_level=0, gpus_used=4)
    p = model.tie_break(worse, SETTINGS, Counters())
    assert p.counts.tolist() == [1, 0] and p.gpus_used == 3
