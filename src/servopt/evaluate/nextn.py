"""Speculative decoding (nextn / MTP): from per-position accept rates to decode progress.

The model prices the *cost* of a verification step (``L + nextn`` layers, ``nextn + 1`` tokens per
request, see :func:`servopt.models.dense.mtp_factor`); the *benefit* is the expected number of
draft tokens accepted per step. Drafts are accepted as a chain: draft ``i`` counts only if drafts
``1..i`` were all accepted, so ``E[accepted] = sum_i prod_{j<=i} p_j`` over the first ``nextn``
positions. Each step then commits ``1 + E[accepted]`` tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from servopt.errors import ServoptError

# The seed's default when nextn > 0 and no rates are given (its example.yaml).
DEFAULT_ACCEPT_RATES = (0.85, 0.0, 0.0, 0.0, 0.0)


def expected_accepted_tokens(nextn: int, accept_rates: Sequence[float] | None) -> float:
    """Expected accepted drafts per decode step; positions beyond the list accept nothing."""
    if nextn < 0:
        raise ServoptError("nextn", nextn, "must be >= 0")
    if nextn == 0:
        return 0.0
    rates = list(DEFAULT_ACCEPT_RATES if accept_rates is None else accept_rates)
    for i, p in enumerate(rates):
        if not (isinstance(p, (int, float)) and math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ServoptError(f"nextn_accept_rates[{i}]", p, "must be a probability in [0, 1]")
    expected, chain = 0.0, 1.0
    for i in range(nextn):
        chain *= rates[i] if i < len(rates) else 0.0
        expected += chain
    return expected
