"""What a sized deployment costs at user-given GPU-hour prices (``--gpu_hour_price``).

No price ships with servopt: market prices move and differ by contract, so a figure shown as if it
were one would mislead. The user names a price per GPU-hour per system; each answer then carries
its cost per hour and per million output tokens (all output tokens the deployment serves, at the
rate it serves them).
"""

from __future__ import annotations

import math

from servopt.errors import ServoptError, UnknownNameError

FIELD = "gpu_hour_price"

# ``--objective min_cost`` compares deployments in integers (exact sums and ties, whatever the
# prices' binary fractions): the ONE place prices become integers. Units: hundredths of a cent per
# GPU-hour, so any price written with up to 4 decimals is exact (cents alone would round 2.125).
COST_UNITS_PER_USD = 10_000
MIN_PRICE_USD = 1 / COST_UNITS_PER_USD


def parse_prices(text: str, known_systems: tuple[str, ...]) -> dict[str, float]:
    """``SYSTEM=USD[,SYSTEM=USD...]`` -> {system: USD per GPU-hour}; one clear error per bad entry."""
    prices: dict[str, float] = {}
    for entry in (e.strip() for e in text.split(",")):
        name, sep, value = entry.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ServoptError(
                FIELD, entry, "write SYSTEM=USD per GPU-hour, comma separated, e.g. h200_sxm=3.5"
            )
        if name not in known_systems:
            raise UnknownNameError(FIELD, name, "unknown system", known_systems)
        if name in prices:
            raise ServoptError(FIELD, entry, f"{name} is priced twice")
        try:
            usd = float(value)
        except ValueError:
            usd = math.nan
        if not (math.isfinite(usd) and usd >= MIN_PRICE_USD):
            raise ServoptError(
                FIELD, entry, f"the price must be a finite number of USD per GPU-hour >= {MIN_PRICE_USD:g}"
            )
        prices[name] = usd
    return prices


def price_of(prices: dict[str, float], system: str) -> float:
    if system not in prices:
        raise ServoptError(FIELD, ",".join(f"{k}={v:g}" for k, v in prices.items()), f"no price for {system}")
    return prices[system]


def price_units(prices: dict[str, float], system: str) -> int:
    """One GPU-hour of ``system`` in integer cost units (rounded to the nearest unit)."""
    return round(price_of(prices, system) * COST_UNITS_PER_USD)


def cost(gpus_by_system: dict[str, int], prices: dict[str, float], output_tokens_per_s: float) -> dict:
    """USD per hour of the deployment's GPUs, and per million output tokens at its served rate
    (``None`` when it serves none)."""
    per_hour = sum(n * price_of(prices, s) for s, n in gpus_by_system.items())
    per_million = per_hour / (output_tokens_per_s * 3600.0) * 1e6 if output_tokens_per_s > 0 else None
    return {
        "usd_per_gpu_hour": {s: prices[s] for s in gpus_by_system},
        "usd_per_hour": per_hour,
        "usd_per_million_output_tokens": per_million,
    }
