"""--gpu_hour_price: parsing (one clear error per bad entry) and the cost arithmetic."""

import pytest

from servopt.errors import ServoptError, UnknownNameError
from servopt.sizing.cost import cost, parse_prices

SYSTEMS = ("b200_sxm", "h100_sxm", "h200_sxm")


def test_prices_parse_with_spaces():
    assert parse_prices(" h200_sxm = 3.5 ,b200_sxm=6", SYSTEMS) == {"h200_sxm": 3.5, "b200_sxm": 6.0}


@pytest.mark.parametrize(
    ("text", "kind", "says"),
    [
        ("h200_sxm", ServoptError, "SYSTEM=USD"),
        ("h200_sxm=", ServoptError, "SYSTEM=USD"),
        ("=3", ServoptError, "SYSTEM=USD"),
        ("h200_sxm=0", ServoptError, ">= 0.0001"),
        ("h200_sxm=0.00004", ServoptError, ">= 0.0001"),
        ("h200_sxm=inf", ServoptError, "finite"),
        ("h200_sxm=three", ServoptError, "finite number"),
        ("h300=3", UnknownNameError, "unknown system"),
        ("h200_sxm=3,h200_sxm=4", ServoptError, "twice"),
    ],
)
def test_bad_prices_name_the_field_and_the_entry(text, kind, says):
    with pytest.raises(kind) as err:
        parse_prices(text, SYSTEMS)
    assert err.value.field == "gpu_hour_price" and says in str(err.value)


def test_cost_per_hour_and_per_million_output_tokens():
    got = cost({"h200_sxm": 12}, {"h200_sxm": 3.0, "b200_sxm": 5.0}, output_tokens_per_s=2000.0)
    assert got["usd_per_gpu_hour"] == {"h200_sxm": 3.0}
    assert got["usd_per_hour"] == 36.0
    # 2000 tokens/s = 7.2 M tokens/hour -> 36 / 7.2 = 5 USD per million.
    assert got["usd_per_million_output_tokens"] == pytest.approx(5.0)
    assert cost({"h200_sxm": 1}, {"h200_sxm": 3.0}, 0.0)["usd_per_million_output_tokens"] is None


def test_a_system_without_a_price_is_named():
    with pytest.raises(ServoptError, match="no price for h200_sxm"):
        cost({"h200_sxm": 1}, {"b200_sxm": 3.0}, 1.0)
