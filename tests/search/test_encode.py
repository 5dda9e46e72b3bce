from __future__ import annotations

import math

import numpy as np
import pytest

from servopt.errors import ServoptError
from servopt.search.encode import RATE_UNITS_PER_REQ_PER_S, TpotLevels, check_headroom, encode_rates


def test_rates_round_down():
    rates = np.array([0.1, 1 / 3, 2.0, 1e-7])
    units = encode_rates(rates, 0.92)
    assert units.dtype == np.int64
    assert np.all(units <= rates * 0.92 * RATE_UNITS_PER_REQ_PER_S)
    assert np.all(units > rates * 0.92 * RATE_UNITS_PER_REQ_PER_S - 1)
    assert units[-1] == 0


def test_tpot_levels_are_exact_ranks():
    levels = TpotLevels(np.array([20.0, 10.0, 20.0, 35.5]))
    assert levels.values.tolist() == [10.0, 20.0, 35.5]
    assert levels.rank(np.array([35.5, 10.0])).tolist() == [2, 0]
    assert levels.cap(20.0) == 1 and levels.cap(19.999) == 0 and levels.cap(9.0) == -1
    assert levels.cap(math.inf) == 2 and levels.ms(2) == 35.5
    with pytest.raises(ValueError):
        levels.rank(np.array([15.0]))


def test_headroom_guard():
    check_headroom(10**9, 16384)
    with pytest.raises(ServoptError, match="too large"):
        check_headroom(10**12, 16384)
