"""What the fidelity tests share: one candidate row, and a tally of points compared with the worst
relative error (printed per test with ``pytest -s``, the figures the closing notes quote)."""

from __future__ import annotations

import numpy as np
import pytest

from servopt.evaluate.candidates import Candidates


def one(batch: int, ctx: int = 0) -> Candidates:
    """One candidate of layout 0: ``batch`` requests, ``ctx`` context tokens per agg step."""
    return Candidates(np.array([0]), np.array([batch]), np.array([ctx]))


class Worst:
    """Points compared and the worst relative error; each check asserts within ``rel``."""

    def __init__(self, what: str, rel: float) -> None:
        self.what, self.rel, self.points, self.worst = what, rel, 0, 0.0

    def check(self, name: str, ours: float, peer: float, rel: float | None = None) -> None:
        self.points += 1
        self.worst = max(self.worst, abs(ours / peer - 1.0))
        assert ours == pytest.approx(peer, rel=self.rel if rel is None else rel), name

    def report(self) -> None:
        print(f"\n{self.what}: {self.points} points, worst |error| {self.worst:.2e}")
