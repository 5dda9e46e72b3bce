"""Cross-validation: the request overhead a harness not seen gets, which the shipped bands are made
of, excludes every harness of the held-out row's own source."""

from __future__ import annotations

from servopt.calibrate.cv import unseen_request_overhead
from servopt.calibrate.model import HarnessFit, Profile, Scope, ScopeFit


def _fit(scope: Scope, value: float, *harnesses: tuple[str, str, float]) -> ScopeFit:
    return ScopeFit(
        scope,
        {"request_overhead_ms": value},
        20,
        tuple(sorted({h[0] for h in harnesses})),
        tuple(HarnessFit(src, be, ms, 5) for src, be, ms in harnesses),
    )


def test_a_harness_not_seen_leaves_out_every_harness_of_its_own_source():
    profile = Profile(
        (
            _fit(Scope("sglang"), 70.0, ("G", "sglang", 12.0), ("X", "sglang", 128.0)),
            _fit(
                Scope(),
                69.0,
                ("G", "sglang", 14.0),
                ("G", "vllm", 37.0),
                ("X", "sglang", 120.0),
                ("X", "trtllm", 101.0),
                ("Y", "trtllm", 9.0),
            ),
        )
    )
    # sglang's scope less G's harness: X's alone; less X's: G's alone.
    assert unseen_request_overhead(profile, "sglang", "h100_sxm", "G") == 128.0
    assert unseen_request_overhead(profile, "sglang", "b200_sxm", "X") == 12.0
    # A source the scope has not seen: the median of all of the scope's harnesses.
    assert unseen_request_overhead(profile, "sglang", "h100_sxm", "Z") == 70.0
    # vllm has no scope of its own: every backend's, less G's two harnesses: median(120, 101, 9).
    assert unseen_request_overhead(profile, "vllm", "h100_sxm", "G") == 101.0
    # Only the row's own source in the scope: the broader scope's; nothing anywhere: neutral.
    only_g = Profile(
        (_fit(Scope("sglang"), 12.0, ("G", "sglang", 12.0)), _fit(Scope(), 9.0, ("Y", "trtllm", 9.0)))
    )
    assert unseen_request_overhead(only_g, "sglang", "h100_sxm", "G") == 9.0
    assert (
        unseen_request_overhead(Profile((_fit(Scope(), 5.0, ("G", "vllm", 5.0)),)), "vllm", "x", "G") == 0.0
    )
