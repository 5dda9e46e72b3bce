"""Cross-validation: held-out rows take their own harness's request overhead where the fold fitted
it, and the residuals the shipped bands are made of take what a user's prediction gets, the scope's
value (the median of its harnesses)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from servopt.calibrate import cv
from servopt.calibrate import fit as F

OFFSETS_MS = {"G": 10.0, "X": 130.0}


class _Replay:
    """The simulator in closed form: TTFT = prefill + request overhead; a fixed decode step."""

    def __init__(self, ttft0: float, step: float, osl: float):
        self.ttft0, self.step, self.osl = ttft0, step, osl

    def run(self, adj):
        tpot = self.step * adj.decode_scale + adj.iteration_overhead_ms
        ttft = self.ttft0 + adj.iteration_overhead_ms + adj.request_overhead_ms
        e2e = ttft + tpot * (self.osl - 1)
        return SimpleNamespace(ttft_ms=ttft, tpot_ms=tpot, output_tok_s_per_gpu=1000.0 * self.osl / e2e)


def _samples(seed: int = 3) -> tuple[list[F.Sample], np.ndarray]:
    rng = np.random.default_rng(seed)
    samples = []
    for source, offset in OFFSETS_MS.items():
        for layout in ("tp1", "tp2"):
            for _ in range(6):
                replay = _Replay(rng.uniform(30, 300), rng.uniform(5, 20), rng.uniform(200, 1000))
                out = replay.run(F.Adjustments(offset, 0.0, 1.0, 1.0))
                setup = SimpleNamespace(
                    record=SimpleNamespace(source_name=source),
                    backend="sglang",
                    system="h100_sxm",
                    layout=SimpleNamespace(label=layout),
                    replica_concurrency=1,
                )
                measured = np.array([out.ttft_ms, out.tpot_ms, out.output_tok_s_per_gpu])
                samples.append(F.Sample(setup, measured, replay))
    grid = F.grid_adjustments()
    runs = np.array(
        [
            [
                (r.ttft_ms, r.tpot_ms, r.output_tok_s_per_gpu, r.ttft_ms + r.tpot_ms * (s.replay.osl - 1))
                for r in (s.replay.run(a) for a in grid)
            ]
            for s in samples
        ]
    )
    return samples, runs


def test_layout_folds_use_the_rows_harness_and_bands_use_the_scopes_value():
    samples, runs = _samples()
    held = cv.cross_validate(samples, runs, "layout")
    added = held.calibrated[:, 0] - held.raw[:, 0]
    own = np.array([OFFSETS_MS[s.source] for s in samples])
    assert np.allclose(added, own)  # each fold fits both harnesses from the other layout
    # The bands' predictions name no harness: the median of the two, for every row.
    assert np.allclose(held.unseen[:, 0] - held.raw[:, 0], F.grid_median_ms(list(OFFSETS_MS.values())))
    # So the band's residuals straddle the prediction, one harness on each side.
    res = cv.residuals(samples, held.unseen)[:, 0]
    assert (res[own < 70] < 0).all() and (res[own > 70] > 0).all()


def test_a_held_out_source_is_a_harness_the_fold_has_not_seen():
    samples, runs = _samples()
    held = cv.cross_validate(samples, runs, "source")
    # One source left: too few sources to fit, so the held-out rows are predicted at neutral.
    assert np.allclose(held.calibrated, held.raw, equal_nan=True)
