"""Error bands: a calibration profile's 80% intervals of predicted TTFT, TPOT and throughput.

A profile's ``bands`` (servopt.calibrate.model.Profile) map metric -> scope label (a backend, or
"every backend") -> [low, high], the 10th and 90th percentiles of cross-validated
log(measured / predicted) (servopt.calibrate.cv), so a prediction's 80% band is
[value * e^low, value * e^high]. The pessimistic end is the high end of a latency and the low end of
a throughput. The one mapping from a profile's bands onto predictions: ``cli simulate``, the
search's robustness report and ``--robust`` (servopt.evaluate.calibration.at_pessimistic_end) use it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

EVERY_BACKEND = "every backend"
# The profile's metric names; throughput is output tokens/s per GPU.
BAND_METRICS = ("ttft_ms", "tpot_ms", "output_tok_s_per_gpu")


def band_for(bands: dict, metric: str, backend: str) -> list[float] | None:
    """The [low, high] log-ratio band of ``metric`` for ``backend``: its own if fitted, else the
    pooled one, else None."""
    per = bands.get(metric, {})
    return per.get(backend, per.get(EVERY_BACKEND))


def bands_80(bands: dict, backend: str, values: dict[str, float | None]) -> dict[str, list[float]]:
    """``values`` (profile metric -> predicted value) -> [low, high] 80% interval of each one that
    has a band and a nonzero value."""
    out = {}
    for metric, value in values.items():
        band = band_for(bands, metric, backend)
        if band is not None and value:
            out[metric] = [value * math.exp(band[0]), value * math.exp(band[1])]
    return out


class PessimisticFactors(NamedTuple):
    """What the pessimistic end of the 80% band multiplies: latencies by e^high, throughput by
    e^low (1 where the profile has no band for the metric)."""

    ttft: float
    tpot: float
    throughput: float

    def to_dict(self) -> dict[str, float]:
        return {"ttft_ms": self.ttft, "tpot_ms": self.tpot, "tokens_per_s_per_gpu": self.throughput}


def pessimistic_factors(bands: dict, backend: str) -> PessimisticFactors | None:
    """The backend's pessimistic factors; None when the profile carries no bands."""
    if not bands:
        return None
    ttft, tpot, tput = (band_for(bands, m, backend) for m in BAND_METRICS)
    return PessimisticFactors(
        math.exp(ttft[1]) if ttft else 1.0,
        math.exp(tpot[1]) if tpot else 1.0,
        math.exp(tput[0]) if tput else 1.0,
    )
