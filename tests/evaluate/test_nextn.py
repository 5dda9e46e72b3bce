from __future__ import annotations

import pytest

from servopt.errors import ServoptError
from servopt.evaluate.nextn import expected_accepted_tokens


def test_chain_acceptance():
    assert expected_accepted_tokens(0, [0.9]) == 0.0
    assert expected_accepted_tokens(1, [0.85, 0.5]) == pytest.approx(0.85)
    assert expected_accepted_tokens(2, [0.85, 0.5]) == pytest.approx(0.85 + 0.85 * 0.5)
    assert expected_accepted_tokens(3, [0.85, 0.5]) == pytest.approx(0.85 + 0.425)  # position 3: rate 0
    assert expected_accepted_tokens(1, None) == pytest.approx(0.85)  # the seed's default rates


@pytest.mark.parametrize("rates", [[1.2], [-0.1], [float("nan")]])
def test_bad_rates_are_named(rates):
    with pytest.raises(ServoptError) as info:
        expected_accepted_tokens(1, rates)
    assert info.value.field == "nextn_accept_rates[0]"


@pytest.mark.peer
def test_matches_the_peers_fold():
    compat = pytest.importorskip("aiconfigurator.sdk.task_v1_compat")
    for nextn, rates in ((1, [0.85, 0, 0, 0, 0]), (3, [0.9, 0.7, 0.5]), (5, [0.85, 0.3, 0.0, 0.0, 0.0])):
        assert expected_accepted_tokens(nextn, rates) == pytest.approx(
            compat._fold_accept_rates(nextn, rates)
        )
