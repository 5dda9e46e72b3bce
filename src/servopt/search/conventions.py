"""The peer's serving conventions that turn worker options into replica and cluster figures.

Every factor here is a modelling choice of aiconfigurator 0.12.0 (its rate-matching and TTFT
corrections), kept so that servopt's answers compare like for like; each can be overridden.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from servopt.errors import ServoptError

# A prefill pool delivers only 90% of its nominal request rate once it feeds decode workers
# (KV transfer, scheduling gaps): the peer's rate-matching prefill degradation.
PREFILL_DEGRADATION = 0.9
# A decode pool likewise delivers 92% of its nominal rate: the peer's decode degradation.
DECODE_DEGRADATION = 0.92
# A disaggregated replica's TTFT is 1.8x the prefill worker's latency: the peer's queueing
# pre-correction (autoscale_ttft_correction_factor), applied before the TTFT target is checked.
DISAGG_TTFT_FACTOR = 1.8


@dataclass(frozen=True)
class Conventions:
    """Rate-matching degradations and the disaggregated TTFT factor (defaults: the peer's)."""

    prefill_degradation: float = PREFILL_DEGRADATION
    decode_degradation: float = DECODE_DEGRADATION
    disagg_ttft_factor: float = DISAGG_TTFT_FACTOR

    def __post_init__(self) -> None:
        for name in ("prefill_degradation", "decode_degradation", "disagg_ttft_factor"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
                raise ServoptError(name, value, "must be a positive finite number")


DEFAULT_CONVENTIONS = Conventions()
